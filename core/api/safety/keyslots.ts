// Key slots of LUKS-encrypted images (#16 item 4): list (active, PBKDF iterations), add a
// passphrase, change one, remove a slot, for the luks format and qcow2 with encrypt.format=luks.
// Every change is qemu-img amend with QEMU's amend options (luks: state, keyslot, new-secret,
// old-secret, iter-time; qcow2: the same under "encrypt."), run by the engine's amend job on the
// image opened with a passphrase it already has. Passphrases arrive only as call secrets (ids
// 'current' and 'new'), are handed to the job's secret store and never leave it: no result,
// event, label or error carries them.

import { z } from 'zod';
import { amend as amendJob } from '../../jobs/amend.ts';
import { info as infoJob } from '../../jobs/info.ts';
import type { JobControl, JobEnv } from '../../jobs/common.ts';
import { invalidArgument } from '../../errors.ts';
import type { ImageInfo } from '../types.ts';
import { secretInput } from '../schemas.ts';

/** The ids the two passphrases travel under in a call's `secrets`. */
export const CURRENT_SECRET = 'current';
export const NEW_SECRET = 'new';

export const keySlotsInput = z.object({ path: z.string().min(1) });

export const keySlotChangeInput = z.object({
  path: z.string().min(1),
  format: z.enum(['luks', 'qcow2']),
  /** add: a new passphrase in a free slot; change: replace the slot(s) of the current passphrase;
   *  remove: erase `keyslot`. All need a passphrase the image already has (secret 'current'). */
  action: z.enum(['add', 'change', 'remove']),
  keyslot: z.number().int().min(0).max(7).optional(),
  /** PBKDF time for a new slot, ms (LUKS default 2000). */
  iterTime: z.number().int().min(1).max(60_000).optional(),
  secrets: z.array(secretInput).min(1).max(2),
});

export interface KeySlot {
  index: number;
  active: boolean;
  /** PBKDF2 iterations of an active slot. */
  iterations?: number;
}

export interface KeySlotList {
  format: 'luks' | 'qcow2';
  slots: KeySlot[];
  active: number;
}

/** The LUKS slot table of an image's info, or undefined when it has none. */
export function slotsOfInfo(info: ImageInfo): KeySlotList | undefined {
  const data = info['format-specific']?.data as Record<string, unknown> | undefined;
  if (!data) return undefined;
  const raw = info.format === 'luks' ? data.slots : info.format === 'qcow2' ? (data.encrypt as { format?: string; slots?: unknown } | undefined)?.slots : undefined;
  if (!Array.isArray(raw)) return undefined;
  const slots = raw.map((s: { active?: boolean; iters?: number }, index) => ({ index, active: Boolean(s.active), ...(s.active && typeof s.iters === 'number' ? { iterations: s.iters } : {}) }));
  return { format: info.format as 'luks' | 'qcow2', slots, active: slots.filter((s) => s.active).length };
}

export async function listKeySlots(path: string, env: JobEnv): Promise<KeySlotList> {
  const info = (await infoJob({ image: { filename: path, forceShare: true } }, env)) as ImageInfo;
  const list = slotsOfInfo(info);
  if (!list) throw invalidArgument(`${path} has no LUKS key slots (format ${info.format})`);
  return list;
}

/** The image opened with the current passphrase (a json: pseudo-filename naming the secret). */
function unlocked(path: string, format: 'luks' | 'qcow2'): string {
  const file = { driver: 'file', filename: path };
  return `json:${JSON.stringify(format === 'luks' ? { driver: 'luks', file, 'key-secret': CURRENT_SECRET } : { driver: 'qcow2', file, encrypt: { 'key-secret': CURRENT_SECRET } })}`;
}

export async function changeKeySlot(i: z.output<typeof keySlotChangeInput>, env: JobEnv, ctl: JobControl = {}): Promise<{ slots: KeySlotList }> {
  const have = new Set(i.secrets.map((s) => s.id));
  if (!have.has(CURRENT_SECRET)) throw invalidArgument('A passphrase the image already has is needed to change its key slots');
  if (i.action !== 'remove' && !have.has(NEW_SECRET)) throw invalidArgument('Enter the new passphrase');
  const current = i.secrets.find((s) => s.id === CURRENT_SECRET)!;
  const next = i.secrets.find((s) => s.id === NEW_SECRET);
  if (i.action === 'change' && next && next.data === current.data && (next.format ?? 'raw') === (current.format ?? 'raw')) throw invalidArgument('The new passphrase is the same as the current one');
  const p = i.format === 'qcow2' ? 'encrypt.' : '';
  const image = { filename: unlocked(i.path, i.format) };
  const before = await listKeySlots(i.path, env);
  const iter = i.iterTime !== undefined ? { [`${p}iter-time`]: i.iterTime } : {};
  if (i.action === 'add' || i.action === 'change') {
    await amendJob({ image, options: { [`${p}state`]: 'active', [`${p}new-secret`]: NEW_SECRET, ...(i.action === 'add' && i.keyslot !== undefined ? { [`${p}keyslot`]: i.keyslot } : {}), ...iter } }, env, ctl);
  }
  if (i.action === 'change') {
    // The new passphrase has its slot now: erase every slot the current one opens.
    await amendJob({ image, options: { [`${p}state`]: 'inactive', [`${p}old-secret`]: CURRENT_SECRET } }, env, ctl);
  }
  if (i.action === 'remove') {
    if (i.keyslot === undefined) throw invalidArgument('Choose the key slot to remove');
    const slot = before.slots[i.keyslot];
    if (!slot?.active) throw invalidArgument(`Key slot ${i.keyslot} is not in use`);
    if (before.active <= 1) throw invalidArgument(`Key slot ${i.keyslot} is the last one: removing it would make the image unreadable for good`);
    await amendJob({ image, options: { [`${p}state`]: 'inactive', [`${p}keyslot`]: i.keyslot } }, env, ctl);
  }
  return { slots: await listKeySlots(i.path, env) };
}

// The API methods of #16's safety features (gui-safety): previews of destructive operations,
// the lock inspector, key slots of encrypted images and repair with a backup. Spread into
// appRouter (app-router.ts) with one line; inputs are validated where calls enter (dispatch).

import { job, query } from './router.ts';
import { basename } from 'node:path';
import { previewInput, previewOperation } from './safety/preview.ts';
import { inspectLocks, lockInspectInput } from './safety/locks.ts';
import { repairInput, repairWithBackup } from './safety/repair.ts';
import { changeKeySlot, keySlotChangeInput, keySlotsInput, listKeySlots } from './safety/keyslots.ts';

export const safetyRoutes = {
  /** What a destructive operation would do, before it runs (read-only, -U). */
  previewOperation: query(previewInput, (i, { env, ctl, service }) => previewOperation(service, i, env, ctl)),
  /** Who holds an image's lock bytes (pid, command line) and with which permissions. */
  lockInspect: query(lockInspectInput, (i) => inspectLocks(i.path)),
  /** The LUKS key slots of a luks or qcow2+luks image (read without a passphrase). */
  keySlots: query(keySlotsInput, (i, { env }) => listKeySlots(i.path, env)),
  /** Add, change or remove a passphrase (qemu-img amend); the passphrases travel as secrets. */
  keySlotChange: job(
    keySlotChangeInput,
    (i) => `${i?.action === 'remove' ? 'Remove a key slot of' : i?.action === 'change' ? 'Change a passphrase of' : 'Add a passphrase to'} ${typeof i?.path === 'string' ? basename(i.path) : '?'}`,
    (i, { env, ctl }) => changeKeySlot(i, env, ctl),
  ),
  /** Copy the image (reflink or sparse copy), then qemu-img check -r; the counts before and after. */
  repairWithBackup: job(repairInput, (i) => `Repair ${typeof i?.image?.filename === 'string' ? basename(i.image.filename) : '?'} (with a backup)`, (i, { env, ctl }) => repairWithBackup(i, env, ctl)),
};

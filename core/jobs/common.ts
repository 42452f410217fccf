// What every job shares (docs/architecture.md "core/jobs"): the control object (AbortSignal + progress
// callback), the environment (secrets, warnings), opening a user's image reference, size parsing
// with qemu-img's messages, and allocated-size accounting for `info` ("actual-size").

import { stat } from 'node:fs/promises';
import { openImage, type OpenImageOptions } from '../drivers/open.ts';
import type { BlockNode } from '../block/node.ts';
import { SecretStore } from '../block/secrets.ts';
import { checkImageSize, QEMU_MAX_SIZE as QEMU_MAX_BIG, MSG_BAD_SIZE, MSG_BAD_SIZE_LINES, MSG_SIZE_RANGE } from '../shared/sizes.ts';
import { BlockError, invalidArgument, throwIfAborted } from '../errors.ts';
import { MAX_EXACT_SIZE, SECTOR_BIG } from '../util/checked.ts';
import type { CacheMode } from '../block/cache-mode.ts';
import type { AioMode } from '../block/aio-mode.ts';

export interface JobProgressEvent {
  done: number;
  total: number;
  phase?: string;
}

/** Passed to every job: cancellation between units of work, and progress reports. */
export interface JobControl {
  signal?: AbortSignal;
  onProgress?: (p: JobProgressEvent) => void;
}

/** The services a job uses besides its own options. */
export interface JobEnv {
  secrets: SecretStore;
  warn: (message: string) => void;
  /** Warnings qemu-img words as warn_report does ("<program>: warning: <message>"); without it,
   *  they go to `warn` as "warning: <message>". */
  warnReport?: (message: string) => void;
}

/** One image as a user names it (-f, --image-opts, -U). */
export interface ImageSpec {
  filename: string;
  format?: string;
  imageOpts?: boolean;
  forceShare?: boolean;
  /** -T src_cache (qemu-img's default: writeback). */
  cache?: CacheMode;
  /** The file's aio mode (qemu-img bench -i / -n). */
  aio?: AioMode;
}

export function defaultEnv(): JobEnv {
  return { secrets: new SecretStore(), warn: (m) => process.stderr.write(`${m}\n`) };
}

/** Open `spec` with the environment's secrets and warnings. */
export function openSpec(spec: ImageSpec, env: JobEnv, extra: Partial<OpenImageOptions> = {}): Promise<BlockNode> {
  const readOnly = extra.readOnly ?? true;
  return openImage(spec.filename, {
    ...(spec.format ? { format: spec.format } : {}),
    imageOpts: spec.imageOpts ?? false,
    forceShare: (spec.forceShare ?? false) && readOnly,
    secrets: env.secrets,
    warn: env.warn,
    qemuImgPrefix: true,
    ...(spec.cache || spec.aio ? { fileOptions: { ...(spec.cache ? { cache: spec.cache } : {}), ...(spec.aio ? { aio: spec.aio } : {}) } } : {}),
    ...extra,
    readOnly,
  });
}

/** Open, run, close (closing even when `fn` throws; the first error wins). */
export async function withImage<T>(spec: ImageSpec, env: JobEnv, extra: Partial<OpenImageOptions>, fn: (node: BlockNode) => Promise<T>): Promise<T> {
  const node = await openSpec(spec, env, extra);
  let result: T;
  try {
    result = await fn(node);
  } catch (e) {
    await node.close().catch(() => {});
    throw e;
  }
  await node.close();
  return result;
}

/** A progress reporter that calls onProgress at most every `minIntervalMs`, and besides whenever
 *  progress moved by more than one percent since the last such report or reached the total (so a
 *  printer with qemu-img's 1% step sees every value qemu-img would print), and at the end. */
export function progressReporter(ctl: JobControl, total: number, phase?: string, minIntervalMs = 100) {
  let last = 0;
  let done = 0;
  /** `done` at the last report made for a step (not for the time). */
  let stepDone = 0;
  let reportedTotal = false;
  const emit = (force: boolean) => {
    if (!ctl.onProgress) return;
    const now = Date.now();
    const step = total > 0 && (done >= total || (done - stepDone) * 100 > total * STEP_PERCENT);
    if (!force && !step && now - last < minIntervalMs) return;
    if (step) stepDone = done;
    reportedTotal = done >= total;
    last = now;
    ctl.onProgress({ done, total, ...(phase ? { phase } : {}) });
  };
  return {
    add(n: number) {
      done += n;
      emit(false);
    },
    set(n: number) {
      done = n;
      emit(false);
    },
    setTotal(n: number) {
      total = n;
    },
    finish() {
      if (reportedTotal && done === total) return;
      done = total;
      emit(true);
    },
    get done() {
      return done;
    },
  };
}

/** The progress step (percent) after which a report is never held back for the time. */
const STEP_PERCENT = 1;

export function checkAborted(ctl: JobControl): void {
  throwIfAborted(ctl.signal);
}

/** qemu-img create's size messages (core/shared/sizes.ts: the GUI shows the same). */
export { MSG_BAD_SIZE, MSG_BAD_SIZE_LINES, MSG_SIZE_RANGE };

/**
 * Parse an image size as qemu-img create does (qemu_strtosz_size with a default of bytes): a
 * malformed value or a fraction of a byte is "Invalid image size specified. You may use ...";
 * a value past INT64_MAX is "... Must be between 0 and 9223372036854775807."; values Platter
 * cannot address exactly (past 2^53) are refused in words. `warn` gets QEMU's deprecation warning
 * for a suffix on a hex number ("warning: ...").
 */
export function parseImageSize(text: string | number, o: { inexact?: boolean; warn?: (message: string) => void } = {}): number {
  if (typeof text === 'number') {
    const exact = Number.isSafeInteger(text) || (text < Number(MAX_EXACT_SIZE) && text % 512 === 0);
    if (!Number.isInteger(text) || text < 0 || !(exact || (o.inexact && text <= Number(QEMU_MAX_BIG)))) throw invalidArgument(MSG_BAD_SIZE, {}, { code: 'BadSize' });
    return text;
  }
  const checked = checkImageSize(text);
  if ('error' in checked) throw invalidArgument(checked.error, {}, checked.invalid ? { code: 'BadSize' } : {});
  if (checked.warning) o.warn?.(`warning: ${checked.warning}`);
  const value = checked.bytes;
  // Past 2^53: only sizes a double holds exactly, with every sector under them (util/checked.ts).
  if (value > BigInt(Number.MAX_SAFE_INTEGER) && !o.inexact && !(value < MAX_EXACT_SIZE && value % SECTOR_BIG === 0n)) {
    throw invalidArgument(`Image size ${value} is beyond what Platter can address exactly (past 2^53 only multiples of 512 below 2^62)`);
  }
  return Number(value);
}

/** Allocated bytes of a file (st_blocks * 512), or undefined when it cannot be stat'ed. */
export async function allocatedBytes(path: string): Promise<number | undefined> {
  try {
    const st = await stat(path);
    return st.blocks * 512;
  } catch {
    return undefined;
  }
}

/** The host file names under a node (its protocol file and its extra children's). */
export function hostFiles(node: BlockNode): string[] {
  const out: string[] = [];
  const seen = new Set<BlockNode>();
  const visit = (n: BlockNode | undefined) => {
    if (!n || seen.has(n)) return;
    seen.add(n);
    if (n.driver.kind === 'protocol' && (n.driver.name === 'file' || n.driver.name === 'host_device' || n.driver.name === 'host_cdrom')) out.push(n.filename);
    visit(n.file);
    for (const c of n.children) visit(c);
  };
  visit(node);
  return [...new Set(out)];
}

/** Build a SecretStore from --object strings and structured secrets. */
export function secretStoreFrom(objects: readonly string[] = [], secrets: readonly { id: string; data: string; format?: 'raw' | 'base64' }[] = []): SecretStore {
  const store = new SecretStore();
  for (const o of objects) store.addFromObjectArgument(o);
  for (const s of secrets) {
    store.add(s.id, s.format === 'base64' ? Buffer.from(s.data, 'base64') : Buffer.from(s.data, 'utf8'));
  }
  return store;
}

/** qemu-img's words for a failed image creation: "<file>: Could not create '<file>': <cause>"
 *  (OS errors), or "<file>: <cause>" for the rest. */
export function createError(filename: string, e: unknown): unknown {
  if (!(e instanceof BlockError)) return e;
  const osLevel = e.kind === 'NotFound' || e.kind === 'Permission' || e.kind === 'Io';
  const msg = osLevel && e.code !== 'Worded' && e.code !== 'OpenFailed' ? `Could not create '${filename}': ${e.message}` : e.message;
  return new BlockError(e.kind, `${filename}: ${msg}`, e.context, { cause: e, ...(e.hint !== undefined ? { hint: e.hint } : {}) });
}

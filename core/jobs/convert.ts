// The convert job (qemu-img convert; qemu-img.c img_convert / convert_do_copy): copy one or more
// source images (concatenated) into a new or existing target, driven by block status so holes
// and known-zero ranges are never read or written; -S zero detection inside data; -m parallel
// requests with a bounded window (each of the N workers owns at most one buffer at a time, which it
// hands to the target's write and drops once that write settles); in-order writes unless -W;
// -c whole-cluster compressed writes (the driver compresses in the worker pool); -l snapshots;
// -B backing for the target (then only the source's top layer is copied).
//
// Failure policy: a new target is written under a staging name and renamed into place once
// complete (staging.ts; files it names, such as vmdk extents, get their final names at once), so
// a killed convert leaves no file under the target's name that opens as a finished image, and an
// image that was there stays untouched until the new one replaces it. When the job fails or is
// cancelled, every file it created (the staged file and any sibling that appeared next to the
// target with its stem) is removed. With -n the target is the user's: written in place, kept.

import { lstatSync, read as fsRead, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { BlockNode, alignUp, blockStatusAbove } from '../block/node.ts';
import type { BlockStatus } from '../block/types.ts';
import type { CacheMode } from '../block/cache-mode.ts';
import { openImage } from '../drivers/open.ts';
import { createImage, createSchema, protocolCreateRefusal } from '../drivers/create.ts';
import { findFormat } from '../drivers/registry.ts';
import type { OptionValues } from '../block/options-schema.ts';
import { parseOptions } from '../block/options-schema.ts';
import { splitKeyValueList } from '../block/options-tree.ts';
import { BlockError, cancelled, fromSystemError, invalidArgument, unsupported } from '../errors.ts';
import { createError, openSpec, progressReporter, type ImageSpec, type JobControl, type JobEnv } from './common.ts';
import { qemuZeroRuns, isZero, SECTOR } from './zero-detect.ts';
import { alignedBuffer, canAlignBuffers, PAGE_ALIGNMENT } from '../host/index.ts';
import { renamePath, stageTarget, type StagedTarget } from './staging.ts';
import { LeakyBucket } from '../util/leaky-bucket.ts';

export interface ConvertOptions {
  sources: ImageSpec[];
  target: { filename: string; format?: string; options?: string | OptionValues; imageOpts?: boolean };
  /** -n */
  noCreate?: boolean;
  /** --target-is-zero */
  targetIsZero?: boolean;
  /** -S in bytes (default 4096; 0 writes every byte). */
  sparseSize?: number;
  /** -c */
  compressed?: boolean;
  /** -W */
  outOfOrder?: boolean;
  /** -m (default 8) */
  parallel?: number;
  /** -l */
  snapshot?: string;
  /** -B / -F */
  backingFile?: string;
  backingFormat?: string;
  /** -t: the target's cache mode. qemu-img's default for convert is 'unsafe' (no flushes at all:
   *  a crashed convert is redone anyway); any other mode flushes at the end. */
  cache?: CacheMode;
  /** --bitmaps: copy the source's persistent bitmaps (its top layer's) into the target. */
  bitmaps?: boolean;
  /** --skip-broken-bitmaps: leave out inconsistent bitmaps instead of failing. */
  skipBrokenBitmaps?: boolean;
  /** -r: the target's writes limited to this many bytes per second (0 or absent: no limit). */
  rateLimit?: number;
  /** --salvage: an unreadable range of the source is reported and copied as zeros; a range whose
   *  block status cannot be read is copied as data (qemu-img's salvaging mode). */
  salvage?: boolean;
}

/** qemu-img convert's default target cache mode. */
export const DEFAULT_CONVERT_CACHE = 'unsafe';

export interface ConvertStats {
  target: string;
  format: string;
  bytesCopied: number;
  bytesSkipped: number;
}

/** qemu-img's default -S: 4 KiB. */
export const DEFAULT_SPARSE_SIZE = 4096;
/** qemu-img's default -m. */
export const DEFAULT_PARALLEL = 8;
/** qemu-img accepts -m 1..16 (MAX_COROUTINES). */
export const MAX_PARALLEL = 16;
/** qemu-img's largest -S: 16 MiB. */
export const MAX_SPARSE_SIZE = 16 << 20;
/** Bytes per data request: few syscalls, yet the 8 lanes' buffers stay in the CPU caches (with
 *  4 MiB the kernel's page-cache copies took twice the time; qemu-img uses 2 MiB buffers). Tried
 *  again with 2 MiB on this 2-CPU VM: a fifth less user CPU, but one convert in two stalled
 *  (1.5-1.8 s instead of 0.6, all of it in the kernel's copy into new page-cache folios), as 1 MiB
 *  writes seldom do. */
export const COPY_CHUNK = 1 << 20;
/** Zero/hole requests need no buffer, so they can be far larger. */
const ZERO_CHUNK = 1 << 30;
/** qemu-img convert's buffer (IO_BUF_SIZE): the piece its progress counts at a time. */
const QEMU_IO_BUF_SIZE = 2 << 20;

type Kind = 'data' | 'zero' | 'skip';

/** Convert skips what the source's driver knows to be unallocated, even where QEMU's driver
 *  reports all data (qemu-img reads those ranges and its zero detection skips them). */
const PRECISE = { precise: true } as const;

interface Item {
  seq: number;
  dstOffset: number;
  length: number;
  kind: Kind;
  /** Where the source's bytes of a data item lie verbatim (BlockStatus.hostNode). */
  src?: HostPlace;
}

/** A byte offset in a node. */
interface HostPlace {
  node: BlockNode;
  offset: number;
}

/**
 * The descriptor of a plain file node (the file protocol, buffered): reads of data whose place in
 * it block status names (BlockStatus.hostNode) go straight to it, into the lane's own buffer,
 * without the format layer (buffers are reused; the request path through the
 * format driver cost more main-thread time than the copy's bookkeeping). Relies on the file
 * protocol's descriptor (BlockNode.hostFd); any other node is read through BlockNode.readInto.
 */
function plainFileFd(node: BlockNode): number | undefined {
  return node.hostFd;
}

function preadFull(fd: number, buf: Buffer, length: number, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = 0;
    const step = () =>
      fsRead(fd, buf, done, length - done, position + done, (err, n) => {
        if (err) return reject(err);
        if (n === 0) {
          buf.fill(0, done, length); // short file: zeros, as the file protocol pads
          return resolve();
        }
        done += n;
        if (done < length) step();
        else resolve();
      });
    step();
  });
}

/**
 * A source that is a host block device, with no -T given, is read past the page cache (cache
 * none, O_DIRECT): imaging a drive reads each block once, so caching it only costs a copy per
 * block and evicts what the host had cached (a whole disk's worth), and through the loop driver
 * it costs a second copy. qemu-img's default (-T writeback) reads through the page cache; -T
 * writeback keeps that. An O_DIRECT read of a block device sees data another writer left in the
 * page cache (the kernel writes that range back first).
 */
export function withDeviceReadCache(spec: ImageSpec): ImageSpec {
  // Linux only, where it is proven on real devices (macOS's direct path, /dev/rdiskN, is untested
  // on a Mac: -T none asks for it there); never without aligned buffers (no koffi).
  if (process.platform !== 'linux' || spec.cache !== undefined || spec.imageOpts || spec.filename.startsWith('json:') || !canAlignBuffers()) return spec;
  try {
    return statSync(spec.filename).isBlockDevice() ? { ...spec, cache: 'none' } : spec;
  } catch {
    return spec; // the open says what is wrong with the name
  }
}

/** Parse -l: "name-or-id", or "snapshot.id=..,snapshot.name=..". */
export function parseSnapshotParam(text: string): { id?: string; name?: string } {
  if (!text.startsWith('snapshot.')) return { name: text };
  const out: { id?: string; name?: string } = {};
  for (const [k, v] of splitKeyValueList(text)) {
    if (k === 'snapshot.id' && v !== undefined) out.id = v;
    else if (k === 'snapshot.name' && v !== undefined) out.name = v;
    else throw invalidArgument(`Invalid parameter '${k}'`);
  }
  return out;
}

/** A read-only node over a snapshot view of `node` (closes only the view). */
export async function openSnapshotView(node: BlockNode, param: string): Promise<BlockNode> {
  const snaps = node.snapshots;
  if (!snaps) throw unsupported(`Failed to load snapshot: Block format '${node.format}' used by device '' does not support temporarily loading internal snapshots`);
  const p = parseSnapshotParam(param);
  const list = await snaps.list();
  const found = list.find((s) => (p.id === undefined || s.id === p.id) && (p.name === undefined || s.name === p.name)) ?? (p.id === undefined ? list.find((s) => s.id === p.name) : undefined);
  if (!found) throw new BlockError('NotFound', `Failed to load snapshot: Can't find snapshot`);
  const view = await snaps.openView(found.id);
  return new BlockNode({ driver: node.driver, impl: view, filename: node.filename, readOnly: true });
}

/** Files next to `path` whose names start with its stem (vmdk extents, etc.). */
function isRegularFile(path: string): boolean {
  try {
    return lstatSync(path).isFile();
  } catch {
    return false;
  }
}

function stemSiblings(path: string): Set<string> {
  const dir = dirname(resolve(path));
  const stem = basename(path, extname(path));
  try {
    return new Set(readdirSync(dir).filter((n) => n.startsWith(stem)).map((n) => join(dir, n)));
  } catch {
    return new Set();
  }
}

/** Runs `worker` on N lanes until it returns false; the first error stops every lane. */
async function lanes(n: number, worker: () => Promise<boolean>): Promise<void> {
  let failed: unknown;
  let stop = false;
  const lane = async () => {
    while (!stop) {
      try {
        if (!(await worker())) return;
      } catch (e) {
        if (!stop) failed = e;
        stop = true;
      }
    }
  };
  await Promise.all(Array.from({ length: n }, lane));
  if (failed !== undefined) throw failed;
}

/** qemu-img convert's option checks, in its order, before anything is opened. */
function checkOptions(opts: ConvertOptions): { outFormat: string; parallel: number; sparseSize: number } {
  if (opts.sources.length === 0) throw invalidArgument('Expecting image file name');
  if (opts.skipBrokenBitmaps && !opts.bitmaps) throw invalidArgument('Use of --skip-broken-bitmaps requires --bitmaps');
  const outFormat = opts.target.format ?? 'raw';
  const parallel = opts.parallel ?? DEFAULT_PARALLEL;
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > MAX_PARALLEL) throw invalidArgument(`Invalid number of coroutines. Allowed number of coroutines is between 1 and ${MAX_PARALLEL}`);
  const sparseSize = opts.sparseSize ?? DEFAULT_SPARSE_SIZE;
  if (!Number.isSafeInteger(sparseSize) || sparseSize < 0 || sparseSize % 512 !== 0 || sparseSize > MAX_SPARSE_SIZE) {
    throw invalidArgument(`Invalid buffer size for sparse output specified. Valid sizes are multiples of 512 up to ${MAX_SPARSE_SIZE}. Select 0 to disable sparse detection (fully allocates output).`);
  }
  if (opts.rateLimit !== undefined && !(Number.isSafeInteger(opts.rateLimit) && opts.rateLimit >= 0)) throw invalidArgument('Invalid rate limit: a number of bytes per second');
  if (opts.targetIsZero && !opts.noCreate) throw invalidArgument('--target-is-zero requires use of -n flag');
  if (opts.snapshot !== undefined && opts.sources.length > 1) throw invalidArgument('No support for concatenating multiple snapshot');
  if (!opts.noCreate && !findFormat(outFormat)) throw unsupported(`Unknown file format '${outFormat}'`);
  if (opts.noCreate && opts.target.options !== undefined && !(typeof opts.target.options === 'string' && opts.target.options === '')) {
    throw invalidArgument('-o has no effect when skipping image creation');
  }
  return { outFormat, parallel, sparseSize };
}

/** What creating the target left: whether it has a backing file, and the key-secret options it
 *  opens with (qemu-img's img_add_key_secrets). */
interface CreatedTarget {
  hasBacking: boolean;
  keySecrets: Record<string, string>;
}

/**
 * Create the target image of `total` bytes at `writePath` (its staging name until complete),
 * adding to `created` every file the creation made (so a failure removes them).
 */
async function createTarget(opts: ConvertOptions, outFormat: string, total: number, sourceCount: number, writePath: string, staged: StagedTarget | undefined, created: Set<string>, env: JobEnv, ctl: JobControl): Promise<CreatedTarget> {
  /** -B, or -o backing_file= (qemu-img takes either as the target's backing). */
  let hasBacking = opts.backingFile !== undefined;
  const keySecrets: Record<string, string> = {};
  // qemu-img: "Protocol driver 'vvfat' does not support image creation", with no name in front.
  const refusal = opts.target.imageOpts ? undefined : protocolCreateRefusal(opts.target.filename);
  if (refusal) throw refusal;
  const driver = findFormat(outFormat)!;
  if (!driver.create) throw unsupported(`Format driver '${outFormat}' does not support image creation`);
  let values: OptionValues = {};
  // The format's options and those of the target's remote protocol (sheepdog's redundancy, ...).
  const schema = opts.target.imageOpts ? driver.createOptions : createSchema(driver, opts.target.filename);
  if (typeof opts.target.options === 'string') values = parseOptions(schema, opts.target.options);
  else if (opts.target.options) values = parseOptions(schema, opts.target.options);
  if (opts.backingFile !== undefined) {
    if (!driver.supportsBacking && !driver.createOptions.some((o) => o.name === 'backing_file')) {
      throw unsupported(`Backing file not supported for file format '${outFormat}'`);
    }
    values['backing_file'] = opts.backingFile;
    if (opts.backingFormat) values['backing_fmt'] = opts.backingFormat;
  }
  if (typeof values['backing_file'] === 'string') hasBacking = true;
  if (hasBacking && sourceCount > 1) throw invalidArgument('Having a backing file for the target makes no sense when concatenating multiple input images');
  if (typeof values['backing_file'] === 'string' && typeof values['backing_fmt'] !== 'string') throw invalidArgument('Use of backing file requires explicit backing format');
  for (const [k, v] of Object.entries(values)) if (k.endsWith('key-secret') && typeof v === 'string') keySecrets[k] = v;
  const before = stemSiblings(opts.target.filename);
  const targetExisted = before.has(resolve(opts.target.filename));
  if (staged) created.add(staged.path);
  try {
    await createImage({
      format: outFormat,
      filename: writePath,
      ...(staged ? { finalName: opts.target.filename } : {}),
      size: total,
      options: values,
      secrets: env.secrets,
      warn: env.warn,
      ...(ctl.signal ? { signal: ctl.signal } : {}),
    });
  } catch (e) {
    // qemu-img: "<target>: error while converting <fmt>: Could not create '<target>': ..."
    const err = createError(opts.target.filename, staged ? renamePath(e, staged.path, opts.target.filename) : e);
    if (err instanceof BlockError) throw new BlockError(err.kind, err.message.replace(`${opts.target.filename}: `, `${opts.target.filename}: error while converting ${outFormat}: `), err.context, { cause: e, ...(err.hint ? { hint: err.hint } : {}) });
    throw err;
  } finally {
    for (const f of stemSiblings(opts.target.filename)) if (!before.has(f)) created.add(f);
    // A regular file we emptied is incomplete now; a device (or anything else that is not a
    // plain file) is the user's and is never removed.
    if (targetExisted && !staged && isRegularFile(opts.target.filename)) created.add(resolve(opts.target.filename));
  }
  return { hasBacking, keySecrets };
}

/** qemu-img convert: check the options, open the sources, create (or with -n open) the target,
 *  copy, then give the target its name. */
export async function convert(opts: ConvertOptions, env: JobEnv, ctl: JobControl = {}): Promise<ConvertStats> {
  const { outFormat, parallel, sparseSize } = checkOptions(opts);
  /** With -n, -B still says the target shows that backing file: only the source's top layer is
   *  copied. */
  let targetHasBacking = opts.backingFile !== undefined;

  // Open the sources.
  const sources: BlockNode[] = [];
  const toClose: BlockNode[] = [];
  let target: BlockNode | undefined;
  let created: Set<string> | undefined;
  const staged: StagedTarget | undefined = opts.noCreate || opts.target.imageOpts ? undefined : stageTarget(opts.target.filename);
  /** Where the target is written (its staging name until complete). */
  const writePath = staged?.path ?? opts.target.filename;
  /** The first source image itself (not a snapshot view): where --bitmaps copies from. */
  let bitmapSource: BlockNode | undefined;
  try {
    for (const s of opts.sources) {
      const n = await openSpec(withDeviceReadCache(s), env, { readOnly: true, noShare: true });
      toClose.push(n);
      bitmapSource ??= n;
      sources.push(opts.snapshot !== undefined ? await openSnapshotView(n, opts.snapshot) : n);
    }
    if (opts.snapshot !== undefined && sources[0] !== toClose[0]) toClose.unshift(sources[0]!);
    const total = sources.reduce((a, s) => a + s.size, 0);
    if (!Number.isSafeInteger(total)) throw invalidArgument('The sources are too large together');

    if (opts.bitmaps) {
      if (sources.length > 1) throw invalidArgument('Copying bitmaps only possible with single source');
      await checkBitmaps(bitmapSource!, opts.skipBrokenBitmaps ?? false);
    }

    // Create (or open) the target.
    let keySecrets: Record<string, string> = {};
    if (!opts.noCreate) {
      created = new Set<string>();
      const made = await createTarget(opts, outFormat, total, sources.length, writePath, staged, created, env, ctl);
      targetHasBacking = made.hasBacking;
      keySecrets = made.keySecrets;
    }
    const useSecrets = !opts.target.imageOpts && Object.keys(keySecrets).length > 0;
    target = await openImage(useSecrets ? { file: { filename: writePath }, ...keySecrets } : writePath, {
      ...(opts.target.imageOpts ? {} : { format: outFormat }),
      imageOpts: opts.target.imageOpts ?? false,
      fileOptions: { cache: opts.cache ?? DEFAULT_CONVERT_CACHE },
      // An existing target (-n) that fails to open is named as qemu-img names it.
      ...(opts.noCreate ? { qemuImgPrefix: true } : {}),
      readOnly: false,
      secrets: env.secrets,
      warn: env.warn,
    });
    if (opts.noCreate && target.size < total) {
      throw invalidArgument('output file is smaller than input file');
    }
    if (opts.bitmaps && !target.bitmaps?.supported) throw unsupported(`Format driver '${target.format}' does not support bitmaps`);
    if (opts.compressed && !target.canWriteCompressed) throw unsupported('Compression not supported for this file format');
    const targetInfo = await target.info();
    if (opts.compressed && targetInfo.encrypted) throw unsupported('Compression and encryption not supported at the same time');
    // A target that takes only whole compressed clusters (a stream-optimized vmdk) is filled as
    // with -c (qemu-img: bdi.needs_compressed_writes).
    const compressed = (opts.compressed ?? false) || (targetInfo.needsCompressedWrites === true && target.canWriteCompressed);

    const stats = await copyAll(sources, target, {
      total,
      // Salvaging reports each unreadable range as it meets it: one request at a time keeps the
      // reports in the image's order, as qemu-img's come.
      parallel: opts.salvage ? 1 : parallel,
      salvage: opts.salvage ? (env.warnReport ?? ((m) => env.warn(`warning: ${m}`))) : undefined,
      throttle: opts.rateLimit ? new LeakyBucket(opts.rateLimit) : undefined,
      sparseSize,
      compressed,
      inOrder: !(opts.outOfOrder ?? false) && !(compressed && target.driver.kind === 'format' && target.driver.compressedWrites === 'any-order'),
      // Zero ranges of the source may be skipped only where the target already reads as zeros:
      // a new image whose driver promises it (bdrv_has_zero_init: not luks, not a preallocated
      // encrypted qcow2, not a device), or one the user vouches for with --target-is-zero.
      zeroInit: targetHasBacking ? false : opts.noCreate ? (opts.targetIsZero ?? false) : sparseSize > 0 && target.hasZeroInit,
      topOnly: targetHasBacking,
      // A new image without backing, filled in order: allocate each request's clusters in the
      // order (so the layout follows guest order as with in-order writes), then let the data
      // writes overlap. Formats without a reserve step keep one write in flight.
      reserve: !opts.noCreate && !targetHasBacking && !compressed && !(opts.outOfOrder ?? false) && target.canReserve,
    }, ctl);
    if (opts.bitmaps) await copyBitmaps(bitmapSource!, target, opts.skipBrokenBitmaps ?? false, env);
    const durable = (opts.cache ?? DEFAULT_CONVERT_CACHE) !== 'unsafe';
    if (durable) await target.flush();
    const t = target;
    target = undefined;
    await t.close();
    staged?.commit(durable); // complete: now it may carry the target's name
    created = undefined;
    return { target: opts.target.filename, format: t.format, ...stats };
  } catch (e) {
    throw staged ? renamePath(e, staged.path, opts.target.filename) : e;
  } finally {
    if (target) await target.close().catch(() => {});
    for (const n of toClose) await n.close().catch(() => {});
    if (created) for (const f of created) rmSync(f, { force: true });
  }
}

/** QEMU convert_check_bitmaps: the source can give its bitmaps, and none is inconsistent
 *  (unless those are to be skipped). */
async function checkBitmaps(src: BlockNode, skipBroken: boolean): Promise<void> {
  const cap = src.bitmaps;
  if (!cap?.supported) throw unsupported('Source lacks bitmap support');
  for (const b of await cap.list()) {
    if (!skipBroken && b.inconsistent) {
      throw new BlockError('InvalidArgument', `Cannot copy inconsistent bitmap '${b.name}'`, {}, { hint: "Try --skip-broken-bitmaps, or use 'qemu-img bitmap --remove' to delete it\n" });
    }
  }
}

/** QEMU convert_copy_bitmaps: each bitmap of the source (newest first, so the target's
 *  directory ends up in the source's order) is added to the target with its granularity and
 *  state, then filled by a merge. */
async function copyBitmaps(src: BlockNode, dst: BlockNode, skipBroken: boolean, env: JobEnv): Promise<void> {
  const from = src.bitmaps!;
  const to = dst.bitmaps!;
  for (const b of await from.list()) {
    if (skipBroken && b.inconsistent) {
      env.warn(`warning: Skipping inconsistent bitmap '${b.name}'`);
      continue;
    }
    try {
      await to.add(b.name, { granularity: b.granularity, disabled: !b.enabled });
    } catch (e) {
      throw e instanceof BlockError ? new BlockError(e.kind, `Failed to create bitmap ${b.name}: ${e.message}`, e.context, { cause: e }) : e;
    }
    try {
      await to.merge(b.name, from, b.name);
    } catch (e) {
      await to.remove(b.name).catch(() => {});
      throw e instanceof BlockError ? new BlockError(e.kind, `Failed to populate bitmap ${b.name}: ${e.message}`, e.context, { cause: e }) : e;
    }
  }
}

interface CopyParams {
  total: number;
  parallel: number;
  sparseSize: number;
  compressed: boolean;
  inOrder: boolean;
  zeroInit: boolean;
  topOnly: boolean;
  /** In-order mode through target.reserve(): the order covers allocation, not data writes. */
  reserve: boolean;
  /** --salvage: where unreadable ranges are reported (qemu-img's warn_report). */
  salvage: ((message: string) => void) | undefined;
  /** -r: the target's writes (data and zeros) limited to this rate. */
  throttle: LeakyBucket | undefined;
}

/** Errors --salvage copes with: any failure of the source, not a cancellation. */
function salvageable(e: unknown): e is BlockError {
  return e instanceof BlockError && e.kind !== 'Cancelled';
}

/** A failed request of the copy, worded as qemu-img's convert reports it
 *  ("error while reading at byte N: ..."). */
function copyError(what: string, offset: number, e: unknown): unknown {
  return salvageable(e) ? new BlockError(e.kind, `error while ${what} ${offset}: ${e.message}`, e.context, { cause: e }) : e;
}

/** The copy loop: an in-order producer of items from block status, N lanes doing them. */
async function copyAll(sources: BlockNode[], target: BlockNode, p: CopyParams, ctl: JobControl): Promise<{ bytesCopied: number; bytesSkipped: number }> {
  const progress = progressReporter(ctl, p.total, 'copying');
  const clusterSize = target.clusterSize ?? 65536;
  /** -r: wait for the rate limit before writing `bytes` to the target. */
  const throttled = async (bytes: number) => {
    if (p.throttle && bytes > 0) await p.throttle.take(bytes, ctl.signal);
  };
  const dataChunk = p.compressed ? clusterSize : Math.max(COPY_CHUNK, clusterSize > COPY_CHUNK ? clusterSize : 0);
  let bytesCopied = 0;
  let bytesSkipped = 0;
  /** qemu-img's s->alignment (sectors): -S rounded down to a power of two, or the target's
   *  request alignment if larger. */
  const zeroAlignment = Math.max(2 ** Math.floor(Math.log2(Math.max(1, p.sparseSize / SECTOR))), Math.ceil(target.alignment / SECTOR));

  // The sources, concatenated in the target's address space.
  const bases: number[] = [];
  let acc = 0;
  for (const s of sources) {
    bases.push(acc);
    acc += s.size;
  }
  const sourceAt = (dst: number): number => {
    let i = sources.length - 1;
    while (i > 0 && bases[i]! > dst) i--;
    while (i < sources.length - 1 && dst >= bases[i]! + sources[i]!.size) i++;
    return i;
  };
  /** Status at `dst` (not crossing a source's end); for data, where it lies verbatim if known. */
  const statusAt = async (dst: number, max: number): Promise<{ kind: Kind; length: number; src?: HostPlace }> => {
    const i = sourceAt(dst);
    const src = sources[i]!;
    const off = dst - bases[i]!;
    let len = Math.min(max, src.size - off);
    const query = () => (p.topOnly ? src.blockStatus(off, len, PRECISE) : blockStatusAbove(src, off, len, PRECISE));
    let st: BlockStatus;
    for (;;) {
      try {
        st = await query();
        break;
      } catch (e) {
        if (!p.salvage || !salvageable(e)) throw copyError('reading block status at offset', off, e);
        // Salvaging: retry on a quarter of the range; a single sector whose status cannot be
        // read is copied as data (reading it will tell).
        if (len <= SECTOR) {
          p.salvage(`error while reading block status at offset ${off}: ${e.message}`);
          return { kind: 'data', length: len };
        }
        len = Math.ceil(Math.ceil(len / SECTOR) / 4) * SECTOR;
      }
    }
    // -S 0: zeros are written as data too (qemu-img turns BLK_ZERO into a zeroed buffer).
    const kind: Kind = p.topOnly && !st.allocated ? 'skip' : st.zero && p.sparseSize > 0 ? 'zero' : 'data';
    const place = kind === 'data' && !st.zero && st.hostNode && st.hostOffset !== undefined ? { node: st.hostNode, offset: st.hostOffset } : undefined;
    return { kind, length: st.length, ...(place ? { src: place } : {}) };
  };
  /** Read [dst, dst+length) across sources, into `into` when given (the lane's own buffer). */
  const readAt = async (dst: number, length: number, into?: Buffer, place?: HostPlace): Promise<Buffer> => {
    const i = sourceAt(dst);
    const src = sources[i]!;
    const off = dst - bases[i]!;
    if (into && place) {
      const view = into.subarray(0, length);
      const fd = plainFileFd(place.node);
      if (fd === undefined) await place.node.readInto(place.offset, view);
      else {
        try {
          await preadFull(fd, view, length, place.offset);
        } catch (e) {
          throw fromSystemError(e, { path: place.node.filename, op: 'read', offset: place.offset });
        }
      }
      return view;
    }
    if (into && off + length <= src.size) {
      const view = into.subarray(0, length);
      await src.readInto(off, view);
      return view;
    }
    if (off + length <= src.size) return src.read(off, length);
    const out = Buffer.alloc(length);
    let done = 0;
    for (let j = i; done < length && j < sources.length; j++) {
      const o = j === i ? off : 0;
      const n = Math.min(length - done, sources[j]!.size - o);
      if (n > 0) (await sources[j]!.read(o, n)).copy(out, done);
      done += Math.max(0, n);
    }
    return out;
  };

  /** readAt, failing as qemu-img words it; salvaging, a failed request is read again a sector at
   *  a time, and the sectors that cannot be read become zeros, each reported. */
  const readFor = async (dst: number, length: number, into?: Buffer, place?: HostPlace): Promise<Buffer> => {
    try {
      return await readAt(dst, length, into, place);
    } catch (e) {
      if (!p.salvage || !salvageable(e)) throw copyError('reading at byte', dst, e);
    }
    const out = into ? into.subarray(0, length) : Buffer.alloc(length);
    for (let k = 0; k < length; k += SECTOR) {
      const n = Math.min(SECTOR, length - k);
      try {
        (await readAt(dst + k, n, undefined, place ? { node: place.node, offset: place.offset + k } : undefined)).copy(out, k);
      } catch (e) {
        if (!salvageable(e)) throw e;
        p.salvage(`error while reading offset ${dst + k - bases[sourceAt(dst + k)]!}: ${e.message}`);
        out.fill(0, k, k + n);
      }
    }
    return out;
  };

  /**
   * A producer of items in order from block status. `account` hears the bytes qemu-img counts for
   * its progress (convert_co_do_copy: data, and zeros when -S 0), in qemu-img's pieces: a status
   * extent cut every IO_BUF_SIZE from its start, or one cluster when compressing.
   */
  const producer = (account: (n: number) => void) => {
    // Where the next item starts, and the status extent it is in.
    let pos = 0;
    let seq = 0;
    let pending: { kind: Kind; start: number; end: number; src?: HostPlace } | undefined;
    /** The start of qemu-img's next progress piece in `pending`. */
    let pieceAt = 0;
    // (With -S 0 zeros are data already: statusAt.)
    const counted = (kind: Kind) => kind === 'data';
    return async (): Promise<Item | undefined> => {
      if (pos >= p.total) return undefined;
      if (p.compressed) {
        // Whole clusters: a cluster is skipped only when all of it is zero/unallocated.
        const st = await statusAt(pos, p.total - pos);
        const end = Math.min(p.total, pos + st.length);
        const wholeEnd = end >= p.total ? p.total : pos + Math.floor((end - pos) / clusterSize) * clusterSize;
        if (st.kind !== 'data' && wholeEnd > pos) {
          const item: Item = { seq: seq++, dstOffset: pos, length: Math.min(wholeEnd - pos, ZERO_CHUNK), kind: st.kind };
          if (counted(item.kind)) account(item.length);
          pos += item.length;
          return item;
        }
        const item: Item = { seq: seq++, dstOffset: pos, length: Math.min(clusterSize, p.total - pos), kind: 'data' };
        account(item.length);
        pos += item.length;
        return item;
      }
      if (!pending || pos >= pending.end) {
        const st = await statusAt(pos, p.total - pos);
        pending = { kind: st.kind, start: pos, end: pos + st.length, ...(st.src ? { src: st.src } : {}) };
        pieceAt = pos;
      }
      // Cut at chunk boundaries of the target's address space, so requests cover whole clusters.
      const chunk = pending.kind === 'data' ? dataChunk : ZERO_CHUNK;
      const boundary = alignUp(pos + 1, chunk);
      const len = Math.min(pending.end - pos, boundary - pos);
      const src = pending.src;
      const item: Item = { seq: seq++, dstOffset: pos, length: len, kind: pending.kind, ...(src ? { src: { node: src.node, offset: src.offset + (pos - pending.start) } } : {}) };
      pos += len;
      if (counted(item.kind)) {
        for (; pieceAt < pos; pieceAt += QEMU_IO_BUF_SIZE) account(Math.min(QEMU_IO_BUF_SIZE, pending.end - pieceAt));
      }
      return item;
    };
  };

  // qemu-img first walks the whole status to learn how much it will copy: its progress is a
  // share of that, not of the virtual size.
  let counted = 0;
  const count = producer((n) => (counted += n));
  while (await count()) if (ctl.signal?.aborted) throw cancelled();
  progress.setTotal(counted);
  const nextItem = producer((n) => progress.add(n));

  // In-order writes: item k writes after item k-1's write settled (a chain of promises).
  let writeTail: Promise<void> = Promise.resolve();
  let producing: Promise<unknown> = Promise.resolve();

  const doItem = async (item: Item, orderedAfter: Promise<void>, laneBuf: Buffer | undefined, ordered: () => void) => {
    if (item.kind === 'skip' || (item.kind === 'zero' && p.zeroInit)) {
      await orderedAfter;
      bytesSkipped += item.length;
      return;
    }
    if (item.kind === 'zero') {
      await orderedAfter;
      await throttled(item.length);
      await target.writeZeroes(item.dstOffset, item.length, { mayUnmap: p.sparseSize > 0 });
      bytesSkipped += item.length;
      return;
    }
    // Compressed writes may hand the buffer to a worker (transfer): they always get a fresh one.
    let buf: Buffer | undefined = await readFor(item.dstOffset, item.length, p.compressed ? undefined : laneBuf, item.src);
    await orderedAfter;
    try {
      await writeData(item, buf, ordered);
    } catch (e) {
      throw copyError('writing at byte', item.dstOffset, e);
    }
    buf = undefined; // the lane drops its buffer once the write settled
  };

  /** Write the data item read into `buf`. */
  const writeData = async (item: Item, buf: Buffer, ordered: () => void) => {
    if (p.compressed) {
      if (p.zeroInit && isZero(buf)) bytesSkipped += item.length;
      else {
        await throttled(item.length);
        await target.writeCompressed(item.dstOffset, buf);
        bytesCopied += item.length;
      }
      return;
    }
    const runs = p.sparseSize === 0 ? [{ start: 0, length: item.length, zero: false }] : qemuZeroRuns(buf, Math.floor(item.dstOffset / SECTOR), p.sparseSize / SECTOR, zeroAlignment);
    await throttled(runs.reduce((n, r) => (r.zero && p.zeroInit ? n : n + r.length), 0));
    /** Where each data run may be written directly (Reservation.host), by run index. */
    const places: (HostPlace | undefined)[] = [];
    if (p.reserve) {
      let reserved = true;
      for (const [k, r] of runs.entries()) {
        if (r.zero) continue;
        const res = await target.reserve(item.dstOffset + r.start, r.length);
        if (!res) reserved = false;
        else places[k] = res.host;
      }
      // Allocated in order: the next request may allocate now and the data writes overlap. A
      // driver that declined keeps this request's write in order instead.
      if (reserved) ordered();
    }
    for (const [k, r] of runs.entries()) {
      if (!r.zero) {
        const data = buf.subarray(r.start, r.start + r.length);
        const place = places[k];
        if (place) await place.node.write(place.offset, data);
        else await target.write(item.dstOffset + r.start, data);
        bytesCopied += r.length;
      } else {
        if (!p.zeroInit) await target.writeZeroes(item.dstOffset + r.start, r.length, { mayUnmap: true });
        bytesSkipped += r.length;
      }
    }
  };

  // Each lane owns one data buffer for the whole copy; it lends it to the target's write and
  // reuses it only after that write settled (BlockNode.write's ownership rule). Page-aligned:
  // the kernel's page-cache copies into malloc'd buffers cost three times as much.
  const laneBuffers: Buffer[] = [];
  let laneCount = 0;
  await lanes(p.parallel, async () => {
    if (ctl.signal?.aborted) throw cancelled();
    // The producer runs one request at a time, in order.
    let item: Item | undefined;
    let myTurn!: () => void;
    let prev!: Promise<void>;
    const gate = producing.then(async () => {
      item = await nextItem();
      if (item && p.inOrder) {
        prev = writeTail;
        writeTail = new Promise<void>((r) => (myTurn = r));
      }
    });
    producing = gate.catch(() => {});
    await gate;
    if (!item) return false;
    const it = item as Item;
    let laneBuf: Buffer | undefined;
    if (it.kind === 'data' && !p.compressed) laneBuf = laneBuffers.pop() ?? (laneCount++, alignedBuffer(dataChunk, PAGE_ALIGNMENT, false));
    try {
      await doItem(it, p.inOrder ? prev : Promise.resolve(), laneBuf, () => {
        if (p.inOrder) myTurn();
      });
    } finally {
      if (p.inOrder) myTurn();
      if (laneBuf) laneBuffers.push(laneBuf);
    }
    return true;
  });
  if (ctl.signal?.aborted) throw cancelled();
  progress.finish();
  return { bytesCopied, bytesSkipped };
}

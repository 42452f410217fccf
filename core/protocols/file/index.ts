// The `file` protocol (QEMU block/file-posix.c; qemu-block-drivers(7) "file" options): a regular
// file as a growable byte array. Positional I/O through one FileHandle, holes through
// SEEK_DATA/SEEK_HOLE, discard and write-zeroes through hole punching / zero range, preallocation
// off/falloc/full, btrfs nocow on create, direct I/O (cache.direct=on, cache=none) with aligned
// buffers, and QEMU-compatible image locking (lock.ts).
// Options: filename, locking=on|off|auto, aio=threads|native|io_uring (checked as QEMU checks it:
// native needs cache.direct=on; requests go through libuv's pool in every mode), cache.direct, cache.no-flush,
// cache=none|directsync|writeback|writethrough|unsafe (shorthand), and the create options
// preallocation and nocow.

import { open as fsOpen, stat, type FileHandle } from 'node:fs/promises';
import { constants, read as fsRead, write as fsWrite } from 'node:fs';
import { BlockError, fromSystemError, invalidArgument, unsupported } from '../../errors.ts';
import type { BlockStatus, NodeImpl, ProtocolDriver, ProtocolOpenContext, TruncateOptions, WriteFlags, ZeroFlags } from '../../block/types.ts';
import { PERM_ALL, PERM_RESIZE, PERM_WRITE } from '../../block/types.ts';
import { optBool, optString, type OptionsTree } from '../../block/options-tree.ts';
import type { OptionSpec } from '../../block/options-schema.ts';
import { alignedBuffer, hostOps, isAligned, PAGE_ALIGNMENT } from '../../host/index.ts';
import { Mutex } from '../../util/range-lock.ts';
import { FileLock, lockHint, type LockingMode } from './lock.ts';
import { CACHE_MODES, CACHE_MODE_FLAGS, parseCacheMode } from '../../block/cache-mode.ts';
import { parseAioMode } from '../../block/aio-mode.ts';

/** allocate_first_block's write sizes (QEMU BDRV_SECTOR_SIZE and MAX_BLOCKSIZE). */
const FIRST_BLOCK_MIN = 512;
const FIRST_BLOCK_MAX = 4096;

/** Largest single pread/pwrite (Linux caps a transfer at 2 GiB - 4 KiB; stay well below). */
const MAX_IO = 256 << 20;
/** Chunk for preallocation=full and fallback zero writes. */
const ZERO_WRITE_CHUNK = 4 << 20;
/** Request alignment with O_DIRECT: 4 KiB covers 512e and 4Kn devices and every common fs. */
const DIRECT_IO_ALIGNMENT = 4096;
/** Reads of at least this many bytes get page-aligned buffers (PAGE_ALIGNMENT). */
const BULK_READ = 64 << 10;

/** Optional process-wide observer of every path this driver opens or creates (fuzz/security tests). */
export const fileOpenObserver: { onOpen?: (path: string) => void } = {};

/** XFS's extent size hint for a new file (QEMU sets it with FS_IOC_FSSETXATTR where the file
 *  system has it, and ignores it elsewhere; Platter accepts and checks the value, and leaves the
 *  file system's default). At most UINT32_MAX, the field's width. */
export const EXTENT_SIZE_HINT_OPTION: OptionSpec = { name: 'extent_size_hint', type: 'size', max: 0xffffffff, help: 'Extent size hint for the image file, 0 to disable', advanced: true };

export const fileCreateOptions: readonly OptionSpec[] = [
  { name: 'preallocation', type: 'enum', values: ['off', 'falloc', 'full'], default: 'off', help: 'Preallocation mode (allowed values: off, falloc, full)' },
  { name: 'nocow', type: 'bool', default: false, help: 'Turn off copy-on-write (valid only on btrfs)', advanced: true },
  EXTENT_SIZE_HINT_OPTION,
];

export interface FileNodeInit {
  fh: FileHandle;
  size: number;
  name: string;
  readOnly: boolean;
  lock: FileLock | undefined;
  /** O_DIRECT: buffers must be aligned to `alignment`. */
  direct: boolean;
  alignment: number;
  noFlush: boolean;
  /** A regular file (not a block or character device). */
  regular: boolean;
  /** A block device: write-zeroes and discard go through its ioctls (BLKZEROOUT, BLKDISCARD). */
  blockDevice?: boolean;
}


export class FileNode implements NodeImpl {
  readonly growable = true;
  readonly zeroNoFallback = true;
  readonly maxTransfer = MAX_IO;
  readonly alignment: number;
  #size: number;
  readonly #fh: FileHandle;
  readonly #name: string;
  readonly #lock: FileLock | undefined;
  readonly #readOnly: boolean;
  readonly #direct: boolean;
  readonly #noFlush: boolean;
  readonly #regular: boolean;
  readonly #blockDevice: boolean;
  /** Serialises size changes (truncate, extending zero writes). */
  readonly #resize = new Mutex();

  constructor(init: FileNodeInit) {
    this.#fh = init.fh;
    this.#size = init.size;
    this.#name = init.name;
    this.#readOnly = init.readOnly;
    this.#lock = init.lock;
    this.#direct = init.direct;
    this.#noFlush = init.noFlush;
    this.#regular = init.regular;
    this.#blockDevice = init.blockDevice ?? false;
    this.alignment = init.alignment;
  }

  /** A regular file's unwritten bytes are holes that read as zero; a device's hold old data
   *  (file-posix: bdrv_has_zero_init_1 for files, none for host_device). */
  hasZeroInit(): boolean {
    return this.#regular;
  }

  get size(): number {
    return this.#size;
  }

  get noFlush(): boolean {
    return this.#noFlush;
  }

  get fd(): number {
    return this.#fh.fd;
  }

  get hostFd(): number {
    return this.#fh.fd;
  }

  /** The lock bytes this node holds (empty without locking), for diagnostics and tests. */
  get lockedBytes(): number[] {
    return this.#lock?.bytes ?? [];
  }

  async read(offset: number, length: number): Promise<Buffer> {
    // Large reads land in page-aligned memory, where the kernel's copy is fastest (aligned.ts).
    const buf = this.#direct ? alignedBuffer(length, this.alignment) : length >= BULK_READ ? alignedBuffer(length, PAGE_ALIGNMENT, false) : Buffer.allocUnsafe(length);
    await this.#pread(buf, offset, length);
    return buf;
  }

  async readInto(offset: number, length: number, into: Buffer): Promise<void> {
    if (this.#direct && !isAligned(into, this.alignment)) {
      (await this.read(offset, length)).copy(into);
      return;
    }
    await this.#pread(into, offset, length);
  }

  /** Fill buf[0, length) from `offset` (zeros past the end of the file). */
  async #pread(buf: Buffer, offset: number, length: number): Promise<void> {
    let done = 0;
    while (done < length) {
      const bytesRead = await this.#io(false, buf, done, length - done, offset + done).catch((e) => {
        throw fromSystemError(e, { path: this.#name, op: 'read', offset: offset + done });
      });
      done += bytesRead;
      // Past EOF (or the file shrank underneath us): zeros, as QEMU pads short reads. With O_DIRECT
      // a short read means EOF too (and a retry at the unaligned offset would fail with EINVAL).
      if (bytesRead === 0 || (this.#direct && done < length)) {
        buf.fill(0, done, length);
        break;
      }
    }
  }

  async write(offset: number, data: Buffer, flags: WriteFlags = {}): Promise<void> {
    let src = data;
    if (this.#direct && !isAligned(data, this.alignment)) {
      src = alignedBuffer(data.length, this.alignment);
      data.copy(src);
    }
    let done = 0;
    while (done < src.length) {
      const bytesWritten = await this.#io(true, src, done, src.length - done, offset + done).catch((e) => {
        throw fromSystemError(e, { path: this.#name, op: 'write', offset: offset + done });
      });
      done += bytesWritten;
    }
    if (offset + src.length > this.#size) this.#size = offset + src.length;
    if (flags.fua) await this.flush();
  }

  /**
   * Zeros, cheapest first (QEMU handle_aiocb_write_zeroes[_unmap]): with mayUnmap punch a hole;
   * otherwise FALLOC_FL_ZERO_RANGE, else punch + re-allocate; else write zero buffers. A range
   * past EOF just extends the file (reads as a hole).
   */
  async writeZeroes(offset: number, length: number, flags: ZeroFlags): Promise<void> {
    const host = hostOps();
    const end = offset + length;
    const inside = Math.max(0, Math.min(end, this.#size) - offset);
    if (inside > 0 && this.#blockDevice) {
      // A block device (QEMU handle_aiocb_write_zeroes_block): BLKZEROOUT, else zero buffers.
      // (QEMU skips BLKZEROOUT without O_DIRECT for Linux 3.10's stale page cache; kernels since
      // 4.x drop the cached range in the ioctl, so Platter uses it in both modes.)
      let done = false;
      try {
        done = (await host.device?.zeroOut(this.fd, offset, inside)) ?? false;
      } catch (e) {
        throw fromSystemError(e, { path: this.#name, op: 'write-zeroes', offset });
      }
      if (!done) {
        for (let p = offset; p < offset + inside; p += ZERO_WRITE_CHUNK) {
          await this.write(p, this.#zeroBuffer(Math.min(ZERO_WRITE_CHUNK, offset + inside - p)));
        }
      }
      return;
    }
    if (inside > 0) {
      let done = false;
      try {
        if (flags.mayUnmap) done = await host.punchHole(this.fd, offset, inside);
        if (!done) done = await host.zeroRange(this.fd, offset, inside);
        if (!done && (await host.punchHole(this.fd, offset, inside))) {
          await host.allocate(this.fd, offset, inside).catch(() => false); // re-allocate: best effort, zeros already
          done = true;
        }
      } catch (e) {
        throw fromSystemError(e, { path: this.#name, op: 'write-zeroes', offset });
      }
      // BDRV_REQ_NO_FALLBACK (QEMU_AIO_NO_FALLBACK): no slow zero writes.
      if (!done && flags.noFallback) throw new BlockError('Unsupported', 'Operation not supported', { path: this.#name, op: 'write-zeroes', offset });
      if (!done) {
        for (let p = offset; p < offset + inside; p += ZERO_WRITE_CHUNK) {
          await this.write(p, this.#zeroBuffer(Math.min(ZERO_WRITE_CHUNK, offset + inside - p)));
        }
      }
    }
    if (end > this.#size) {
      await this.#resize.run(async () => {
        if (end > this.#size) await this.#setLength(end);
      });
    }
  }

  async discard(offset: number, length: number): Promise<void> {
    if (offset >= this.#size) return;
    try {
      if (this.#blockDevice) {
        await hostOps().device?.discard(this.fd, offset, Math.min(length, this.#size - offset));
        return;
      }
      await hostOps().punchHole(this.fd, offset, Math.min(length, this.#size - offset));
    } catch (e) {
      throw fromSystemError(e, { path: this.#name, op: 'discard', offset });
    }
  }

  /**
   * Data or hole at `offset` (QEMU raw_co_block_status / find_allocation). Without SEEK_DATA
   * (filesystem or OS cannot tell) everything is reported as data, as QEMU does; past EOF, or
   * in a trailing hole (ENXIO), zeros.
   */
  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    const host = hostOps();
    const end = Math.min(offset + length, this.#size);
    const zero = (len: number): BlockStatus => ({ offset, length: len, data: false, zero: true, allocated: true, hostOffset: offset });
    const data = (len: number): BlockStatus => ({ offset, length: len, data: true, zero: false, allocated: true, hostOffset: offset });
    if (offset >= this.#size) return zero(length);
    const next = host.seekData(this.fd, offset);
    if (next === undefined) return data(end - offset);
    if (next === -1 || next >= end) return zero(end - offset); // a hole to `end` (or to EOF)
    if (next > offset) return zero(next - offset);
    const hole = host.seekHole(this.fd, offset);
    // A hole "at" offset right after SEEK_DATA said data (a racing punch): call it data, 1 block.
    const dataEnd = hole === undefined || hole <= offset ? end : Math.min(hole, end);
    // Data up to a partial block at EOF covers that whole block (QEMU: no partial requests of
    // the request alignment), as far as asked.
    if (dataEnd === this.#size && this.alignment > 1) return data(Math.min(Math.ceil(dataEnd / this.alignment) * this.alignment, offset + length) - offset);
    return data(dataEnd - offset);
  }

  /** The file's allocated blocks (st_blocks), as QEMU's raw_get_allocated_file_size. */
  async allocatedSize(): Promise<number | undefined> {
    try {
      return (await this.#fh.stat()).blocks * 512;
    } catch {
      return undefined;
    }
  }

  async flush(): Promise<void> {
    if (this.#readOnly || this.#noFlush) return;
    await this.#fh.datasync().catch((e) => {
      throw fromSystemError(e, { path: this.#name, op: 'flush' });
    });
  }

  /** Resize (QEMU raw_regular_truncate): off = ftruncate (sparse), falloc = posix_fallocate of the
   *  new range, full = write zeros into it. Preallocation applies only to growth. */
  async truncate(size: number, options: TruncateOptions): Promise<void> {
    const prealloc = options.preallocation ?? 'off';
    if (!this.#regular) {
      // A device keeps its size (QEMU file-posix): growing it is an error, anything else does
      // nothing, unless the caller needs the exact size.
      // (QEMU raw_co_truncate checks the exact size first.)
      if (options.exact && size !== this.#size) throw unsupported('Cannot resize device files', { path: this.#name, op: 'truncate' });
      if (size > this.#size) throw invalidArgument('Cannot grow device files', { path: this.#name, op: 'truncate' });
      return;
    }
    await this.#resize.run(async () => {
      const old = this.#size;
      if (size < old && (prealloc === 'falloc' || prealloc === 'full')) {
        throw unsupported('Cannot use preallocation for shrinking files', { path: this.#name, op: 'truncate' });
      }
      if (size <= old || prealloc === 'off' || prealloc === 'metadata') {
        await this.#setLength(size);
        if (old === 0 && size > 0) await this.#allocateFirstBlock(size);
      } else if (prealloc === 'falloc') {
        let ok: boolean;
        try {
          ok = await hostOps().allocate(this.fd, old, size - old);
        } catch (e) {
          const err = fromSystemError(e, { path: this.#name, op: 'truncate' });
          throw new BlockError(err.kind, `Could not preallocate new data: ${err.message}`, err.context, { cause: e, code: 'Worded' });
        }
        if (!ok) throw unsupported('Could not preallocate new data: Operation not supported', { path: this.#name, op: 'truncate' }, { code: 'Worded' });
        this.#size = Math.max(this.#size, size);
        if (this.#size !== size) await this.#setLength(size);
        if (old === 0) await this.#allocateFirstBlock(size);
      } else {
        await this.#setLength(size);
        await this.#writeZerosBuffered(old, size);
      }
    });
  }

  /** QEMU's allocate_first_block: a file grown from nothing gets its first block written (zeros:
   *  512 bytes below 4 KiB, else 4 KiB), so block-size probing finds data there. qemu-img map and
   *  measure see that block as data, and a file smaller than 512 bytes becomes 512 bytes long.
   *  An optimisation in QEMU: failures are ignored. */
  async #allocateFirstBlock(size: number): Promise<void> {
    const n = size < FIRST_BLOCK_MAX ? FIRST_BLOCK_MIN : FIRST_BLOCK_MAX;
    try {
      await this.#fh.write(Buffer.alloc(n), 0, n, 0);
      this.#size = Math.max(this.#size, n);
    } catch {
      // as QEMU: only an optimisation
    }
  }

  async #setLength(size: number): Promise<void> {
    try {
      await this.#fh.truncate(size);
    } catch (e) {
      throw fromSystemError(e, { path: this.#name, op: 'truncate' });
    }
    this.#size = size;
  }

  /** Write real zeros over [start, end) (preallocation=full). The range starts at the old EOF,
   *  which O_DIRECT may refuse as unaligned, so direct nodes write through a second, buffered fd.
   *  (Closing that fd would drop POSIX-fallback locks; OFD locks, the norm on Linux, are not
   *  affected. Direct I/O with locking=on on a kernel without OFD is the one case at risk.) */
  async #writeZerosBuffered(start: number, end: number): Promise<void> {
    const fh = this.#direct ? await fsOpen(this.#name, constants.O_WRONLY).catch((e) => {
      throw fromSystemError(e, { path: this.#name, op: 'truncate' });
    }) : this.#fh;
    try {
      const zeros = Buffer.alloc(Math.min(ZERO_WRITE_CHUNK, end - start));
      for (let p = start; p < end; ) {
        const n = Math.min(zeros.length, end - p);
        const { bytesWritten } = await fh.write(zeros, 0, n, p).catch((e) => {
          throw fromSystemError(e, { path: this.#name, op: 'truncate', offset: p });
        });
        p += bytesWritten;
      }
      if (fh !== this.#fh) await fh.datasync();
    } finally {
      if (fh !== this.#fh) await fh.close();
    }
  }

  #zeroBuffer(length: number): Buffer {
    return this.#direct ? alignedBuffer(length, this.alignment) : Buffer.alloc(length);
  }

  /** Data requests in flight, and who waits for them to end (close). */
  #inflight = 0;
  #drained: (() => void) | undefined;
  #closing = false;

  /**
   * One pread/pwrite through libuv's callback API on the handle's descriptor: the data path skips
   * FileHandle's per-call wrapper and result object (a measurable share of a convert's main-thread
   * time). The FileHandle still owns the descriptor; close() waits for requests in flight, so a
   * request never runs on a closed (or reused) descriptor.
   */
  #io(write: boolean, buf: Buffer, at: number, length: number, position: number): Promise<number> {
    if (this.#closing) return Promise.reject(new BlockError('Io', 'File is closed', { path: this.#name, op: write ? 'write' : 'read', offset: position }));
    this.#inflight++;
    return new Promise<number>((resolve, reject) => {
      const done = (err: NodeJS.ErrnoException | null, n: number) => {
        if (--this.#inflight === 0) this.#drained?.();
        if (err) reject(err);
        else resolve(n);
      };
      if (write) fsWrite(this.#fh.fd, buf, at, length, position, done);
      else fsRead(this.#fh.fd, buf, at, length, position, done);
    });
  }

  async close(): Promise<void> {
    this.#closing = true;
    if (this.#inflight > 0) await new Promise<void>((r) => (this.#drained = r));
    try {
      this.#lock?.release();
    } finally {
      await this.#fh.close();
    }
  }
}

function lockingMode(v: string | undefined): LockingMode {
  if (v === undefined || v === 'auto') return 'auto';
  if (v === 'on' || v === 'off') return v;
  throw invalidArgument(`Parameter 'locking' does not accept value '${v}' (expecting 'on', 'off' or 'auto')`);
}

/** cache.direct / cache.no-flush, or the `cache=<mode>` shorthand. */
export function cacheOptions(options: OptionsTree): { direct: boolean; noFlush: boolean } {
  const cache = options['cache'];
  if (cache === undefined) return { direct: false, noFlush: false };
  if (typeof cache === 'string') {
    const mode = parseCacheMode(cache);
    if (mode === undefined) throw invalidArgument(`Invalid cache mode '${cache}' (expecting one of: ${CACHE_MODES.join(', ')})`);
    return CACHE_MODE_FLAGS[mode];
  }
  if (typeof cache !== 'object' || Array.isArray(cache)) throw invalidArgument(`Parameter 'cache' expects a group of options`);
  const tree = cache as OptionsTree;
  return { direct: optBool(tree, 'direct') ?? false, noFlush: optBool(tree, 'no-flush') ?? false };
}

/** Open flags for a regular file: O_DIRECT on Linux (elsewhere direct I/O is an fcntl). */
function openFlags(readOnly: boolean, direct: boolean): number {
  let flags = readOnly ? constants.O_RDONLY : constants.O_RDWR;
  if (direct) {
    if (constants.O_DIRECT !== undefined) flags |= constants.O_DIRECT;
    else if (process.platform !== 'darwin') throw unsupported('cache.direct=on is not supported on this host');
  }
  return flags;
}

/**
 * "Create" an image on a host device (QEMU's host_device create, bdrv_co_create_opts_simple): a
 * device cannot be made or grown, so check that it is large enough, then zero its first sector so
 * that no old image header is probed there. Nothing else of the device is touched.
 */
async function createOnDevice(filename: string, size: number, options: Record<string, unknown>): Promise<void> {
  const prealloc = options['preallocation'];
  if (prealloc !== undefined && prealloc !== 'off') throw unsupported(`Unsupported preallocation mode '${String(prealloc)}'`, { path: filename, op: 'create' });
  let fh: FileHandle;
  try {
    fh = await fsOpen(filename, constants.O_RDWR);
  } catch (e) {
    throw fromSystemError(e, { path: filename, op: 'create' });
  }
  try {
    const deviceSize = hostOps().deviceSize(fh.fd) ?? (await fh.stat()).size;
    if (size > deviceSize) throw invalidArgument('Cannot grow device files', { path: filename, op: 'create' });
    const head = Math.min(512, deviceSize);
    if (head > 0) await fh.write(Buffer.alloc(head), 0, head, 0);
  } finally {
    await fh.close();
  }
}

export const fileDriver: ProtocolDriver = {
  kind: 'protocol',
  name: 'file',
  description: 'A regular file on the host',
  prefixes: ['file'],
  createOptions: fileCreateOptions,

  /**
   * Create or empty the file (QEMU raw_co_create): open without truncating, take the write and
   * resize locks and check nobody uses it, only then empty it, set nocow, and size it.
   */
  async create(filename, size, options, ctx) {
    fileOpenObserver.onOpen?.(filename);
    const existing = await stat(filename).catch(() => undefined);
    if (existing && (existing.isBlockDevice() || existing.isCharacterDevice())) return createOnDevice(filename, size, options);
    let fh: FileHandle;
    try {
      fh = await fsOpen(filename, constants.O_RDWR | constants.O_CREAT, 0o644);
    } catch (e) {
      throw fromSystemError(e, { path: filename, op: 'create' });
    }
    let lock: FileLock | undefined;
    try {
      lock = FileLock.acquire(fh.fd, filename, 'auto', PERM_WRITE | PERM_RESIZE, PERM_ALL, ctx.warn);
      const node = new FileNode({ fh, size: 0, name: filename, readOnly: false, lock: undefined, direct: false, alignment: 1, noFlush: false, regular: true });
      await node.truncate(0, {});
      if (options['nocow'] === true) hostOps().setNoCow(fh.fd);
      const prealloc = (options['preallocation'] as TruncateOptions['preallocation']) ?? 'off';
      if (size > 0) await node.truncate(size, { preallocation: prealloc });
    } catch (e) {
      if (e instanceof BlockError && e.kind === 'Locked' && !e.hint) {
        throw new BlockError('Locked', e.message, e.context, { hint: lockHint(filename), code: 'LockHeld', cause: e.cause });
      }
      throw e;
    } finally {
      lock?.release();
      await fh.close();
    }
  },

  open: (ctx) => openPosix(ctx, 'file'),
};

/** Which of file-posix's drivers opens: 'file' wants a regular file, the others a device. */
export type PosixKind = 'file' | 'host_device' | 'host_cdrom';

/** What a device driver adds to the common open (QEMU's hdev_open / cdrom_open). */
export interface PosixDeviceHooks {
  /** Extra open(2) flags (host_cdrom: O_NONBLOCK, so a drive without a disc still opens). */
  extraFlags?: number;
  /** Called with the open handle before the node is made (host_cdrom: media checks). */
  onOpen?(fh: FileHandle, size: number): void | Promise<void>;
  /** Makes the node (host_cdrom: a FileNode with the tray calls). */
  construct?(init: FileNodeInit): FileNode;
}

/**
 * QEMU's raw_open_common for the three file-posix drivers: stat, open, the kind check ('file'
 * requires a regular file; host_device and host_cdrom a character or block device), the
 * device's read-only flag for a writable open, locking, the size (BLKGETSIZE64 for a device)
 * and the O_DIRECT alignment.
 */
export async function openPosix(ctx: ProtocolOpenContext, kind: PosixKind, hooks: PosixDeviceHooks = {}): Promise<FileNode> {
  const filename = optString(ctx.options, 'filename') ?? ctx.filename;
  const aioText = optString(ctx.options, 'aio');
  const aio = aioText === undefined ? 'threads' : parseAioMode(aioText);
  if (aio === undefined) throw new BlockError('InvalidArgument', `invalid parameter value: ${aioText}`, { path: filename, op: 'open' }, { code: 'ProtocolWorded' });
  const locking = lockingMode(optString(ctx.options, 'locking'));
  const { direct, noFlush } = cacheOptions(ctx.options);
  fileOpenObserver.onOpen?.(filename);
  let st;
  try {
    st = await stat(filename);
  } catch (e) {
    throw fromSystemError(e, { path: filename, op: 'open' });
  }
  const device = kind !== 'file';
  // QEMU's raw_open_common words it so (a Parallels .hdd bundle is such a folder). A device is
  // refused by 'file' in QEMU 7.2 too: host_device is the driver for it.
  if (!device && !st.isFile()) throw new BlockError('InvalidArgument', `'file' driver requires '${filename}' to be a regular file`, { path: filename, op: 'open' }, { code: 'ProtocolWorded' });
  let fh: FileHandle;
  try {
    fh = await fsOpen(filename, openFlags(ctx.readOnly, direct) | (hooks.extraFlags ?? 0));
  } catch (e) {
    throw fromSystemError(e, { path: filename, op: 'open' });
  }
  try {
    // QEMU raw_open_common: Linux AIO works only on files opened with O_DIRECT.
    if (aio === 'native' && !direct) {
      throw new BlockError('InvalidArgument', 'aio=native was specified, but it requires cache.direct=on, which was not specified.', { path: filename, op: 'open' }, { code: 'ProtocolWorded' });
    }
    const host = hostOps();
    if (device && !ctx.readOnly && host.device?.isReadOnly(fh.fd)) {
      // QEMU's check_hdev_writable: EACCES, worded "The device is not writable".
      throw new BlockError('Permission', 'The device is not writable: Permission denied', { path: filename, op: 'open' }, { code: 'ProtocolWorded' });
    }
    // Checked on the open descriptor, as QEMU does (fstat after open).
    const fst = await fh.stat();
    if (device && !(fst.isBlockDevice() || fst.isCharacterDevice())) {
      throw new BlockError('InvalidArgument', `'${kind}' driver requires '${filename}' to be either a character or block device`, { path: filename, op: 'open' }, { code: 'ProtocolWorded' });
    }
    if (direct && constants.O_DIRECT === undefined && !host.setDirectIo(fh.fd)) {
      throw unsupported('cache.direct=on is not supported on this host', { path: filename, op: 'open' });
    }
    const lock = FileLock.acquire(fh.fd, filename, locking, ctx.perm, ctx.sharedPerm, ctx.warn, host);
    let size = fst.size;
    if (!fst.isFile()) size = host.deviceSize(fh.fd) ?? fst.size;
    const needsAlignment = direct && constants.O_DIRECT !== undefined;
    const alignment = needsAlignment ? Math.max(DIRECT_IO_ALIGNMENT, host.deviceBlockSize(fh.fd) ?? 0) : 1;
    await hooks.onOpen?.(fh, size);
    const init: FileNodeInit = { fh, size, name: filename, readOnly: ctx.readOnly, lock, direct: needsAlignment, alignment, noFlush, regular: fst.isFile(), blockDevice: fst.isBlockDevice() };
    return hooks.construct ? hooks.construct(init) : new FileNode(init);
  } catch (e) {
    await fh.close().catch(() => {});
    throw e;
  }
}

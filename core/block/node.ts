// BlockNode: an open driver instance with its children, and the generic request layer of
// docs/architecture.md. Everything here is done once for every driver: bounds checks, read-only
// enforcement, request alignment (read-modify-write, serialised per aligned range), splitting at
// maxTransfer, defaults for missing capabilities, and "not supported by this format" errors.

import { BlockError, invalidArgument, unsupported } from '../errors.ts';
import type { AmendContext, BitmapCapability, BlockDriver, BlockStatus, CheckResult, DriverInfo, NodeImpl, RepairMode, Reservation, SnapshotCapability, TruncateOptions, WriteFlags, ZeroFlags } from './types.ts';
import type { OptionValues } from './options-schema.ts';
import { NO_CHECK_MESSAGE } from './types.ts';
import type { DebugEvent } from './debug-events.ts';
import type { OptionsTree } from './options-tree.ts';
import { RangeLock } from '../util/range-lock.ts';

/** Zero buffers are shared read-only slices of one allocation (never written to). */
const ZERO_CHUNK = 1 << 20;
let zeroChunk: Buffer | undefined;
function zeros(length: number): Buffer {
  if (length <= ZERO_CHUNK) {
    zeroChunk ??= Buffer.alloc(ZERO_CHUNK);
    return zeroChunk.subarray(0, length);
  }
  return Buffer.alloc(length);
}
/** Largest zero buffer written at once when a driver has no writeZeroes. */
const ZERO_WRITE_CHUNK = ZERO_CHUNK;

export interface BlockNodeInit {
  driver: BlockDriver;
  impl: NodeImpl;
  filename: string;
  readOnly: boolean;
  file?: BlockNode;
  /** Extra children that close with this node (vmdk extents, qcow2 data file). */
  children?: BlockNode[];
  /** The driver-specific options this node was opened with (for json: filenames). */
  options?: Record<string, unknown>;
  /** The whole options tree an image was opened from (format, file child, ...), to open it again
   *  as it was (commit reopens its base read-write, filters and all). */
  openedWith?: OptionsTree;
}

export class BlockNode {
  readonly driver: BlockDriver;
  readonly impl: NodeImpl;
  readonly filename: string;
  readonly readOnly: boolean;
  readonly file: BlockNode | undefined;
  backing: BlockNode | undefined;
  readonly children: BlockNode[];
  readonly options: Record<string, unknown>;
  readonly openedWith: OptionsTree | undefined;
  #closed = false;
  readonly #rmw = new RangeLock();

  constructor(init: BlockNodeInit) {
    this.driver = init.driver;
    this.impl = init.impl;
    this.filename = init.filename;
    this.readOnly = init.readOnly;
    this.file = init.file;
    this.children = init.children ?? [];
    this.options = init.options ?? {};
    this.openedWith = init.openedWith;
  }

  get size(): number {
    return this.impl.size;
  }

  /** The length QEMU's bdrv_getlength gives this node: a protocol node's in whole sectors (a
   *  1000-byte file is 1024 bytes long to info and map at the top), a format's as it is. */
  get qemuLength(): number {
    return this.driver.kind === 'protocol' ? Math.ceil(this.size / 512) * 512 : this.size;
  }

  get format(): string {
    return this.driver.name;
  }

  /** Whether writeZeroes takes ZeroFlags.noFallback (BDRV_REQ_NO_FALLBACK) here. */
  get zeroNoFallback(): boolean {
    return !!this.impl.writeZeroes && this.impl.zeroNoFallback === true;
  }

  get alignment(): number {
    return this.impl.alignment ?? 1;
  }

  /** flush() never reaches stable storage (cache=unsafe). */
  get noFlush(): boolean {
    return this.impl.noFlush === true;
  }

  get clusterSize(): number | undefined {
    return this.impl.clusterSize;
  }

  /** Every unwritten byte reads as zero (QEMU's bdrv_has_zero_init): false when a backing node
   *  shows through or the driver cannot promise it. */
  get hasZeroInit(): boolean {
    if (this.backing || this.impl.backingFile) return false;
    return this.impl.hasZeroInit?.() ?? false;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Persistent dirty bitmaps, where the format has them (qcow2); undefined elsewhere, and each
   *  caller words that as QEMU does for its operation. */
  get bitmaps(): BitmapCapability | undefined {
    return this.impl.bitmaps;
  }

  /** The name qemu-img shows for this node when the driver refreshes it (vvfat's json: name). */
  get qemuFilename(): string | undefined {
    return this.impl.qemuFilename?.();
  }

  /** For a protocol whose names are not local paths (ssh): the directory relative names in the
   *  image resolve against, as a name ending in '/' (QEMU's bdrv_dirname); calling it throws
   *  where QEMU cannot name one. Undefined for local files. */
  get remoteDirname(): (() => string) | undefined {
    const impl = this.impl;
    return impl.dirname ? () => impl.dirname!() : undefined;
  }

  /** The backing file the image records (name and format as stored), if any. */
  get backingFile(): { filename: string; format?: string } | undefined {
    return this.impl.backingFile;
  }

  /** Internal snapshots, where the format has them; the changing operations refuse a read-only
   *  node here, once for every driver. */
  get snapshots(): SnapshotCapability | undefined {
    const s = this.impl.snapshots;
    if (!s) return undefined;
    const writable = <A extends unknown[], R>(op: string, f: (...a: A) => Promise<R>) => async (...a: A): Promise<R> => {
      this.#checkOpen(op);
      this.#checkWritable(op);
      return f(...a);
    };
    return {
      list: () => s.list(),
      create: writable('snapshot-create', (snap: Parameters<SnapshotCapability['create']>[0]) => s.create(snap)),
      apply: writable('snapshot-apply', (id: string) => s.apply(id)),
      delete: writable('snapshot-delete', (id: string) => s.delete(id)),
      openView: (id: string) => s.openView(id),
    };
  }

  /** The driver can check its metadata (qemu-img check). */
  get canCheck(): boolean {
    return this.impl.check !== undefined;
  }

  /** qemu-img check (-r: repair, which needs a writable node). */
  async check(repair: RepairMode | undefined): Promise<CheckResult> {
    this.#checkOpen('check');
    if (!this.impl.check) throw new BlockError('Unsupported', NO_CHECK_MESSAGE, this.#ctx('check'), { code: 'NoCheck' });
    if (repair) this.#checkWritable('check');
    return this.impl.check(repair);
  }

  /** The driver can change its creation options in place (qemu-img amend). */
  get canAmend(): boolean {
    return this.driver.kind === 'format' && this.impl.amend !== undefined;
  }

  async amend(options: OptionValues, ctx: AmendContext): Promise<void> {
    this.#checkOpen('amend');
    this.#checkWritable('amend');
    if (!this.canAmend) throw unsupported(`Format driver '${this.format}' does not support option amendment`, this.#ctx('amend'));
    await this.impl.amend!(options, ctx);
  }

  /** The driver can drop all its data at once so reads fall through to the backing (commit). */
  get canMakeEmpty(): boolean {
    return this.impl.makeEmpty !== undefined;
  }

  async makeEmpty(): Promise<void> {
    this.#checkOpen('make-empty');
    this.#checkWritable('make-empty');
    if (!this.impl.makeEmpty) throw unsupported('Operation not supported', this.#ctx('make-empty'));
    await this.impl.makeEmpty();
  }

  /** The image can record a (new) backing file (qemu-img rebase, commit). */
  get canSetBackingFile(): boolean {
    return this.impl.setBackingFile !== undefined;
  }

  async setBackingFile(filename: string | undefined, format: string | undefined): Promise<void> {
    this.#checkOpen('set-backing-file');
    this.#checkWritable('set-backing-file');
    if (!this.impl.setBackingFile) throw unsupported('Operation not supported', this.#ctx('set-backing-file'));
    await this.impl.setBackingFile(filename, format);
  }

  /** The format stores compressed clusters (convert -c). */
  get canWriteCompressed(): boolean {
    return this.impl.writeCompressed !== undefined;
  }

  /** Write whole clusters compressed (the driver compresses on the worker pool). */
  async writeCompressed(offset: number, data: Buffer): Promise<void> {
    this.#checkOpen('write-compressed');
    this.#checkWritable('write-compressed');
    this.#checkRange('write-compressed', offset, data.length);
    if (!this.impl.writeCompressed) throw unsupported('Compression not supported for this file format', this.#ctx('write-compressed', offset));
    try {
      await this.impl.writeCompressed(offset, data);
    } catch (e) {
      this.#wrap(e, 'write-compressed', offset);
    }
  }

  /** The driver allocates ahead of data writes (NodeImpl.reserve): convert's in-order mode. */
  get canReserve(): boolean {
    return this.impl.reserve !== undefined;
  }

  /** Where QEMU's last block-status answer for the image ends (NodeImpl.qemuLastStatusUnit). */
  qemuLastStatusUnit(): number | undefined {
    return this.impl.qemuLastStatusUnit?.();
  }

  /** An OS descriptor to pread this node's bytes from directly (the file protocol without an
   *  alignment rule), for convert's copy of data whose host place block status gave. */
  get hostFd(): number | undefined {
    return this.alignment === 1 ? this.impl.hostFd : undefined;
  }

  /** Writes may pass the end (a file grows; NodeImpl.growable). */
  get growable(): boolean {
    return this.impl.growable === true;
  }

  /** The bottom protocol node of this node's file chain. */
  get protocolNode(): BlockNode {
    let n: BlockNode = this;
    while (n.file) n = n.file;
    return n;
  }

  /**
   * The file whose directory relative names in this node's metadata (a backing file) are
   * relative to, QEMU's bdrv_dirname: the one at the bottom of the chain of primary (`file`)
   * children, through filters such as blkdebug. Undefined where no single file is at the bottom
   * (a quorum's several children: "Cannot generate a base directory for quorum nodes").
   */
  get baseFile(): BlockNode | undefined {
    const bottom = this.protocolNode;
    return bottom.children.length > 0 ? undefined : bottom;
  }

  /** A node above raised a named event on this one (QEMU's BLKDBG_EVENT on a child): passed to
   *  the driver if it listens (blkdebug), else nothing. */
  debugEvent(event: DebugEvent): void {
    this.impl.debugEvent?.(event);
  }

  /** The driver listens for debug events (it injects errors): requests to it must not be
   *  short-cut past the driver that raises them. */
  get handlesDebugEvents(): boolean {
    return this.impl.debugEvent !== undefined;
  }

  #ctx(op: string, offset?: number) {
    return { path: this.filename, op, ...(offset !== undefined ? { offset } : {}), node: this.driver.name };
  }

  #checkOpen(op: string): void {
    if (this.#closed) throw new BlockError('Io', 'Block node is closed', this.#ctx(op));
  }

  #checkRange(op: string, offset: number, length: number, growable = false): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || !Number.isSafeInteger(offset + length)) {
      throw invalidArgument(`Invalid request: offset ${offset}, length ${length}`, this.#ctx(op, offset));
    }
    if (!growable && offset + length > this.size) {
      throw new BlockError('Io', `Request of ${length} bytes at offset ${offset} is beyond the end of the image (size ${this.size})`, this.#ctx(op, offset));
    }
  }

  #checkWritable(op: string): void {
    if (this.readOnly) throw new BlockError('Permission', 'Block node is read-only', this.#ctx(op));
  }

  #wrap(err: unknown, op: string, offset?: number): never {
    if (err instanceof BlockError) throw err.context.path ? err : err.withContext(this.#ctx(op, offset));
    throw err;
  }

  /** Read `length` bytes at `offset`; the returned Buffer belongs to the caller. */
  async read(offset: number, length: number): Promise<Buffer> {
    this.#checkOpen('read');
    const growable = this.impl.growable ?? false;
    this.#checkRange('read', offset, length, growable);
    if (length === 0) return Buffer.alloc(0);
    if (growable && offset + length > this.size) {
      // Past the end of a growable node: zeros (a file reads short there).
      const out = Buffer.alloc(length);
      const avail = Math.max(0, this.size - offset);
      if (avail > 0) (await this.read(offset, avail)).copy(out, 0);
      return out;
    }
    try {
      const align = this.alignment;
      const start = alignDown(offset, align);
      const end = Math.min(alignUp(offset + length, align), alignUp(this.size, align));
      if (start === offset && end === offset + length) return await this.#readSplit(start, end - start);
      const whole = await this.#readSplit(start, end - start);
      return whole.subarray(offset - start, offset - start + length);
    } catch (e) {
      this.#wrap(e, 'read', offset);
    }
  }

  /** Read `into.length` bytes at `offset` into `into`, which the caller owns before and after. */
  async readInto(offset: number, into: Buffer): Promise<void> {
    this.#checkOpen('read');
    const length = into.length;
    const impl = this.impl;
    const growable = impl.growable ?? false;
    this.#checkRange('read', offset, length, growable);
    if (length === 0) return;
    const align = this.alignment;
    if (!impl.readInto || offset % align !== 0 || length % align !== 0 || (growable && offset + length > this.size)) {
      (await this.read(offset, length)).copy(into);
      return;
    }
    try {
      const max = impl.maxTransfer ?? length;
      for (let done = 0; done < length; done += max) {
        const n = Math.min(max, length - done);
        await impl.readInto(offset + done, n, into.subarray(done, done + n));
      }
    } catch (e) {
      this.#wrap(e, 'read', offset);
    }
  }

  async #readSplit(offset: number, length: number): Promise<Buffer> {
    const max = this.impl.maxTransfer;
    if (!max || length <= max) return this.impl.read(offset, length);
    const out = Buffer.allocUnsafe(length);
    for (let done = 0; done < length; done += max) {
      const n = Math.min(max, length - done);
      (await this.impl.read(offset + done, n)).copy(out, done);
    }
    return out;
  }

  /** Write `data` at `offset`. The caller may reuse `data` once the promise settles. */
  async write(offset: number, data: Buffer, flags: WriteFlags = {}): Promise<void> {
    this.#checkOpen('write');
    this.#checkWritable('write');
    this.#checkRange('write', offset, data.length, this.impl.growable);
    if (data.length === 0) return;
    const impl = this.impl;
    if (!impl.write) throw unsupported(`Driver '${this.driver.name}' does not support writing`, this.#ctx('write', offset));
    try {
      const align = this.alignment;
      if (offset % align === 0 && data.length % align === 0) {
        await this.#writeSplit(offset, data, flags);
        return;
      }
      // Read-modify-write of the partial head/tail blocks, serialised against overlapping RMWs.
      const start = alignDown(offset, align);
      const end = alignUp(offset + data.length, align);
      const release = await this.#rmw.acquire(start, end);
      try {
        const buf = end <= this.size ? await this.#readSplit(start, end - start) : await this.read(start, end - start);
        data.copy(buf, offset - start);
        await this.#writeSplit(start, buf, flags);
      } finally {
        release();
      }
    } catch (e) {
      this.#wrap(e, 'write', offset);
    }
  }

  async #writeSplit(offset: number, data: Buffer, flags: WriteFlags): Promise<void> {
    const max = this.impl.maxTransfer;
    if (!max || data.length <= max) return this.impl.write!(offset, data, flags);
    for (let done = 0; done < data.length; done += max) {
      await this.impl.write!(offset + done, data.subarray(done, Math.min(data.length, done + max)), flags);
    }
  }

  /** Allocate [offset, offset+length) ahead of writing it (NodeImpl.reserve); undefined when the
   *  driver has no such step or declined it. */
  async reserve(offset: number, length: number): Promise<Reservation | undefined> {
    this.#checkOpen('reserve');
    this.#checkWritable('reserve');
    this.#checkRange('reserve', offset, length, false);
    if (!this.impl.reserve) return undefined;
    if (length === 0) return {};
    try {
      return await this.impl.reserve(offset, length);
    } catch (e) {
      this.#wrap(e, 'reserve', offset);
    }
  }

  /** Make [offset, offset+length) read as zeros (qemu-io write -z). */
  async writeZeroes(offset: number, length: number, flags: ZeroFlags = {}): Promise<void> {
    this.#checkOpen('write-zeroes');
    this.#checkWritable('write-zeroes');
    this.#checkRange('write-zeroes', offset, length, this.impl.growable);
    if (length === 0) return;
    if (flags.noFallback) {
      // BDRV_REQ_NO_FALLBACK (bdrv_co_pwritev_part, bdrv_co_do_pwrite_zeroes): a misaligned
      // request or a driver that cannot promise speed fails at once, nothing written.
      const a = this.alignment;
      if (!this.impl.writeZeroes || !this.impl.zeroNoFallback || offset % a !== 0 || length % a !== 0) {
        throw new BlockError('Unsupported', 'Operation not supported', this.#ctx('write-zeroes', offset));
      }
    }
    try {
      const align = this.alignment;
      const head = Math.min(length, (align - (offset % align)) % align);
      const alignedEnd = alignDown(offset + length, align);
      if (head > 0) await this.write(offset, zeros(head));
      const bodyStart = offset + head;
      if (alignedEnd > bodyStart) {
        if (this.impl.writeZeroes) await this.impl.writeZeroes(bodyStart, alignedEnd - bodyStart, flags);
        else for (let p = bodyStart; p < alignedEnd; p += ZERO_WRITE_CHUNK) await this.#writeSplit(p, zeros(Math.min(ZERO_WRITE_CHUNK, alignedEnd - p)), {});
      }
      const tailStart = Math.max(alignedEnd, bodyStart);
      if (offset + length > tailStart) await this.write(tailStart, zeros(offset + length - tailStart));
    } catch (e) {
      this.#wrap(e, 'write-zeroes', offset);
    }
  }

  /** Advisory: free the range if the driver can; reads may then return anything the format says. */
  async discard(offset: number, length: number): Promise<void> {
    this.#checkOpen('discard');
    this.#checkWritable('discard');
    this.#checkRange('discard', offset, length);
    if (!this.impl.discard || length === 0) return;
    const align = this.alignment;
    const start = alignUp(offset, align);
    const end = alignDown(offset + length, align);
    if (end <= start) return;
    try {
      await this.impl.discard(start, end - start);
    } catch (e) {
      this.#wrap(e, 'discard', offset);
    }
  }

  /** Status of the extent starting at `offset` (at most `length` bytes, at least one byte): as
   *  QEMU reports it, or with `precise` the driver's own allocation where QEMU reports none
   *  (FormatDriver.qemuHidesAllocation). */
  async blockStatus(offset: number, length: number, opts: StatusOptions = {}): Promise<BlockStatus> {
    this.#checkOpen('block-status');
    // A growable node answers past its end too (reads there return zeros).
    this.#checkRange('block-status', offset, length, this.impl.growable);
    if (length === 0) throw invalidArgument('block status of an empty range', this.#ctx('block-status', offset));
    const hidden = this.driver.kind === 'format' && this.driver.qemuHidesAllocation === true && !opts.precise;
    if (!this.impl.blockStatus || hidden) return { offset, length, data: true, zero: false, allocated: true };
    try {
      const st = await this.impl.blockStatus(offset, length);
      if (st.offset !== offset || st.length <= 0 || st.length > length) {
        throw new BlockError('Io', `driver '${this.driver.name}' answered block status for [${st.offset}, +${st.length}) when asked for [${offset}, +${length})`, this.#ctx('block-status', offset));
      }
      // Data on a node that injects errors is read through this driver, so that the events it
      // raises on the way (read_aio) reach that node, as every read does in QEMU.
      if (st.hostNode?.handlesDebugEvents) {
        const { hostNode: _bypass, ...through } = st;
        return through;
      }
      return st;
    } catch (e) {
      this.#wrap(e, 'block-status', offset);
    }
  }

  async flush(): Promise<void> {
    this.#checkOpen('flush');
    if (this.readOnly) return;
    try {
      // QEMU's bdrv_co_flush raises these on the primary child around the driver's own flush.
      this.file?.debugEvent('flush_to_os');
      await this.impl.flush?.();
      this.file?.debugEvent('flush_to_disk');
      if (this.file && !this.file.readOnly) await this.file.flush();
      for (const c of this.children) if (!c.readOnly) await c.flush();
    } catch (e) {
      this.#wrap(e, 'flush');
    }
  }

  async truncate(size: number, options: TruncateOptions = {}): Promise<void> {
    this.#checkOpen('truncate');
    this.#checkWritable('truncate');
    if (!Number.isSafeInteger(size) || size < 0) throw invalidArgument(`Invalid size ${size}`, this.#ctx('truncate'));
    if (!this.impl.truncate) throw unsupported('Image format driver does not support resize', this.#ctx('truncate')); // QEMU's bdrv_co_truncate
    if (size < this.size && !options.shrink) {
      throw new BlockError('InvalidArgument', 'Use the --shrink option to perform a shrink operation.', this.#ctx('truncate'), { code: 'ShrinkNeedsFlag' });
    }
    try {
      await this.impl.truncate(size, options);
    } catch (e) {
      this.#wrap(e, 'truncate');
    }
  }

  /** Host storage this node takes (NodeImpl.allocatedSize), undefined when unknown. */
  async allocatedSize(): Promise<number | undefined> {
    this.#checkOpen('allocated-size');
    return this.impl.allocatedSize?.();
  }

  async info(): Promise<DriverInfo> {
    this.#checkOpen('info');
    return (await this.impl.info?.()) ?? {};
  }

  /** Close this node, then its children (backing, extents, file), each exactly once. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    let first: unknown;
    const attempt = async (f: () => Promise<void>) => {
      try {
        await f();
      } catch (e) {
        first ??= e;
      }
    };
    await attempt(() => this.impl.close());
    if (this.backing) await attempt(() => this.backing!.close());
    for (const c of this.children) await attempt(() => c.close());
    if (this.file) await attempt(() => this.file!.close());
    if (first) this.#wrap(first, 'close');
  }

  /** Iterate the backing chain, this node first. */
  *chain(): Generator<BlockNode> {
    for (let n: BlockNode | undefined = this; n; n = n.backing) yield n;
  }
}

export interface StatusOptions {
  /** The driver's own allocation even where QEMU reports none (convert's skipping of holes). */
  precise?: boolean;
}

export function alignDown(v: number, align: number): number {
  return align <= 1 ? v : v - (v % align);
}

export function alignUp(v: number, align: number): number {
  return align <= 1 ? v : Math.ceil(v / align) * align;
}

/**
 * Block status through the backing chain (what convert and map need): answers for `top` at
 * `offset`, descending into backing nodes for ranges `top` does not allocate. `depth` is how many
 * layers down the answer came from (qemu-img map "depth"); past the bottom, ranges read as zero.
 */
export async function blockStatusAbove(top: BlockNode, offset: number, length: number, opts: StatusOptions = {}): Promise<BlockStatus & { depth: number; node: BlockNode | undefined }> {
  let node: BlockNode | undefined = top;
  let depth = 0;
  let len = length;
  while (node) {
    if (offset >= node.size) {
      return { offset, length: len, data: false, zero: true, allocated: false, depth, node: undefined };
    }
    const st = await node.blockStatus(offset, Math.min(len, node.size - offset), opts);
    if (st.allocated || !node.backing) {
      return { ...st, depth, node };
    }
    len = st.length;
    node = node.backing;
    depth++;
  }
  return { offset, length: len, data: false, zero: true, allocated: false, depth, node: undefined };
}

export { zeros as zeroBuffer };

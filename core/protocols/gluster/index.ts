// The `gluster` protocol (QEMU 7.2 block/gluster.c; qemu-block-drivers(7) "GlusterFS disk
// images"): a file on a GlusterFS volume through libgfapi (gfapi.ts), named by a gluster[+tcp|
// +unix|+rdma]:// URI or by the JSON form with a list of volfile servers (options.ts).
// As QEMU's driver: whole sectors move (request alignment 512), reads past the end read zeros and
// writes past it grow the file, flush is glfs_fsync, discard glfs_discard, write-zeroes
// glfs_zerofill, block status SEEK_DATA/SEEK_HOLE (when the server answers them correctly, tested
// at open), truncate shrinks or grows with preallocation off, falloc or full (growth only), create
// makes the file 0600 (O_TRUNC) with the size rounded up to 512. No locks (QEMU's gluster driver
// takes none). Every library call runs off the main thread (koffi async).

import { BlockError, invalidArgument, unsupported } from '../../errors.ts';
import type { BlockStatus, NodeImpl, ProtocolDriver, TruncateOptions, WriteFlags, ZeroFlags } from '../../block/types.ts';
import type { OptionSpec } from '../../block/options-schema.ts';
import type { OptionsTree } from '../../block/options-tree.ts';
import { glusterConfig, glusterJsonName, parseGlusterUri, type GlusterConfig } from './options.ts';
import { gfapi, gfapiError, glfsAcquire, glfsRelease, O_CREAT, O_DIRECT, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY, SEEK_DATA, SEEK_END, SEEK_HOLE, type Ptr } from './gfapi.ts';
import { cacheOptions } from '../file/index.ts';

/** QEMU's GLUSTER_MAX_TRANSFER (some GlusterFS versions fail at 1 GiB). */
const GLUSTER_MAX_TRANSFER = 512 << 20;
/** Largest request this node hands the library at once (the generic layer splits larger ones). */
const MAX_REQUEST = 16 << 20;
const ENXIO = 6;

/** QEMU's create options of the driver (qemu_gluster_create_opts), in its order. */
export const glusterCreateOptions: readonly OptionSpec[] = [
  { name: 'preallocation', type: 'enum', values: ['off', 'falloc', 'full'], default: 'off', help: 'Preallocation mode (allowed values: off, falloc, full)' },
  { name: 'debug', type: 'number', help: 'Gluster log level, valid range is 0-9', advanced: true },
  { name: 'logfile', type: 'string', help: 'Logfile path of libgfapi', advanced: true },
];

/** QEMU's qemu_gluster_do_truncate: preallocation applies to growth only. */
async function doTruncate(fd: Ptr, size: number, prealloc: string): Promise<void> {
  const api = gfapi();
  const cur = await api.lseek(fd, 0, SEEK_END);
  if (cur.ret < 0) throw new BlockError('Io', `Failed to determine current size: ${gfapiError(cur.errno, 'lseek').message}`, { op: 'truncate' });
  const current = cur.ret;
  if (current > size && prealloc !== 'off') throw unsupported('Cannot use preallocation for shrinking files');
  if (current === size) return;
  const resize = async (): Promise<void> => {
    const r = await api.ftruncate(fd, size);
    if (r.ret !== 0) throw new BlockError('Io', `Could not resize file: ${gfapiError(r.errno, 'ftruncate').message}`, { op: 'truncate' });
  };
  if (prealloc === 'off') return resize();
  if (prealloc === 'falloc') {
    const r = await api.fallocate(fd, 0, current, size - current);
    if (r.ret !== 0) throw new BlockError('Io', `Could not preallocate data: ${gfapiError(r.errno, 'fallocate').message}`, { op: 'truncate' });
    return;
  }
  if (prealloc === 'full') {
    await resize();
    const r = await api.zerofill(fd, current, size - current);
    if (r.ret !== 0) throw new BlockError('Io', `Could not zerofill the new area: ${gfapiError(r.errno, 'zerofill').message}`, { op: 'truncate' });
    return;
  }
  throw invalidArgument(`Unsupported preallocation mode: ${prealloc}`);
}

export class GlusterNode implements NodeImpl {
  readonly growable = true;
  /** QEMU's driver moves whole sectors (bdrv_co_readv/writev). */
  readonly alignment = 512;
  readonly maxTransfer = Math.min(MAX_REQUEST, GLUSTER_MAX_TRANSFER);
  #size: number;
  #fs: Ptr;
  #fd: Ptr | undefined;
  readonly #seekData: boolean;
  readonly #name: string;

  constructor(fs: Ptr, fd: Ptr, size: number, seekData: boolean, name: string) {
    this.#fs = fs;
    this.#fd = fd;
    this.#size = size;
    this.#seekData = seekData;
    this.#name = name;
  }

  get size(): number {
    return this.#size;
  }

  #handle(op: string): Ptr {
    if (this.#fd === undefined) throw new BlockError('Io', 'Input/output error', { op, path: this.#name });
    return this.#fd;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.alloc(length);
    await this.readInto(offset, length, buf);
    return buf;
  }

  async readInto(offset: number, length: number, into: Buffer): Promise<void> {
    const fd = this.#handle('read');
    const target = into.length === length ? into : into.subarray(0, length);
    const r = await gfapi().pread(fd, target, length, offset);
    if (r.ret < 0) throw gfapiError(r.errno, 'read', this.#name).withContext({ offset });
    // Past the end of the file: zeros (the node is growable).
    if (r.ret < length) target.fill(0, r.ret, length);
  }

  async write(offset: number, data: Buffer, flags: WriteFlags = {}): Promise<void> {
    const fd = this.#handle('write');
    const r = await gfapi().pwrite(fd, data, data.length, offset);
    if (r.ret < 0) throw gfapiError(r.errno, 'write', this.#name).withContext({ offset });
    if (r.ret !== data.length) throw new BlockError('Io', 'Input/output error', { op: 'write', offset, path: this.#name });
    if (offset + data.length > this.#size) this.#size = offset + data.length;
    if (flags.fua) await this.flush();
  }

  /** glfs_zerofill (QEMU's qemu_gluster_co_pwrite_zeroes). */
  async writeZeroes(offset: number, length: number, _flags: ZeroFlags): Promise<void> {
    const fd = this.#handle('write');
    const r = await gfapi().zerofill(fd, offset, length);
    if (r.ret < 0) throw gfapiError(r.errno, 'zerofill', this.#name).withContext({ offset });
    if (offset + length > this.#size) this.#size = offset + length;
  }

  async discard(offset: number, length: number): Promise<void> {
    const fd = this.#handle('discard');
    const r = await gfapi().discard(fd, offset, length);
    if (r.ret < 0) throw gfapiError(r.errno, 'discard', this.#name).withContext({ offset });
  }

  async flush(): Promise<void> {
    const fd = this.#handle('flush');
    const r = await gfapi().fsync(fd);
    if (r.ret < 0) throw gfapiError(r.errno, 'flush', this.#name);
  }

  async truncate(size: number, options: TruncateOptions): Promise<void> {
    await doTruncate(this.#handle('truncate'), size, options.preallocation ?? 'off');
    this.#size = size;
  }

  async allocatedSize(): Promise<number | undefined> {
    if (this.#fd === undefined) return undefined;
    const r = await gfapi().allocated(this.#fd);
    return r.ret < 0 ? undefined : r.ret;
  }

  /** QEMU's qemu_gluster_co_block_status over find_allocation (SEEK_DATA, then SEEK_HOLE). */
  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    const data = (len: number): BlockStatus => ({ offset, length: len, data: true, zero: false, allocated: true, hostOffset: offset });
    const zero = (len: number): BlockStatus => ({ offset, length: len, data: false, zero: true, allocated: true, hostOffset: offset });
    if (!this.#seekData || this.#fd === undefined) return data(length);
    const api = gfapi();
    const d = await api.lseek(this.#fd, offset, SEEK_DATA);
    if (d.ret < 0) return d.errno === ENXIO ? zero(length) : data(length);
    if (d.ret < offset) return data(length);
    if (d.ret > offset) return zero(Math.min(d.ret - offset, length));
    const h = await api.lseek(this.#fd, offset, SEEK_HOLE);
    if (h.ret < 0) return h.errno === ENXIO ? zero(length) : data(length);
    if (h.ret <= offset) return data(length);
    // A partial sector at the end of the file counts as a whole one.
    const run = Math.ceil((h.ret - offset) / this.alignment) * this.alignment;
    return data(Math.min(run, length));
  }

  async close(): Promise<void> {
    const fd = this.#fd;
    this.#fd = undefined;
    const fs = this.#fs;
    this.#fs = undefined;
    if (fd !== undefined) await gfapi().close(fd);
    if (fs !== undefined) await glfsRelease(fs);
  }
}

/** QEMU's qemu_gluster_test_seek: SEEK_DATA at the end must fail with ENXIO where it works. */
async function testSeek(fd: Ptr): Promise<boolean> {
  const api = gfapi();
  const eof = await api.lseek(fd, 0, SEEK_END);
  if (eof.ret < 0) return false;
  const r = await api.lseek(fd, eof.ret, SEEK_DATA);
  return r.ret < 0 && r.errno === ENXIO;
}

/** The name QEMU's messages use for a node: the URI as given, or the json: form. */
function shownName(options: OptionsTree, fallback: string): string {
  if (typeof options.filename === 'string') return options.filename;
  const j = glusterJsonName(options);
  return j !== undefined ? `json:${j}` : fallback;
}

async function openGluster(cfg: GlusterConfig, name: string, readOnly: boolean, direct: boolean): Promise<GlusterNode> {
  const fs = await glfsAcquire(cfg);
  const api = gfapi();
  try {
    const flags = (readOnly ? O_RDONLY : O_RDWR) | (direct ? O_DIRECT : 0);
    const o = await api.open(fs, cfg.path, flags);
    if (!o.ret) {
      // QEMU's driver returns the errno without words: the block layer says "Could not open".
      const e = gfapiError(o.errno, 'open', name);
      throw new BlockError(e.kind, `Could not open '${name}': ${e.message}`, e.context, { cause: e });
    }
    const fd = o.ret;
    try {
      const seekData = await testSeek(fd);
      const end = await api.lseek(fd, 0, SEEK_END);
      if (end.ret < 0) throw gfapiError(end.errno, 'lseek', name);
      return new GlusterNode(fs, fd, end.ret, seekData, name);
    } catch (e) {
      await api.close(fd).catch(() => {});
      throw e;
    }
  } catch (e) {
    await glfsRelease(fs).catch(() => {});
    throw e;
  }
}

export const glusterDriver: ProtocolDriver = {
  kind: 'protocol',
  name: 'gluster',
  description: 'A file on a GlusterFS volume (libgfapi)',
  prefixes: ['gluster', 'gluster+tcp', 'gluster+unix', 'gluster+rdma'],
  takesNoLocks: true,
  createOptions: glusterCreateOptions,
  refreshFilename: (options: OptionsTree) => glusterJsonName(options),
  /** QEMU's qemu_gluster_co_create_opts: the URI, size rounded up to 512, preallocation, log. */
  async create(filename, size, options, ctx) {
    const tree: OptionsTree = { filename };
    if (options['debug'] !== undefined) tree.debug = options['debug'] as number;
    if (options['logfile'] !== undefined) tree.logfile = String(options['logfile']);
    const prealloc = String(options['preallocation'] ?? 'off');
    if (!['off', 'falloc', 'full'].includes(prealloc)) throw invalidArgument(`Parameter 'preallocation' does not accept value '${prealloc}'`);
    const cfg = glusterConfig(tree, ctx.warn);
    const fs = await glfsAcquire(cfg);
    const api = gfapi();
    try {
      const c = await api.creat(fs, cfg.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600);
      if (!c.ret) throw gfapiError(c.errno, 'creat', filename);
      let failure: unknown;
      try {
        await doTruncate(c.ret, Math.ceil(size / 512) * 512, prealloc);
      } catch (e) {
        failure = e;
      }
      const cl = await api.close(c.ret);
      if (failure) throw failure;
      if (cl.ret !== 0) throw gfapiError(cl.errno, 'close', filename);
    } finally {
      await glfsRelease(fs);
    }
  },
  async open(ctx) {
    const options = ctx.options;
    const cfg = glusterConfig(options, ctx.warn);
    const { direct } = cacheOptions(ctx.options);
    return openGluster(cfg, shownName(options, ctx.filename), ctx.readOnly, direct);
  },
};

export { parseGlusterUri };

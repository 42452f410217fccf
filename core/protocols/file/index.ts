// The `file` protocol (QEMU block/file-posix.c): a regular file as a growable byte array.
// Positional I/O through one FileHandle, holes through SEEK_DATA/SEEK_HOLE, discard and
// write-zeroes through hole punching, preallocation off/falloc/full, and image locking (lock.ts).
// Options: filename, locking=on|off|auto, aio (accepted, ignored), cache.direct / cache=none
// (O_DIRECT), and the create options preallocation and nocow.

import { open as fsOpen, stat, type FileHandle } from 'node:fs/promises';
import { constants } from 'node:fs';
import { BlockError, fromSystemError, invalidArgument, unsupported } from '../../errors.ts';
import type { BlockStatus, NodeImpl, ProtocolDriver, TruncateOptions, ZeroFlags } from '../../block/types.ts';
import { optBool, optString, optTree } from '../../block/options-tree.ts';
import type { OptionSpec } from '../../block/options-schema.ts';
import { hostOps } from '../../host/index.ts';
import { FileLock, type LockingMode } from './lock.ts';

/** Largest single pread/pwrite (Linux caps a transfer at 2 GiB - 4 KiB; stay well below). */
const MAX_IO = 256 << 20;
/** Chunk for preallocation=full writes of zeros. */
const FULL_PREALLOC_CHUNK = 4 << 20;

export const fileCreateOptions: readonly OptionSpec[] = [
  { name: 'preallocation', type: 'enum', values: ['off', 'falloc', 'full'], default: 'off', help: 'Preallocation mode (allowed values: off, falloc, full)' },
  { name: 'nocow', type: 'bool', default: false, help: 'Turn off copy-on-write (valid only on btrfs)', advanced: true },
];

class FileNode implements NodeImpl {
  readonly growable = true;
  readonly maxTransfer = MAX_IO;
  readonly alignment: number;
  #size: number;
  readonly #fh: FileHandle;
  readonly #name: string;
  readonly #lock: FileLock | undefined;
  readonly #readOnly: boolean;

  constructor(fh: FileHandle, size: number, name: string, readOnly: boolean, lock: FileLock | undefined, alignment: number) {
    this.#fh = fh;
    this.#size = size;
    this.#name = name;
    this.#readOnly = readOnly;
    this.#lock = lock;
    this.alignment = alignment;
  }

  get size(): number {
    return this.#size;
  }

  get fd(): number {
    return this.#fh.fd;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.#fh.read(buf, done, length - done, offset + done).catch((e) => {
        throw fromSystemError(e, { path: this.#name, op: 'read', offset: offset + done });
      });
      if (bytesRead === 0) {
        buf.fill(0, done); // past EOF (file shrank underneath us): zeros, as QEMU pads short reads
        break;
      }
      done += bytesRead;
    }
    return buf;
  }

  async write(offset: number, data: Buffer): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.#fh.write(data, done, data.length - done, offset + done).catch((e) => {
        throw fromSystemError(e, { path: this.#name, op: 'write', offset: offset + done });
      });
      done += bytesWritten;
    }
    if (offset + data.length > this.#size) this.#size = offset + data.length;
  }

  async writeZeroes(offset: number, length: number, flags: ZeroFlags): Promise<void> {
    const host = hostOps();
    const end = offset + length;
    if (offset < this.#size) {
      const inside = Math.min(end, this.#size) - offset;
      const done = flags.mayUnmap ? await host.punchHole(this.fd, offset, inside) : await host.zeroRange(this.fd, offset, inside);
      if (!done && !(await host.punchHole(this.fd, offset, inside))) {
        for (let p = offset; p < offset + inside; p += FULL_PREALLOC_CHUNK) {
          await this.write(p, Buffer.alloc(Math.min(FULL_PREALLOC_CHUNK, offset + inside - p)));
        }
      }
    }
    if (end > this.#size) await this.truncate(end, {});
  }

  async discard(offset: number, length: number): Promise<void> {
    if (offset >= this.#size) return;
    await hostOps().punchHole(this.fd, offset, Math.min(length, this.#size - offset));
  }

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    const host = hostOps();
    const end = Math.min(offset + length, this.#size);
    if (offset >= this.#size) return { offset, length, data: false, zero: true, allocated: true, hostOffset: offset };
    const data = host.seekData(this.fd, offset);
    if (data === undefined) return { offset, length: end - offset, data: true, zero: false, allocated: true, hostOffset: offset };
    if (data === -1 || data >= end) {
      // A hole up to `end` (or up to EOF: the rest of the file is a hole).
      return { offset, length: end - offset, data: false, zero: true, allocated: true, hostOffset: offset };
    }
    if (data > offset) return { offset, length: data - offset, data: false, zero: true, allocated: true, hostOffset: offset };
    const hole = host.seekHole(this.fd, offset);
    const dataEnd = hole === undefined || hole <= offset ? end : Math.min(hole, end);
    return { offset, length: dataEnd - offset, data: true, zero: false, allocated: true, hostOffset: offset };
  }

  async flush(): Promise<void> {
    if (this.#readOnly) return;
    await this.#fh.datasync().catch((e) => {
      throw fromSystemError(e, { path: this.#name, op: 'flush' });
    });
  }

  async truncate(size: number, options: TruncateOptions): Promise<void> {
    const prealloc = options.preallocation ?? 'off';
    const old = this.#size;
    try {
      if (size <= old || prealloc === 'off' || prealloc === 'metadata') {
        await this.#fh.truncate(size);
      } else if (prealloc === 'falloc') {
        if (!(await hostOps().allocate(this.fd, old, size - old))) {
          throw unsupported('Could not preallocate new data: posix_fallocate is not supported here', { path: this.#name });
        }
      } else {
        await this.#fh.truncate(size);
        for (let p = old; p < size; p += FULL_PREALLOC_CHUNK) {
          await this.write(p, Buffer.alloc(Math.min(FULL_PREALLOC_CHUNK, size - p)));
        }
      }
    } catch (e) {
      throw fromSystemError(e, { path: this.#name, op: 'truncate' });
    }
    this.#size = size;
  }

  async close(): Promise<void> {
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

export const fileDriver: ProtocolDriver = {
  kind: 'protocol',
  name: 'file',
  description: 'A regular file on the host',
  prefixes: ['file'],
  createOptions: fileCreateOptions,

  async create(filename, size, options, ctx) {
    let fh: FileHandle;
    try {
      fh = await fsOpen(filename, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC, 0o644);
    } catch (e) {
      throw fromSystemError(e, { path: filename, op: 'create' });
    }
    try {
      if (options['nocow'] === true) hostOps().setNoCow(fh.fd);
      const node = new FileNode(fh, 0, filename, false, undefined, 1);
      const prealloc = (options['preallocation'] as TruncateOptions['preallocation']) ?? 'off';
      if (size > 0) await node.truncate(size, { preallocation: prealloc });
      void ctx;
    } finally {
      await fh.close();
    }
  },

  async open(ctx) {
    const filename = optString(ctx.options, 'filename') ?? ctx.filename;
    const locking = lockingMode(optString(ctx.options, 'locking'));
    const cache = optTree(ctx.options, 'cache');
    const direct = optBool(cache, 'direct') ?? false;
    let st;
    try {
      st = await stat(filename);
    } catch (e) {
      throw fromSystemError(e, { path: filename, op: 'open' });
    }
    if (st.isDirectory()) throw new BlockError('InvalidArgument', 'Is a directory', { path: filename, op: 'open' });
    let flags = ctx.readOnly ? constants.O_RDONLY : constants.O_RDWR;
    if (direct) flags |= constants.O_DIRECT;
    let fh: FileHandle;
    try {
      fh = await fsOpen(filename, flags);
    } catch (e) {
      throw fromSystemError(e, { path: filename, op: 'open' });
    }
    try {
      const lock = FileLock.acquire(fh.fd, filename, locking, ctx.perm, ctx.sharedPerm, ctx.warn);
      let size = st.size;
      if (!st.isFile()) size = hostOps().deviceSize(fh.fd) ?? st.size;
      // O_DIRECT needs sector-aligned buffers and offsets: 4 KiB covers every common device.
      return new FileNode(fh, size, filename, ctx.readOnly, lock, direct ? 4096 : 1);
    } catch (e) {
      await fh.close().catch(() => {});
      throw e;
    }
  },
};

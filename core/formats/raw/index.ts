// The raw format (QEMU block/raw-format.c): the guest sees the file's bytes as they are.
// Create options: preallocation (off, falloc, full), nocow (passed to the file protocol), size.
// When raw was guessed by probing, writes that would make sector 0 look like another format are
// refused, as QEMU restricts them (raw_probe_warning).

import type { BlockStatus, FormatDriver, NodeImpl, Reservation, SnapshotCapability } from '../../block/types.ts';
import type { BlockNode } from '../../block/node.ts';
import { BlockError } from '../../errors.ts';
import { PROBE_BYTES } from '../../block/types.ts';
import { EXTENT_SIZE_HINT_OPTION } from '../../protocols/file/index.ts';

/** QEMU's BDRV_SECTOR_SIZE: image lengths are whole sectors. */
const SECTOR = 512;

class RawNode implements NodeImpl {
  readonly #file: BlockNode;
  /** Set when the format was probed: would this first sector make a probe guess another format? */
  readonly #probesAsOtherFormat: ((head: Buffer, filename: string) => boolean) | undefined;

  constructor(file: BlockNode, probesAsOtherFormat: ((head: Buffer, filename: string) => boolean) | undefined) {
    this.#file = file;
    this.#probesAsOtherFormat = probesAsOtherFormat;
  }

  /** The file's size in whole sectors, as QEMU's bdrv_getlength (a partial last sector reads as
   *  zeros up to its end). */
  get size(): number {
    return Math.ceil(this.#file.size / SECTOR) * SECTOR;
  }

  get alignment(): number {
    return this.#file.alignment;
  }

  read(offset: number, length: number): Promise<Buffer> {
    this.#file.debugEvent('read_aio');
    return this.#file.read(offset, length);
  }

  readInto(offset: number, length: number, into: Buffer): Promise<void> {
    this.#file.debugEvent('read_aio');
    return this.#file.readInto(offset, into.subarray(0, length));
  }

  async write(offset: number, data: Buffer): Promise<void> {
    if (this.#probesAsOtherFormat && offset < PROBE_BYTES) {
      const head = await this.#file.read(0, Math.min(PROBE_BYTES, Math.max(this.size, offset + data.length)));
      const n = Math.min(head.length - offset, data.length);
      data.copy(head, offset, 0, n);
      if (this.#probesAsOtherFormat(head, this.#file.filename)) {
        // QEMU's EPERM: the open already warned that block 0 of a probed raw image is guarded
        // (a write that makes it look like another format would change what the next open sees).
        throw new BlockError('Permission', 'Operation not permitted', { path: this.#file.filename, offset });
      }
    }
    this.#file.debugEvent('write_aio');
    await this.#file.write(offset, data);
  }

  writeZeroes(offset: number, length: number, flags: { mayUnmap?: boolean }): Promise<void> {
    return this.#file.writeZeroes(offset, length, flags);
  }

  hasZeroInit(): boolean {
    return this.#file.hasZeroInit;
  }

  discard(offset: number, length: number): Promise<void> {
    return this.#file.discard(offset, length);
  }

  /** Guest offset N is file offset N: the layout is fixed, so writes in any order give it, and
   *  straight to the file (except where a probed image's first sector is guarded). */
  async reserve(offset: number): Promise<Reservation> {
    return this.#probesAsOtherFormat && offset < PROBE_BYTES ? {} : { host: { node: this.#file, offset } };
  }

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    const st = await this.#file.blockStatus(offset, length);
    // Neither data nor zeros below (an NBD hole that is not zero, null-co): QEMU's block layer
    // calls that unallocated, at no offset (qemu-img map: "present": false).
    if (!st.allocated) {
      const { hostOffset: _h, hostNode: _n, ...rest } = st;
      return rest;
    }
    return { ...st, allocated: true, ...(st.data && st.hostOffset === offset ? { hostNode: this.#file } : {}) };
  }

  async truncate(size: number, options: { preallocation?: 'off' | 'metadata' | 'falloc' | 'full'; exact?: boolean }): Promise<void> {
    if (options.preallocation === 'metadata') {
      throw new BlockError('Unsupported', "Unsupported preallocation mode 'metadata'", { path: this.#file.filename });
    }
    await this.#file.truncate(size, { ...options, shrink: true });
  }

  /** raw has no snapshots of its own: its file's are the image's (QEMU's bdrv_snapshot_fallback;
   *  sheepdog vdi snapshots). */
  get snapshots(): SnapshotCapability | undefined {
    return this.#file.snapshots;
  }

  async close(): Promise<void> {}
}

export const rawDriver: FormatDriver = {
  kind: 'format',
  name: 'raw',
  description: 'Raw disk image: the guest sees the file as it is (sparse where the file system allows)',
  probe: () => 1,
  createOptions: [
    { name: 'preallocation', type: 'enum', values: ['off', 'falloc', 'full'], default: 'off', help: 'Preallocation mode (allowed values: off, falloc, full)' },
    { name: 'nocow', type: 'bool', default: false, help: 'Turn off copy-on-write (valid only on btrfs)', advanced: true },
    EXTENT_SIZE_HINT_OPTION,
  ],
  async create(file, ctx) {
    const prealloc = (ctx.options['preallocation'] as 'off' | 'falloc' | 'full' | undefined) ?? 'off';
    // Whole sectors, as QEMU's file create (raw_co_create_opts rounds the size up).
    await file.truncate(Math.ceil(ctx.size / SECTOR) * SECTOR, { preallocation: prealloc, shrink: true });
  },
  async open(file, ctx) {
    return new RawNode(file, ctx.options['x-probed'] === true ? ctx.probesAsOtherFormat : undefined);
  },
};

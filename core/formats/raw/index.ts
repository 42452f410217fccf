// The raw format (QEMU block/raw-format.c): the guest sees the file's bytes as they are, or the
// window of them the runtime options `offset` and `size` name (a partition inside a disk image).
// Create options: preallocation (off, falloc, full), nocow (passed to the file protocol), size.
// When raw was guessed by probing, writes that would make sector 0 look like another format are
// refused, as QEMU restricts them (raw_probe_warning).

import type { BlockStatus, FormatDriver, NodeImpl, Reservation, SnapshotCapability } from '../../block/types.ts';
import type { BlockNode } from '../../block/node.ts';
import { BlockError } from '../../errors.ts';
import { PROBE_BYTES } from '../../block/types.ts';
import { EXTENT_SIZE_HINT_OPTION } from '../../protocols/file/index.ts';
import { optString, type OptionsTree } from '../../block/options-tree.ts';
import { invalidArgument } from '../../errors.ts';
import { parseSizeText } from '../../shared/sizes.ts';

/** QEMU's BDRV_SECTOR_SIZE: image lengths are whole sectors. */
const SECTOR = 512;

/** The window of the file the guest sees (raw_runtime_opts "offset" and "size"). */
interface RawWindow {
  offset: number;
  /** Set by the `size` option: the guest never sees past it, and the image cannot be resized. */
  fixedSize: number | undefined;
}

class RawNode implements NodeImpl {
  readonly #file: BlockNode;
  /** Set when the format was probed: would this first sector make a probe guess another format? */
  readonly #probesAsOtherFormat: ((head: Buffer, filename: string) => boolean) | undefined;
  readonly #offset: number;
  readonly #fixedSize: number | undefined;

  constructor(file: BlockNode, probesAsOtherFormat: ((head: Buffer, filename: string) => boolean) | undefined, window: RawWindow) {
    this.#file = file;
    this.#probesAsOtherFormat = probesAsOtherFormat;
    this.#offset = window.offset;
    this.#fixedSize = window.fixedSize;
  }

  /** The file's length (fileLength) less the window's offset, at most the window's size, in
   *  whole sectors (raw_getlength). */
  get size(): number {
    const rest = Math.max(0, fileLength(this.#file) - this.#offset);
    return Math.ceil((this.#fixedSize !== undefined ? Math.min(this.#fixedSize, rest) : rest) / SECTOR) * SECTOR;
  }

  get alignment(): number {
    return this.#file.alignment;
  }

  /** Zero requests go to the file as they are (raw's supported_zero_flags: the file's). */
  get zeroNoFallback(): boolean {
    return this.#file.zeroNoFallback;
  }

  read(offset: number, length: number): Promise<Buffer> {
    this.#file.debugEvent('read_aio');
    return this.#file.read(this.#offset + offset, length);
  }

  readInto(offset: number, length: number, into: Buffer): Promise<void> {
    this.#file.debugEvent('read_aio');
    return this.#file.readInto(this.#offset + offset, into.subarray(0, length));
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
    await this.#file.write(this.#offset + offset, data);
  }

  writeZeroes(offset: number, length: number, flags: { mayUnmap?: boolean }): Promise<void> {
    return this.#file.writeZeroes(this.#offset + offset, length, flags);
  }

  hasZeroInit(): boolean {
    return this.#file.hasZeroInit;
  }

  discard(offset: number, length: number): Promise<void> {
    return this.#file.discard(this.#offset + offset, length);
  }

  /** Guest offset N is file offset N: the layout is fixed, so writes in any order give it, and
   *  straight to the file (except where a probed image's first sector is guarded). */
  async reserve(offset: number): Promise<Reservation> {
    return this.#probesAsOtherFormat && offset < PROBE_BYTES ? {} : { host: { node: this.#file, offset: this.#offset + offset } };
  }

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    const at = this.#offset + offset;
    const found = await this.#file.blockStatus(at, length);
    const st = this.#offset ? { ...found, offset } : found;
    // Neither data nor zeros below (an NBD hole that is not zero, null-co): QEMU's block layer
    // calls that unallocated, at no offset (qemu-img map: "present": false).
    if (!st.allocated) {
      const { hostOffset: _h, hostNode: _n, ...rest } = st;
      return rest;
    }
    return { ...st, allocated: true, ...(st.data && st.hostOffset === at ? { hostNode: this.#file } : {}) };
  }

  async truncate(size: number, options: { preallocation?: 'off' | 'metadata' | 'falloc' | 'full'; exact?: boolean }): Promise<void> {
    if (options.preallocation === 'metadata') {
      throw new BlockError('Unsupported', "Unsupported preallocation mode 'metadata'", { path: this.#file.filename });
    }
    if (this.#fixedSize !== undefined) throw new BlockError('Unsupported', 'Cannot resize fixed-size raw disks', { path: this.#file.filename });
    await this.#file.truncate(this.#offset + size, { ...options, shrink: true });
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
    return new RawNode(file, ctx.options['x-probed'] === true ? ctx.probesAsOtherFormat : undefined, rawWindow(ctx.options, file));
  },
};

/** The file's length in whole sectors, as QEMU's bdrv_getlength of the child (a partial last
 *  sector reads as zeros up to its end). */
function fileLength(file: BlockNode): number {
  return Math.ceil(file.size / SECTOR) * SECTOR;
}

/** A size option as qemu_opts_absorb_qdict reads QEMU_OPT_SIZE, with its words for bad text. */
function sizeOption(options: OptionsTree, name: string): number | undefined {
  const text = optString(options, name);
  if (text === undefined) return undefined;
  const v = parseSizeText(text);
  if (v === undefined) {
    throw invalidArgument(`Parameter '${name}' expects a non-negative number below 2^64\nOptional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.`);
  }
  return v;
}

/** The offset/size window, checked against the file as raw_apply_options checks it. */
function rawWindow(options: OptionsTree, file: BlockNode): RawWindow {
  const offset = sizeOption(options, 'offset') ?? 0;
  const size = sizeOption(options, 'size');
  const real = fileLength(file);
  if (offset > real) throw invalidArgument(`Offset (${offset}) cannot be greater than size of the containing file (${real})`);
  // QEMU's message has two spaces before "actual".
  if (size !== undefined && real - offset < size) throw invalidArgument(`The sum of offset (${offset}) and size (${size}) has to be smaller or equal to the  actual size of the containing file (${real})`);
  if (size !== undefined && size % SECTOR !== 0) throw invalidArgument(`Specified size is not multiple of ${SECTOR}`);
  return { offset, fixedSize: size };
}

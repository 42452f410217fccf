// The vdi format driver (VirtualBox VDI v1.1 dynamic and static images, with QEMU block/vdi.c's
// behaviour): 1 MiB blocks located through an in-memory block map; new blocks are appended in
// allocation order (block data first, then the map sector, then the header's allocated count, so a
// crash leaves at worst an unreferenced block). No backing files (QEMU refuses link/parent UUIDs).

import type { BlockStatus, CheckResult, DriverInfo, FormatDriver, NodeImpl, RepairMode, ZeroFlags } from '../../block/types.ts';
import type { BlockNode } from '../../block/node.ts';
import { invalidImage, unsupported, type BlockErrorContext } from '../../errors.ts';
import { Mutex } from '../../util/range-lock.ts';
import { refineWithFile } from '../../block/host-status.ts';
import {
  VDI_BLOCK_SIZE,
  VDI_DISK_SIZE_MAX,
  VDI_HEADER_BYTES,
  VDI_SECTOR_SIZE,
  VDI_SIGNATURE,
  VDI_TYPE_STATIC,
  bmapBytes,
  decodeVdiHeader,
  encodeVdiHeader,
  newVdiHeader,
  validateVdiHeader,
  type VdiHeader,
} from './header.ts';
import {
  VDI_BMAP_ENTRIES_PER_SECTOR,
  VDI_BMAP_ENTRY_SIZE,
  checkBlockMap,
  checkedDataBlock,
  decodeBlockMap,
  encodeBlockMap,
  isAllocated,
  newBlockMap,
} from './block-map.ts';

/** Byte offset of the signature field (for probing). */
const SIGNATURE_OFFSET = 0x40;
/** A block map whose first entries up to the one being set fit in this many bytes is written with
 *  the header in a single write (images up to 16 GiB with 1 MiB blocks); bigger maps take two. */
const ATOMIC_MAP_BYTES = 64 << 10;

class VdiNode implements NodeImpl {
  readonly size: number;
  readonly alignment = VDI_SECTOR_SIZE;
  readonly clusterSize: number;
  readonly #file: BlockNode;
  readonly #header: VdiHeader;
  readonly #map: Uint32Array;
  readonly #ctx: BlockErrorContext;
  /** Serialises block allocation and the map/header updates that follow it. */
  readonly #alloc = new Mutex();
  /** The data block the next allocation takes. */
  #nextBlock: number;

  constructor(file: BlockNode, header: VdiHeader, size: number, map: Uint32Array, ctx: BlockErrorContext) {
    this.#file = file;
    this.#header = header;
    this.size = size;
    this.clusterSize = header.blockSize;
    this.#map = map;
    this.#ctx = ctx;
    let next = header.blocksAllocated;
    for (const e of map) if (isAllocated(e) && e < header.blocksInImage && e + 1 > next) next = e + 1;
    this.#nextBlock = next;
  }

  /**
   * A block map reaching past the end of the file: QEMU reads the missing entries as zeros, that
   * is every such block mapped to data block 0 (and the map's own area overlapping the data). Its
   * blocks read here as unallocated, and the image takes no writes.
   */
  #checkMapComplete(): void {
    if (this.#map.length < this.#header.blocksInImage) {
      throw unsupported(`VDI block map (${this.#header.blocksInImage} entries at offset ${this.#header.offsetBmap}) reaches past the end of the file; Platter does not write to such an image`, this.#ctx);
    }
  }

  #hostOffset(dataBlock: number, inBlock: number): number {
    return this.#header.offsetData + dataBlock * this.#header.blockSize + inBlock;
  }

  #dataBlock(block: number): number | undefined {
    return checkedDataBlock(this.#map, block, this.#header.blocksInImage, { ...this.#ctx, offset: block * this.#header.blockSize });
  }

  /** The run of blocks from `pos` (at most `max` bytes) that are all unallocated, or all
   *  allocated and contiguous in the file; `host` is where `pos` is in the file. */
  #run(pos: number, max: number): { host: number | undefined; n: number } {
    const bs = this.#header.blockSize;
    const first = this.#dataBlock(Math.floor(pos / bs));
    const host = first === undefined ? undefined : this.#hostOffset(first, pos % bs);
    let n = Math.min(max, bs - (pos % bs));
    while (n < max) {
      const next = this.#dataBlock(Math.floor((pos + n) / bs));
      if ((next === undefined) !== (host === undefined)) break;
      if (next !== undefined && this.#hostOffset(next, 0) !== host! + n) break;
      n = Math.min(max, n + bs);
    }
    return { host, n };
  }

  async read(offset: number, length: number): Promise<Buffer> {
    let out: Buffer | undefined;
    for (let done = 0; done < length; ) {
      const { host, n } = this.#run(offset + done, length - done);
      if (n === length) return host === undefined ? Buffer.alloc(length) : this.#file.read(host, n); // one run: no copy
      out ??= Buffer.alloc(length);
      if (host !== undefined) (await this.#file.read(host, n)).copy(out, done);
      done += n;
    }
    return out ?? Buffer.alloc(0);
  }

  async write(offset: number, data: Buffer): Promise<void> {
    this.#checkMapComplete();
    const bs = this.#header.blockSize;
    for (let done = 0; done < data.length; ) {
      const pos = offset + done;
      const block = Math.floor(pos / bs);
      const inBlock = pos % bs;
      const n = Math.min(data.length - done, bs - inBlock);
      const part = data.subarray(done, done + n);
      const host = this.#dataBlock(block);
      if (host !== undefined) await this.#file.write(this.#hostOffset(host, inBlock), part);
      else await this.#allocateAndWrite(block, inBlock, part);
      done += n;
    }
  }

  /** Write into a block that was unallocated when looked up (it may be allocated by now). */
  async #allocateAndWrite(block: number, inBlock: number, part: Buffer): Promise<void> {
    await this.#alloc.run(async () => {
      const again = this.#dataBlock(block);
      if (again !== undefined) {
        await this.#file.write(this.#hostOffset(again, inBlock), part);
        return;
      }
      const h = this.#header;
      if (this.#nextBlock >= h.blocksInImage) {
        throw invalidImage(`VDI image has no free data block left (${h.blocksInImage} blocks in use; the header's allocated count is wrong)`, this.#ctx);
      }
      const target = this.#nextBlock;
      // The whole block is written (zeros around the data), as QEMU does: unallocated blocks read
      // as zeros, and the data area must not be a hole the map points into.
      let whole = part;
      if (part.length !== h.blockSize) {
        whole = Buffer.alloc(h.blockSize);
        part.copy(whole, inBlock);
      }
      await this.#file.write(this.#hostOffset(target, 0), whole);
      this.#nextBlock = target + 1;
      this.#map[block] = target;
      const first = block - (block % VDI_BMAP_ENTRIES_PER_SECTOR);
      const count = Math.min(VDI_BMAP_ENTRIES_PER_SECTOR, h.blocksInImage - first);
      h.blocksAllocated = Math.max(h.blocksAllocated + 1, this.#nextBlock);
      const head = encodeVdiHeader(h);
      if (h.offsetBmap === head.length && (first + count) * VDI_BMAP_ENTRY_SIZE <= ATOMIC_MAP_BYTES) {
        // The header's allocated count and the new map entry in one write: a process killed
        // between two writes would leave them disagreeing, which qemu-img check calls corruption
        // (QEMU itself writes the header, then the map).
        await this.#file.write(0, Buffer.concat([head, encodeBlockMap(this.#map, 0, first + count)]));
      } else {
        await this.#file.write(h.offsetBmap + first * VDI_BMAP_ENTRY_SIZE, encodeBlockMap(this.#map, first, count));
        await this.#file.write(0, head);
      }
    });
  }

  /** QEMU's vdi_has_zero_init: a static image is its file's data; a dynamic one maps nothing. */
  hasZeroInit(): boolean {
    return this.#header.imageType === VDI_TYPE_STATIC ? this.#file.hasZeroInit : true;
  }

  async writeZeroes(offset: number, length: number, _flags: ZeroFlags): Promise<void> {
    // Unallocated and discarded blocks already read as zeros; allocated ones are zeroed in place.
    const bs = this.#header.blockSize;
    for (let done = 0; done < length; ) {
      const pos = offset + done;
      const inBlock = pos % bs;
      const n = Math.min(length - done, bs - inBlock);
      const host = this.#dataBlock(Math.floor(pos / bs));
      if (host !== undefined) await this.#file.writeZeroes(this.#hostOffset(host, inBlock), n);
      done += n;
    }
  }

  /** QEMU's vdi answers block status a block at a time. */
  qemuLastStatusUnit(): number {
    const bs = this.#header.blockSize;
    return Math.max(0, Math.floor((this.size - 1) / bs) * bs);
  }

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    const { host, n } = this.#run(offset, length);
    // As QEMU's vdi_co_block_status: an unallocated block is known zero (present in this layer).
    if (host === undefined) return { offset, length: n, data: false, zero: true, allocated: true };
    // Reads take the same run from the file as it is (BlockStatus.hostNode).
    const st: BlockStatus = { offset, length: n, data: true, zero: false, allocated: true, hostOffset: host, hostNode: this.#file };
    // Static images are preallocated with holes: ask the file, as QEMU does (BDRV_BLOCK_RECURSE).
    return this.#header.imageType === VDI_TYPE_STATIC ? refineWithFile(this.#file, st) : st;
  }

  async info(): Promise<DriverInfo> {
    return { clusterSize: this.#header.blockSize };
  }

  async check(repair: RepairMode | undefined): Promise<CheckResult> {
    if (repair) throw unsupported('This image format does not support checks (vdi has no repair: run the check without -r)', this.#ctx);
    const h = this.#header;
    const r = checkBlockMap(this.#map, h.blocksInImage, h.blocksAllocated);
    return { corruptions: r.corruptions, leaks: 0, checkErrors: 0, corruptionsFixed: 0, leaksFixed: 0, messages: r.messages };
  }

  async close(): Promise<void> {}
}

export const vdiDriver: FormatDriver = {
  kind: 'format',
  name: 'vdi',
  description: 'VirtualBox Virtual Disk Image (VDI 1.1, dynamic or static)',
  createOptions: [
    { name: 'static', type: 'bool', default: false, help: 'VDI static (pre-allocated) image' },
  ],

  probe(head) {
    if (head.length < VDI_HEADER_BYTES) return 0;
    return head.readUInt32LE(SIGNATURE_OFFSET) === VDI_SIGNATURE ? 100 : 0;
  },

  async create(file, ctx) {
    const size = Math.ceil(ctx.size / VDI_SECTOR_SIZE) * VDI_SECTOR_SIZE;
    if (size > VDI_DISK_SIZE_MAX) {
      throw unsupported(`Unsupported VDI image size (size is 0x${size.toString(16)}, max supported is 0x${VDI_DISK_SIZE_MAX.toString(16)})`, { path: ctx.filename });
    }
    const isStatic = ctx.options['static'] === true;
    const header = newVdiHeader(size, isStatic);
    const blocks = header.blocksInImage;
    await file.write(0, encodeVdiHeader(header));
    if (blocks > 0) {
      const map = encodeBlockMap(newBlockMap(blocks, isStatic), 0, blocks);
      const padded = Buffer.alloc(bmapBytes(blocks));
      map.copy(padded);
      await file.write(header.offsetBmap, padded);
    }
    if (isStatic) await file.truncate(header.offsetData + blocks * VDI_BLOCK_SIZE, { shrink: true });
  },

  async open(file, ctx) {
    const ectx = { path: ctx.filename, op: 'open' };
    if (file.size < VDI_HEADER_BYTES) throw invalidImage(`Image not in VDI format (file is ${file.size} bytes, shorter than the ${VDI_HEADER_BYTES}-byte header)`, ectx);
    const header = decodeVdiHeader(await file.read(0, VDI_HEADER_BYTES));
    const size = validateVdiHeader(header, file.size, ectx);
    // Only the entries stored in the file are kept (those past its end: see VdiNode.#mapComplete).
    const stored = Math.max(0, Math.min(header.blocksInImage, Math.floor((file.size - header.offsetBmap) / VDI_BMAP_ENTRY_SIZE)));
    const map = decodeBlockMap(stored > 0 ? await file.read(header.offsetBmap, stored * VDI_BMAP_ENTRY_SIZE) : Buffer.alloc(0), stored);
    return new VdiNode(file, header, size, map, { path: ctx.filename });
  },
};

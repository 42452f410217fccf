// The bochs format driver: Bochs "growing" redolog images (bximage -imgmode=growing), read-only
// as in QEMU 7.2's block/bochs.c. The virtual disk is cut into extents; the catalog maps each to a
// slot in the file, and each slot's bitmap says which of its sectors are present. Sectors not
// present read as zeros. QEMU has no block-status callback for bochs, so qemu-img map and measure
// see all data (FormatDriver.qemuHidesAllocation); convert still skips unallocated extents.

import type { BlockStatus, FormatDriver, NodeImpl } from '../../block/types.ts';
import type { BlockNode } from '../../block/node.ts';
import { BlockError, type BlockErrorContext } from '../../errors.ts';
import { readPadded } from '../../util/padded-read.ts';
import { BOCHS_HEADER_SIZE, bochsGeometry, decodeBochsHeader, isBochsHeader, validateBochsHeader, type BochsGeometry } from './header.ts';
import { decodeCatalog, isAllocatedEntry, requestInRange, sectorDataOffset, slotOffset } from './catalog.ts';

const SECTOR = 512;

/** QEMU fails a read it cannot address with EIO (qemu-img: "Input/output error"). */
function ioError(ctx: BlockErrorContext, detail: string): BlockError {
  return new BlockError('Io', 'Input/output error', ctx, { errno: 'EIO', cause: new Error(detail) });
}

class BochsNode implements NodeImpl {
  readonly size: number;
  readonly alignment = SECTOR;
  readonly #file: BlockNode;
  readonly #geo: BochsGeometry;
  readonly #catalog: Uint32Array;
  readonly #ctx: BlockErrorContext;

  constructor(file: BlockNode, geo: BochsGeometry, catalog: Uint32Array, ctx: BlockErrorContext) {
    this.#file = file;
    this.#geo = geo;
    this.size = geo.size;
    this.#catalog = catalog;
    this.#ctx = ctx;
  }

  /** `bytes` at u64 offset `off` of the file, as QEMU's block layer reads it. */
  async #readAt(off: bigint, bytes: number, pos: number): Promise<Buffer> {
    if (!requestInRange(off, bytes)) throw ioError({ ...this.#ctx, offset: pos }, `bochs: file offset ${off} is out of range`);
    if (off >= BigInt(this.#file.size)) return Buffer.alloc(bytes);
    return readPadded(this.#file, Number(off), bytes);
  }

  /** Fill `out[at, at+n)` with the guest bytes at `pos` (within one extent). */
  async #readExtent(pos: number, n: number, out: Buffer, at: number): Promise<void> {
    const g = this.#geo;
    const entry = this.#catalog[Math.floor(pos / g.extent)]!;
    if (!isAllocatedEntry(entry)) return; // out is zero-filled
    const slot = slotOffset(g, entry);
    const first = (pos % g.extent) / SECTOR;
    const count = n / SECTOR;
    // The bitmap bytes covering these sectors (QEMU reads them one at a time, in order).
    const b0 = first >> 3;
    const b1 = (first + count - 1) >> 3;
    for (let b = b0; b <= b1; b++) {
      if (!requestInRange(BigInt.asUintN(64, slot + BigInt(b)), 1)) throw ioError({ ...this.#ctx, offset: pos }, `bochs: bitmap offset out of range`);
    }
    const bitmap = await this.#readAt(BigInt.asUintN(64, slot + BigInt(b0)), b1 - b0 + 1, pos);
    const present = (s: number): boolean => ((bitmap[(s >> 3) - b0]! >> (s & 7)) & 1) === 1;
    for (let s = first; s < first + count; ) {
      if (!present(s)) {
        s++;
        continue;
      }
      let e = s + 1;
      while (e < first + count && present(e)) e++;
      const data = await this.#readAt(sectorDataOffset(g, slot, s), (e - s) * SECTOR, pos);
      data.copy(out, at + (s - first) * SECTOR);
      s = e;
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    const ext = this.#geo.extent;
    for (let done = 0; done < length; ) {
      const pos = offset + done;
      const n = Math.min(length - done, ext - (pos % ext));
      await this.#readExtent(pos, n, out, done);
      done += n;
    }
    return out;
  }

  /** The driver's own view (convert asks for it): extents without a slot are unallocated zeros. */
  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    const ext = this.#geo.extent;
    const allocated = (p: number): boolean => isAllocatedEntry(this.#catalog[Math.floor(p / ext)]!);
    const kind = allocated(offset);
    let n = Math.min(length, ext - (offset % ext));
    while (n < length && allocated(offset + n) === kind) n = Math.min(length, n + ext);
    return kind ? { offset, length: n, data: true, zero: false, allocated: true } : { offset, length: n, data: false, zero: true, allocated: false };
  }

  async close(): Promise<void> {}
}

export const bochsDriver: FormatDriver = {
  kind: 'format',
  name: 'bochs',
  description: 'Bochs growing disk image (bximage redolog, read-only)',
  createOptions: [],
  readOnlyFormat: true,
  qemuHidesAllocation: true,
  qemuNoGetInfo: true,

  probe(head) {
    // QEMU probes a 512-byte buffer, zero-padded when the file is shorter.
    const buf = head.length >= BOCHS_HEADER_SIZE ? head : Buffer.concat([head, Buffer.alloc(BOCHS_HEADER_SIZE - head.length)]);
    return isBochsHeader(buf) ? 100 : 0;
  },

  async open(file, ctx) {
    const ectx: BlockErrorContext = { path: ctx.filename, op: 'open' };
    const header = decodeBochsHeader(await readPadded(file, 0, BOCHS_HEADER_SIZE));
    validateBochsHeader(header, ectx);
    const catalog = decodeCatalog(await readPadded(file, header.header, header.catalog * 4), header.catalog);
    const geo = bochsGeometry(header, ectx);
    return new BochsNode(file, geo, catalog, { path: ctx.filename });
  },
};

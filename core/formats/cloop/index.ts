// The cloop format driver: Linux compressed loop images (create_compressed_fs, V2.0 header),
// read-only as in QEMU 7.2's block/cloop.c. The disk is cut into blocks of block_size bytes, each
// stored as one zlib stream located by the offsets table; blocks are inflated on libuv's thread pool,
// and the last one inflated is kept (QEMU keeps exactly one). QEMU has no block-status callback
// for cloop: qemu-img map and measure see all data (FormatDriver.qemuHidesAllocation).

import type { FormatDriver, NodeImpl } from '../../block/types.ts';
import type { BlockNode } from '../../block/node.ts';
import { inflateInto } from '../../codecs/zlib-threadpool.ts';
import { settleAll } from '../../util/settle-all.ts';
import { BlockError, type BlockErrorContext } from '../../errors.ts';
import { readPadded } from '../../util/padded-read.ts';
import { PROBE_BYTES } from '../../block/types.ts';
import {
  CLOOP_BLOCK_SIZE_OFFSET,
  CLOOP_N_BLOCKS_OFFSET,
  CLOOP_OFFSETS_OFFSET,
  CLOOP_PROBE_SCORE,
  cloopVirtualSize,
  decodeOffsets,
  isCloopHeader,
  offsetsTableBytes,
  validateBlockSize,
  type CloopOffsets,
} from './header.ts';

const SECTOR = 512;
/** Largest request handed to the driver at once (the generic layer splits bigger ones). */
const MAX_TRANSFER = 4 << 20;

/** QEMU fails a block it cannot inflate with EIO (qemu-img: "Input/output error"). */
function ioError(ctx: BlockErrorContext, detail: string, cause?: unknown): BlockError {
  return new BlockError('Io', 'Input/output error', ctx, { errno: 'EIO', cause: cause ?? new Error(detail) });
}

class CloopNode implements NodeImpl {
  readonly size: number;
  readonly alignment = SECTOR;
  readonly maxTransfer: number;
  readonly #file: BlockNode;
  readonly #blockSize: number;
  readonly #offsets: CloopOffsets;
  readonly #ctx: BlockErrorContext;
  /** The block inflated last (QEMU's current_block). */
  #last: { block: number; data: Buffer } | undefined;

  constructor(file: BlockNode, blockSize: number, nBlocks: number, offsets: CloopOffsets, ctx: BlockErrorContext) {
    this.#file = file;
    this.#blockSize = blockSize;
    this.#offsets = offsets;
    this.#ctx = ctx;
    this.size = cloopVirtualSize(nBlocks, blockSize);
    this.maxTransfer = Math.max(MAX_TRANSFER, blockSize);
  }

  #offset(i: number): number {
    return i < this.#offsets.stored.length ? this.#offsets.stored[i]! : 0;
  }

  /** Inflate blocks first..last (consecutive in the file: offsets are monotonic), each into its
   *  destination (exactly one block long). */
  async #inflate(first: number, last: number, pos: number, dest: (b: number) => Buffer): Promise<void> {
    const start = this.#offset(first);
    const end = this.#offset(last + 1);
    const ctx = { ...this.#ctx, offset: pos };
    // A block starting at or past the end of the file reads as zeros in QEMU (or is out of its
    // range): zeros never inflate, so that block fails.
    for (let b = first; b <= last; b++) {
      if (this.#offset(b) >= this.#file.size) throw ioError(ctx, `cloop block ${b} starts at ${this.#offset(b)}, past the end of the file`);
    }
    // The blocks' bytes read in one request; each block is a view of them. Past the file's end:
    // zeros.
    const raw = Buffer.allocUnsafeSlow(end - start);
    const inFile = Math.max(0, Math.min(end, this.#file.size) - start);
    if (inFile > 0) await this.#file.readInto(start, raw.subarray(0, inFile));
    if (inFile < raw.length) raw.fill(0, inFile);
    const jobs: Promise<void>[] = [];
    for (let b = first; b <= last; b++) {
      const block = raw.subarray(this.#offset(b) - start, this.#offset(b + 1) - start);
      // On libuv's thread pool, side by side (no JavaScript worker to start for them).
      jobs.push(inflateInto(block, dest(b)).catch((e: unknown) => Promise.reject(ioError(ctx, `cloop block ${b} does not inflate to ${this.#blockSize} bytes`, e))));
    }
    // Every block settled first: they inflate into the caller's buffer.
    await settleAll(jobs);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    await this.readInto(offset, length, out);
    return out;
  }

  /** The range's blocks (the cached one, the rest inflated side by side on the thread pool)
   *  straight into `into`: whole blocks inflate into it, the ends are copied from a block of
   *  their own (the last one is kept: QEMU's current_block). */
  async readInto(offset: number, length: number, into: Buffer): Promise<void> {
    const bs = this.#blockSize;
    const first = Math.floor(offset / bs);
    const last = Math.floor((offset + length - 1) / bs);
    const cached = this.#last;
    // Only the blocks not cached are inflated (the cache holds the first or the last).
    let from = first;
    let to = last;
    if (cached?.block === first) from++;
    else if (cached?.block === last && last > first) to--;
    const own = new Map<number, Buffer>();
    if (from <= to) {
      await this.#inflate(from, to, offset, (b) => {
        const at = b * bs - offset;
        if (b !== last && at >= 0 && at + bs <= length) return into.subarray(at, at + bs);
        const block = Buffer.allocUnsafeSlow(bs);
        own.set(b, block);
        return block;
      });
    }
    if (cached && (cached.block === first || cached.block === last)) own.set(cached.block, cached.data);
    for (const [b, data] of own) {
      const from = Math.max(offset, b * bs);
      const to = Math.min(offset + length, (b + 1) * bs);
      data.copy(into, from - offset, from - b * bs, to - b * bs);
    }
    this.#last = { block: last, data: own.get(last)! };
  }

  async close(): Promise<void> {
    this.#last = undefined;
  }
}

export const cloopDriver: FormatDriver = {
  kind: 'format',
  name: 'cloop',
  description: 'Linux compressed loop image (cloop V2.0, read-only)',
  createOptions: [],
  readOnlyFormat: true,
  qemuHidesAllocation: true,
  qemuNoGetInfo: true,

  probe(head) {
    // QEMU probes a 512-byte buffer, zero-padded when the file is shorter.
    const buf = head.length >= PROBE_BYTES ? head : Buffer.concat([head, Buffer.alloc(PROBE_BYTES - head.length)]);
    return isCloopHeader(buf) ? CLOOP_PROBE_SCORE : 0;
  },

  async open(file, ctx) {
    const ectx: BlockErrorContext = { path: ctx.filename, op: 'open' };
    const blockSize = (await readPadded(file, CLOOP_BLOCK_SIZE_OFFSET, 4)).readUInt32BE(0);
    validateBlockSize(blockSize, ectx);
    const nBlocks = (await readPadded(file, CLOOP_N_BLOCKS_OFFSET, 4)).readUInt32BE(0);
    const tableBytes = offsetsTableBytes(nBlocks, ectx);
    // Only the part of the table inside the file is read; QEMU sees zeros past it.
    const inFile = Math.max(0, Math.min(tableBytes, file.size - CLOOP_OFFSETS_OFFSET));
    const table = inFile > 0 ? await file.read(CLOOP_OFFSETS_OFFSET, inFile) : Buffer.alloc(0);
    const offsets = decodeOffsets(table, nBlocks + 1, ectx);
    return new CloopNode(file, blockSize, nBlocks, offsets, { path: ctx.filename });
  },
};

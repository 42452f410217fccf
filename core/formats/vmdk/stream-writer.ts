// The sequential stream-optimized VMDK writer (VMware Virtual Disk Format 1.1, "Stream-Optimized
// Compressed Sparse Extents"), as VMware and OVF tools lay the file out: header with
// gdOffset = GD_AT_END, embedded descriptor, then in disk order the compressed grains (grain
// markers), each grain table behind a GT marker once its grains are written, the grain directory
// behind a GD marker, the footer (marker + a header copy with the real gdOffset) and the
// end-of-stream marker. The file is written strictly front to back, so it can go to a pipe-like
// target; grains are deflated in the worker pool a batch at a time.

import type { BlockNode } from '../../block/node.ts';
import type { WorkerPool } from '../../workers/pool.ts';
import { throwIfAborted } from '../../errors.ts';
import { serialiseDescriptor } from './descriptor.ts';
import {
  COMPRESSION_DEFLATE,
  encodeMarker,
  encodeSparseHeader,
  FLAG_COMPRESSED,
  FLAG_MARKERS,
  FLAG_NL_DETECT,
  GD_AT_END,
  MARKER_EOS,
  MARKER_FOOTER,
  MARKER_GD,
  MARKER_GT,
  NL_TEST_BYTES,
  SECTOR,
  type SparseHeader,
} from './sparse-header.ts';
import { encodeCompressedGrain } from './stream.ts';

/** Stream layout constants: 64 KiB grains, 512-entry grain tables (what VMware writes). */
const GRAIN_SECTORS = 128;
const GTES_PER_GT = 512;
/** Grains compressed in parallel before they are written in order. */
const BATCH_GRAINS = 16;
/** Stream images start with format version 3. */
const STREAM_VERSION = 3;

export interface StreamWriteOptions {
  /** Virtual size in bytes (rounded up to a sector). */
  size: number;
  workers: WorkerPool;
  /** Extent name written in the descriptor (the file's base name). */
  extentName: string;
  /** Source of the guest data; called front to back, one grain at a time at most. */
  read(offset: number, length: number): Promise<Buffer>;
  /** Ranges known to read as zeros are skipped without reading (block status of the source). */
  isZero?(offset: number, length: number): Promise<boolean>;
  cid: number;
  adapterType?: string;
  signal?: AbortSignal;
}

function header(capacity: number, descSectors: number, overHead: number, gdOffset: bigint): SparseHeader {
  return {
    version: STREAM_VERSION,
    flags: FLAG_NL_DETECT | FLAG_COMPRESSED | FLAG_MARKERS,
    capacity: BigInt(capacity),
    grainSize: BigInt(GRAIN_SECTORS),
    descriptorOffset: 1n,
    descriptorSize: BigInt(descSectors),
    numGTEsPerGT: GTES_PER_GT,
    rgdOffset: 0n,
    gdOffset,
    overHead: BigInt(overHead),
    uncleanShutdown: 0,
    nlTest: [...NL_TEST_BYTES],
    compressAlgorithm: COMPRESSION_DEFLATE,
  };
}

/** Write a complete stream-optimized image of `o.size` bytes into the empty `file`. */
export async function writeStreamOptimized(file: BlockNode, o: StreamWriteOptions): Promise<void> {
  const size = Math.ceil(o.size / SECTOR) * SECTOR;
  const capacity = size / SECTOR;
  const grainBytes = GRAIN_SECTORS * SECTOR;
  const heads = (o.adapterType ?? 'ide') === 'ide' ? 16 : 255;
  const desc = Buffer.from(
    serialiseDescriptor({
      cid: o.cid,
      parentCid: 0xffffffff,
      createType: 'streamOptimized',
      extentLines: [`RW ${capacity} SPARSE "${o.extentName}"`],
      hwVersion: '4',
      cylinders: Math.floor(size / (63 * heads * SECTOR)),
      heads,
      adapterType: o.adapterType ?? 'ide',
      toolsVersion: '2147483647',
    }),
    'utf8',
  );
  const descSectors = Math.ceil(desc.length / SECTOR);
  const overHead = Math.ceil((1 + descSectors) / GRAIN_SECTORS) * GRAIN_SECTORS;
  await file.write(0, encodeSparseHeader(header(capacity, descSectors, overHead, GD_AT_END)));
  const descArea = Buffer.alloc(descSectors * SECTOR);
  desc.copy(descArea);
  await file.write(SECTOR, descArea);
  let pos = overHead * SECTOR;
  const append = async (buf: Buffer) => {
    await file.write(pos, buf);
    const at = pos;
    pos += buf.length;
    return at;
  };

  const grains = Math.ceil(capacity / GRAIN_SECTORS);
  const zeroGrain = Buffer.alloc(grainBytes);
  const gtCount = Math.ceil(grains / GTES_PER_GT);
  const gd = new Uint32Array(gtCount);
  let gt = new Uint32Array(GTES_PER_GT);
  let gtUsed = false;
  let currentTable = 0;
  const flushGT = async (index: number) => {
    if (gtUsed) {
      const table = Buffer.alloc(GTES_PER_GT * 4);
      for (let i = 0; i < GTES_PER_GT; i++) table.writeUInt32LE(gt[i]!, i * 4);
      await append(encodeMarker({ value: BigInt(table.length / SECTOR), size: 0, type: MARKER_GT }));
      gd[index] = (await append(table)) / SECTOR;
    }
    gt = new Uint32Array(GTES_PER_GT);
    gtUsed = false;
  };

  for (let g0 = 0; g0 < grains; g0 += BATCH_GRAINS) {
    throwIfAborted(o.signal);
    const batch: { g: number; data: Buffer }[] = [];
    for (let g = g0; g < Math.min(grains, g0 + BATCH_GRAINS); g++) {
      const off = g * grainBytes;
      const len = Math.min(grainBytes, size - off);
      if (o.isZero && (await o.isZero(off, len))) continue;
      const data = await o.read(off, len);
      if (data.equals(zeroGrain.subarray(0, data.length))) continue;
      batch.push({ g, data });
    }
    const encoded = await Promise.all(batch.map(({ g, data }) => encodeCompressedGrain(o.workers, g * GRAIN_SECTORS, data)));
    for (let i = 0; i < batch.length; i++) {
      const g = batch[i]!.g;
      const table = Math.floor(g / GTES_PER_GT);
      // Grain tables are written as soon as the stream moves past their range.
      while (currentTable < table) {
        await flushGT(currentTable);
        currentTable++;
      }
      gt[g % GTES_PER_GT] = (await append(encoded[i]!)) / SECTOR;
      gtUsed = true;
    }
  }
  while (currentTable < gtCount) {
    await flushGT(currentTable);
    currentTable++;
  }

  const gdBytes = Buffer.alloc(Math.ceil((gtCount * 4) / SECTOR) * SECTOR);
  for (let i = 0; i < gtCount; i++) gdBytes.writeUInt32LE(gd[i]!, i * 4);
  await append(encodeMarker({ value: BigInt(gdBytes.length / SECTOR), size: 0, type: MARKER_GD }));
  const gdSector = (await append(gdBytes)) / SECTOR;
  await append(encodeMarker({ value: 1n, size: 0, type: MARKER_FOOTER }));
  await append(encodeSparseHeader(header(capacity, descSectors, overHead, BigInt(gdSector))));
  await append(encodeMarker({ value: 0n, size: 0, type: MARKER_EOS }));
}

// Bochs redolog catalog and extent bitmaps (bochs redolog format, as QEMU's block/bochs.c reads
// them): the catalog is a little-endian u32 per extent naming its slot in the file (0xffffffff:
// not allocated); slot k holds `bitmapBlocks` sectors of bitmap (bit i, LSB first: sector i of
// the extent is present) then `extentBlocks` sectors of data, starting at
// dataOffset + 512 * k * (bitmapBlocks + extentBlocks).
//
// Offsets are computed as QEMU computes them (u64, wrapping) and then read as QEMU's block layer
// would: a signed offset outside [0, BDRV_MAX_LENGTH - bytes] is an I/O error, anything past the
// file's end reads as zeros.

import { BOCHS_UNALLOCATED, type BochsGeometry } from './header.ts';

/** QEMU's BDRV_MAX_LENGTH: INT64_MAX rounded down to 1 GiB. */
const BDRV_MAX_LENGTH = 2n ** 63n - 2n ** 30n;

/** Decode `count` catalog entries (u32 little endian). */
export function decodeCatalog(buf: Buffer, count: number): Uint32Array {
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = buf.readUInt32LE(i * 4);
  return out;
}

/** Where a catalog slot's bitmap starts (u64 arithmetic, as QEMU's seek_to_sector). */
export function slotOffset(geo: BochsGeometry, entry: number): bigint {
  const stride = BigInt((geo.bitmapBlocks + geo.extentBlocks) >>> 0);
  return BigInt.asUintN(64, BigInt(geo.dataOffset) + 512n * BigInt(entry) * stride);
}

/** Where sector `s` of the slot at `slot` keeps its data (u64, wrapping). */
export function sectorDataOffset(geo: BochsGeometry, slot: bigint, s: number): bigint {
  return BigInt.asUintN(64, slot + 512n * BigInt(geo.bitmapBlocks + s));
}

/** Whether QEMU's block layer accepts a request of `bytes` at u64 offset `off` (passed as i64). */
export function requestInRange(off: bigint, bytes: number): boolean {
  const signed = BigInt.asIntN(64, off);
  return signed >= 0n && signed <= BDRV_MAX_LENGTH - BigInt(bytes);
}

export function isAllocatedEntry(entry: number): boolean {
  return entry !== BOCHS_UNALLOCATED;
}

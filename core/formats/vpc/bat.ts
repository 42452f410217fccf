// The VHD Block Allocation Table (VHD specification, "Block Allocation Table and Data Blocks"):
// one big-endian u32 per block, the sector offset of the block's sector bitmap, 0xFFFFFFFF when
// unallocated. Each allocated block is its sector bitmap (rounded up to whole sectors) followed
// by the block's data. The limits and messages are QEMU's (block/vpc.c vpc_open).

import { invalidImage } from '../../errors.ts';
import { isPowerOfTwo } from '../../util/checked.ts';
import { SECTOR } from './geometry.ts';

export const BAT_UNALLOCATED = 0xffffffff;
/** QEMU caps the table at INT_MAX / 4 entries (it must fit one allocation). */
export const MAX_TABLE_ENTRIES = Math.floor(0x7fffffff / 4);
/** QEMU allows at most 2^32 - 1 blocks. */
const MAX_BLOCKS = 0xffffffff;
/** QEMU's words when the table or a block lies past the end of the file. */
const TRUNCATED = 'block-vpc: free_data_block_offset points after the end of file. The image has been truncated.';

/** Bytes of a block's sector bitmap: one bit per sector, rounded up to a sector. */
export function bitmapSize(blockSize: number): number {
  return Math.ceil(blockSize / (8 * SECTOR) / SECTOR) * SECTOR;
}

export interface BatLayout {
  tableOffset: number;
  maxTableEntries: number;
  blockSize: number;
  bitmapSize: number;
}

/** Validate the table's geometry against the virtual size, before anything is read. */
export function validateBatLayout(blockSize: number, maxTableEntries: number, tableOffset: bigint, virtualSize: number, fileSize: number): BatLayout {
  if (!isPowerOfTwo(blockSize) || blockSize < SECTOR) throw invalidImage(`Invalid block size ${blockSize}`);
  if (Math.floor(virtualSize / blockSize) > MAX_BLOCKS) throw invalidImage('Too many blocks');
  if (maxTableEntries * blockSize < virtualSize) throw invalidImage('Page table too small');
  if (maxTableEntries > MAX_TABLE_ENTRIES) throw invalidImage(`Max Table Entries too large (${maxTableEntries})`);
  const tableBytes = maxTableEntries * 4;
  if (tableOffset > BigInt(Number.MAX_SAFE_INTEGER) || Number(tableOffset) + tableBytes > fileSize) {
    throw invalidImage(TRUNCATED);
  }
  return { tableOffset: Number(tableOffset), maxTableEntries, blockSize, bitmapSize: bitmapSize(blockSize) };
}

/** Decode the table and find the first free byte after every allocated block. */
export function decodeBat(buf: Buffer, layout: BatLayout, fileSize: number): { entries: Uint32Array; freeOffset: number } {
  const n = layout.maxTableEntries;
  const entries = new Uint32Array(n);
  let free = Math.ceil((layout.tableOffset + n * 4) / SECTOR) * SECTOR;
  for (let i = 0; i < n; i++) {
    const e = buf.readUInt32BE(i * 4);
    entries[i] = e;
    if (e !== BAT_UNALLOCATED) {
      const next = e * SECTOR + layout.bitmapSize + layout.blockSize;
      if (next > free) free = next;
    }
  }
  if (free > fileSize) {
    throw invalidImage(TRUNCATED);
  }
  return { entries, freeOffset: free };
}

// VHDX Block Allocation Table (MS-VHDX 2.5): u64 little-endian entries, state in bits 0-2 and
// the file offset in MiB in bits 20-63. Payload block entries are interleaved with one sector
// bitmap entry after every `chunk ratio` payload entries (MS-VHDX 2.5.1).

import { invalidImage } from '../../errors.ts';

/** Payload block states (MS-VHDX 2.5.1.1). QEMU also reads 5 as "unmapped" (spec draft 0.95). */
export const PAYLOAD_NOT_PRESENT = 0;
export const PAYLOAD_UNDEFINED = 1;
export const PAYLOAD_ZERO = 2;
export const PAYLOAD_UNMAPPED = 3;
export const PAYLOAD_UNMAPPED_V095 = 5;
export const PAYLOAD_FULLY_PRESENT = 6;
export const PAYLOAD_PARTIALLY_PRESENT = 7;
/** Sector bitmap block states (MS-VHDX 2.5.1.2). */
export const SB_NOT_PRESENT = 0;
export const SB_PRESENT = 6;
export const STATE_MASK = 7n;
/** The offset field counts MiB from bit 20: masking the low 20 bits gives the byte offset. */
export const OFFSET_MASK = ~0xfffffn;
export const BAT_ENTRY_BYTES = 8;
/** 2^23 sectors per chunk (MS-VHDX 2.5: chunk ratio = 2^23 * logical sector size / block size). */
const SECTORS_PER_CHUNK = 2 ** 23;

export interface BatGeometry {
  blockSize: number;
  chunkRatio: number;
  dataBlocks: number;
  /** Entries including sector bitmap entries. */
  totalEntries: number;
}

export function batGeometry(virtualSize: number, blockSize: number, logicalSectorSize: number, hasParent = false): BatGeometry {
  const chunkRatio = (SECTORS_PER_CHUNK * logicalSectorSize) / blockSize;
  const dataBlocks = Math.ceil(virtualSize / blockSize);
  const bitmapBlocks = Math.ceil(dataBlocks / chunkRatio);
  const totalEntries = hasParent ? bitmapBlocks * (chunkRatio + 1) : dataBlocks + Math.floor(Math.max(0, dataBlocks - 1) / chunkRatio);
  return { blockSize, chunkRatio, dataBlocks, totalEntries };
}

/** Index in the BAT of payload block `block`. */
export const batIndex = (g: BatGeometry, block: number) => block + Math.floor(block / g.chunkRatio);

export const entryState = (e: bigint) => Number(e & STATE_MASK);
export const entryOffset = (e: bigint) => e & OFFSET_MASK;

/** A payload entry; non-present states carry offset 0 (Hyper-V refuses a nonzero one). */
export function makeEntry(state: number, offset: number): bigint {
  const hasOffset = state === PAYLOAD_FULLY_PRESENT || state === PAYLOAD_PARTIALLY_PRESENT;
  return (hasOffset ? BigInt(offset) : 0n) | BigInt(state);
}

/**
 * QEMU's BAT check (vhdx_check_bat_entries): fully present payload blocks must lie inside the
 * file (the last may be partial) and outside the header, log and metadata. Returns messages.
 */
export function checkBat(entries: BigUint64Array, g: BatGeometry, virtualSize: number, fileSize: number, overlap: (start: number, length: number) => string | undefined): string[] {
  const errors: string[] = [];
  for (let block = 0; block < g.dataBlocks; block++) {
    const i = batIndex(g, block);
    const e = entries[i]!;
    if (entryState(e) !== PAYLOAD_FULLY_PRESENT) continue;
    const off = entryOffset(e);
    if (off > BigInt(Number.MAX_SAFE_INTEGER - g.blockSize)) {
      errors.push(`VHDX BAT entry ${i} offset overflow.`);
      continue;
    }
    const offset = Number(off);
    const length = Math.min(g.blockSize, virtualSize - block * g.blockSize);
    if (offset >= fileSize) {
      errors.push(`VHDX BAT entry ${i} start offset ${offset} points after end of file (${fileSize}). Image has probably been truncated.`);
    } else if (offset + length > fileSize) {
      errors.push(`VHDX BAT entry ${i} end offset ${offset + length - 1} points after end of file (${fileSize}). Image has probably been truncated.`);
    }
    const hit = overlap(offset, g.blockSize);
    if (hit) errors.push(`VHDX BAT entry ${i} (offset ${offset}) overlaps the ${hit}`);
  }
  return errors;
}

export function decodeBat(buf: Buffer, count: number): BigUint64Array {
  if (buf.length < count * BAT_ENTRY_BYTES) throw invalidImage('VHDX BAT region is too small for the virtual disk size');
  const out = new BigUint64Array(count);
  for (let i = 0; i < count; i++) out[i] = buf.readBigUInt64LE(i * BAT_ENTRY_BYTES);
  return out;
}

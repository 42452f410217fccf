// The block chunk table of one partition ("mish" block, Apple's BLKXTable: a 204-byte header
// then 40-byte BLKXChunkEntry records), decoded as QEMU's dmg_read_mish_block reads it: the
// entry count comes from the block's length, sector numbers are relative to the table's first
// sector and data offsets to its data offset within the data fork.
import { CHUNK_ADC, CHUNK_BZIP2, CHUNK_COMMENT, CHUNK_IGNORE, CHUNK_LZFSE, CHUNK_RAW, CHUNK_TERMINATOR, CHUNK_ZERO, CHUNK_ZLIB } from '../../codecs/dmg-chunk.ts';

const MISH_MAGIC = 0x6d697368; // "mish"
const MISH_HEADER = 204;
const ENTRY_SIZE = 40;
/** Smallest block QEMU takes as a table: the header and one entry. */
const MISH_MIN = MISH_HEADER + ENTRY_SIZE;

/** One chunk as the table states it, absolute (u64 arithmetic, as QEMU's). */
export interface RawChunk {
  type: number;
  sector: bigint;
  sectorCount: bigint;
  offset: bigint;
  length: bigint;
}

const U64 = (1n << 64n) - 1n;

const KNOWN = new Set([CHUNK_ZERO, CHUNK_RAW, CHUNK_IGNORE, CHUNK_ADC, CHUNK_ZLIB, CHUNK_BZIP2, CHUNK_LZFSE]);

/**
 * The chunks of one mish block, or undefined when the bytes are not one (QEMU skips those).
 * Comments and terminators are left out; so are unknown types, reported through `unknown`.
 */
export function decodeMish(b: Uint8Array, dataForkOffset: bigint, unknown: (type: number) => void): RawChunk[] | undefined {
  if (b.length < MISH_MIN) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v.getUint32(0) !== MISH_MAGIC) return undefined;
  const firstSector = v.getBigUint64(8);
  const inOffset = (dataForkOffset + v.getBigUint64(0x18)) & U64;
  const n = Math.floor((b.length - MISH_HEADER) / ENTRY_SIZE);
  const out: RawChunk[] = [];
  for (let i = 0; i < n; i++) {
    const e = MISH_HEADER + i * ENTRY_SIZE;
    const type = v.getUint32(e);
    if (!KNOWN.has(type)) {
      if (type !== CHUNK_COMMENT && type !== CHUNK_TERMINATOR) unknown(type);
      continue;
    }
    out.push({
      type,
      sector: (v.getBigUint64(e + 8) + firstSector) & U64,
      sectorCount: v.getBigUint64(e + 0x10),
      offset: (v.getBigUint64(e + 0x18) + inOffset) & U64,
      length: v.getBigUint64(e + 0x20),
    });
  }
  return out;
}

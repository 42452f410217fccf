// The image's chunk table: every mish entry that holds guest sectors, sorted by sector and checked
// once at open (QEMU's limits of block/dmg.c, DMG_SECTORCOUNTS_MAX and DMG_LENGTHS_MAX, with its
// words; plus what QEMU leaves to chance: entries that overlap, lie past the disk's end or name
// data outside the file). Lookups are a binary search over the sorted starts.
import { invalidImage } from '../../errors.ts';
import { CHUNK_IGNORE, CHUNK_RAW, CHUNK_ZERO } from '../../codecs/dmg-chunk.ts';
import type { RawChunk } from './mish.ts';

/** Largest chunk QEMU accepts: 64 MiB of data, 64 MiB / 512 sectors decompressed. */
export const DMG_LENGTHS_MAX = 64 * 1024 * 1024;
export const DMG_SECTORCOUNTS_MAX = DMG_LENGTHS_MAX / 512;

export const SECTOR = 512;

export interface ChunkTable {
  /** Parallel arrays, sorted by start sector; only entries with at least one sector. */
  readonly start: Float64Array;
  readonly count: Float64Array;
  readonly type: Uint32Array;
  /** Byte offset and length of the chunk's data in the file (0 for zero/ignore chunks). */
  readonly offset: Float64Array;
  readonly length: Float64Array;
  readonly n: number;
}

const isZeroType = (t: number) => t === CHUNK_ZERO || t === CHUNK_IGNORE;

/** Validate the entries (in table order, as QEMU numbers them) and sort them by sector. */
export function buildChunkTable(raw: RawChunk[], totalSectors: number, fileSize: number): ChunkTable {
  const kept: { i: number; start: number; count: number; type: number; offset: number; length: number }[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    const zero = isZeroType(c.type);
    // QEMU's checks and words (dmg_read_mish_block); zero-fill chunks need no buffer, so any
    // sector count is fine for them.
    if (!zero && c.sectorCount > BigInt(DMG_SECTORCOUNTS_MAX)) {
      throw invalidImage(`sector count ${c.sectorCount} for chunk ${i} is larger than max (${DMG_SECTORCOUNTS_MAX})`);
    }
    if (c.length > BigInt(DMG_LENGTHS_MAX)) {
      throw invalidImage(`length ${c.length} for chunk ${i} is larger than max (${DMG_LENGTHS_MAX})`);
    }
    if (c.sectorCount === 0n) continue; // holds no sector: never read (QEMU's search skips it)
    const end = c.sector + c.sectorCount;
    if (end > BigInt(totalSectors)) {
      throw invalidImage(`chunk ${i} (sectors ${c.sector}..${end - 1n}) lies past the end of the disk (${totalSectors} sectors)`);
    }
    const length = Number(c.length);
    let offset = 0;
    if (!zero) {
      if (c.offset + c.length > BigInt(fileSize)) {
        throw invalidImage(`chunk ${i} names data at bytes ${c.offset}..${c.offset + c.length} of a ${fileSize}-byte file`);
      }
      offset = Number(c.offset);
    }
    kept.push({ i, start: Number(c.sector), count: Number(c.sectorCount), type: c.type, offset, length: zero ? 0 : length });
  }
  kept.sort((a, b) => a.start - b.start || a.i - b.i);
  const n = kept.length;
  const t: ChunkTable = { start: new Float64Array(n), count: new Float64Array(n), type: new Uint32Array(n), offset: new Float64Array(n), length: new Float64Array(n), n };
  for (let k = 0; k < n; k++) {
    const c = kept[k]!;
    if (k > 0) {
      const p = kept[k - 1]!;
      if (c.start < p.start + p.count) throw invalidImage(`chunks ${p.i} and ${c.i} both claim sector ${c.start}`);
    }
    t.start[k] = c.start;
    t.count[k] = c.count;
    t.type[k] = c.type;
    t.offset[k] = c.offset;
    t.length[k] = c.length;
  }
  return t;
}

/** Index of the chunk holding `sector`, or -1 - (index of the next chunk) when none does. */
export function findChunk(t: ChunkTable, sector: number): number {
  let lo = 0;
  let hi = t.n - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (t.start[mid]! > sector) hi = mid - 1;
    else if (t.start[mid]! + t.count[mid]! <= sector) lo = mid + 1;
    else return mid;
  }
  return -1 - lo;
}

export { isZeroType, CHUNK_RAW };

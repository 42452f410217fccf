// A dirty bitmap in memory (QEMU block/dirty-bitmap.c over util/hbitmap.c): one bit per
// `granularity` bytes of guest data, set when those bytes may have changed. Kept sparse, in
// chunks of CHUNK_BYTES of bits that exist only once one of their bits is set, so an empty
// bitmap over a 2 TiB disk at 512-byte granularity (2^32 bits) costs nothing, as its on-disk
// form (a qcow2 bitmap table of zero entries) does.
//
// Bit order is the serialized order of QEMU (hbitmap_serialize_part on a little-endian host) and
// of qcow2's bitmap data: bit j of byte i is bit number 8*i + j, least significant bit first.

/** Bytes of bits per in-memory chunk: 2^19 bits, a 64 KiB cluster's worth of bitmap data. A
 *  power of two, so any power-of-two cluster size is a whole number of chunks or within one. */
export const CHUNK_BYTES = 1 << 16;
const CHUNK_BITS = CHUNK_BYTES * 8;

/** A chunk whose bits are all set, shared and never written. */
const ALL_ONES = Buffer.alloc(CHUNK_BYTES, 0xff);

export class DirtyBitmap {
  /** Guest bytes covered (the image's virtual size when created). */
  #size: number;
  readonly granularity: number;
  /** Chunk index -> bits; absent = all clear. ALL_ONES is shared and copied before a change. */
  readonly #chunks = new Map<number, Buffer>();

  constructor(size: number, granularity: number) {
    if (!(granularity >= 1 && Number.isInteger(Math.log2(granularity)))) throw new RangeError(`Bitmap granularity ${granularity} is not a power of two`);
    this.#size = size;
    this.granularity = granularity;
  }

  get size(): number {
    return this.#size;
  }

  /** Number of bits: one per granularity bytes, the last one partial. */
  get bits(): number {
    return Math.ceil(this.#size / this.granularity);
  }

  /** Chunk `c`, made private and writable. */
  #writable(c: number): Buffer {
    let b = this.#chunks.get(c);
    if (!b) {
      b = Buffer.alloc(CHUNK_BYTES);
      this.#chunks.set(c, b);
    } else if (b === ALL_ONES) {
      b = Buffer.from(ALL_ONES);
      this.#chunks.set(c, b);
    }
    return b;
  }

  /** Set bits [first, end) (clamped to the bitmap). */
  setBits(first: number, end: number): void {
    end = Math.min(end, this.bits);
    let i = Math.max(0, first);
    while (i < end) {
      const c = Math.floor(i / CHUNK_BITS);
      const inChunk = i - c * CHUNK_BITS;
      const stop = Math.min(end - c * CHUNK_BITS, CHUNK_BITS);
      if (inChunk === 0 && stop === CHUNK_BITS) {
        this.#chunks.set(c, ALL_ONES);
      } else if (this.#chunks.get(c) !== ALL_ONES) {
        const b = this.#writable(c);
        let j = inChunk;
        for (; j < stop && j & 7; j++) b[j >> 3]! |= 1 << (j & 7);
        const wholeEnd = stop & ~7;
        if (wholeEnd > j) {
          b.fill(0xff, j >> 3, wholeEnd >> 3);
          j = wholeEnd;
        }
        for (; j < stop; j++) b[j >> 3]! |= 1 << (j & 7);
      }
      i = c * CHUNK_BITS + stop;
    }
  }

  /** Mark guest bytes [offset, offset+length) dirty: every bit touching the range. */
  setRange(offset: number, length: number): void {
    if (length <= 0) return;
    this.setBits(Math.floor(offset / this.granularity), Math.ceil((offset + length) / this.granularity));
  }

  /** Clear every bit. */
  clear(): void {
    this.#chunks.clear();
  }

  isSet(bit: number): boolean {
    const b = this.#chunks.get(Math.floor(bit / CHUNK_BITS));
    if (!b) return false;
    const j = bit % CHUNK_BITS;
    return (b[j >> 3]! & (1 << (j & 7))) !== 0;
  }

  /** How many bits are set. */
  count(): number {
    let n = 0;
    for (const b of this.#chunks.values()) {
      if (b === ALL_ONES) n += CHUNK_BITS;
      else for (const byte of b) n += POPCOUNT[byte]!;
    }
    return n;
  }

  /** Runs of set bits [first, end) in ascending order. */
  *dirtyRuns(): Generator<[number, number]> {
    const order = [...this.#chunks.keys()].sort((a, b) => a - b);
    let runStart = -1;
    let runEnd = -1;
    for (const c of order) {
      const b = this.#chunks.get(c)!;
      const base = c * CHUNK_BITS;
      if (b === ALL_ONES) {
        if (runEnd === base) runEnd = base + CHUNK_BITS;
        else {
          if (runStart >= 0) yield [runStart, runEnd];
          runStart = base;
          runEnd = base + CHUNK_BITS;
        }
        continue;
      }
      for (let byte = 0; byte < CHUNK_BYTES; byte++) {
        const v = b[byte]!;
        if (v === 0) continue;
        for (let k = 0; k < 8; k++) {
          if (!(v & (1 << k))) continue;
          const bit = base + byte * 8 + k;
          if (bit === runEnd) runEnd++;
          else {
            if (runStart >= 0) yield [runStart, runEnd];
            runStart = bit;
            runEnd = bit + 1;
          }
        }
      }
    }
    if (runStart >= 0) yield [runStart, Math.min(runEnd, this.bits)];
  }

  /** Dirty guest byte ranges [offset, end), clamped to the size. */
  *dirtyRanges(): Generator<[number, number]> {
    for (const [a, b] of this.dirtyRuns()) yield [a * this.granularity, Math.min(b * this.granularity, this.#size)];
  }

  /** OR `src` into this bitmap (QEMU hbitmap_merge): chunk by chunk at the same granularity,
   *  else every byte range `src` marks is marked here, rounded out to this granularity. */
  merge(src: DirtyBitmap): void {
    if (src.granularity === this.granularity) {
      for (const [c, b] of src.#chunks) {
        const mine = this.#chunks.get(c);
        if (mine === ALL_ONES) continue;
        if (b === ALL_ONES || !mine) {
          this.#chunks.set(c, b === ALL_ONES ? ALL_ONES : Buffer.from(b));
          continue;
        }
        for (let i = 0; i < CHUNK_BYTES; i++) mine[i]! |= b[i]!;
      }
      this.#trimTail();
      return;
    }
    for (const [a, b] of src.dirtyRanges()) this.setRange(a, Math.min(b, this.#size) - a);
  }

  /** A copy (QEMU keeps one as a merge's backup). */
  clone(): DirtyBitmap {
    const out = new DirtyBitmap(this.#size, this.granularity);
    for (const [c, b] of this.#chunks) out.#chunks.set(c, b === ALL_ONES ? ALL_ONES : Buffer.from(b));
    return out;
  }

  /** Change the covered size (QEMU bdrv_dirty_bitmap_truncate): new bits are clear, bits past a
   *  smaller end are dropped. */
  resize(size: number): void {
    this.#size = size;
    this.#trimTail();
  }

  /** Keep every bit at or past `bits` clear (chunks past the end dropped, the last one masked). */
  #trimTail(): void {
    const n = this.bits;
    for (const c of [...this.#chunks.keys()]) {
      const base = c * CHUNK_BITS;
      if (base >= n) this.#chunks.delete(c);
      else if (base + CHUNK_BITS > n) {
        const b = this.#writable(c);
        const j = n - base;
        if (j & 7) b[j >> 3]! &= (1 << (j & 7)) - 1;
        b.fill(0, (j + 7) >> 3);
      }
    }
  }

  /**
   * `count` bits from bit `first` (a multiple of 8), as ceil(count/8) bytes, bits past the
   * bitmap's end clear; undefined when all are clear (QEMU stores no cluster for those).
   */
  serialize(first: number, count: number): Buffer | undefined {
    if (first % 8 !== 0) throw new RangeError('Serialized bitmap parts start on a byte');
    const out = Buffer.alloc(Math.ceil(count / 8));
    let any = false;
    for (let i = first; i < first + count; ) {
      const c = Math.floor(i / CHUNK_BITS);
      const inChunk = i - c * CHUNK_BITS;
      const n = Math.min(CHUNK_BITS - inChunk, first + count - i);
      const b = this.#chunks.get(c);
      if (b) {
        any = true;
        b.copy(out, (i - first) >> 3, inChunk >> 3, (inChunk + n + 7) >> 3);
      }
      i += n;
    }
    if (!any) return undefined;
    // Nothing past the end of the bitmap.
    const valid = Math.max(0, Math.min(count, this.bits - first));
    if (valid < count) {
      if (valid & 7) out[valid >> 3]! &= (1 << (valid & 7)) - 1;
      out.fill(0, (valid + 7) >> 3);
    }
    return out.some((v) => v !== 0) ? out : undefined;
  }

  /** Load `count` bits from bit `first` (a multiple of 8) out of `data` (QEMU
   *  bdrv_dirty_bitmap_deserialize_part); bits past the bitmap's end are ignored. */
  deserialize(first: number, count: number, data: Buffer): void {
    if (first % 8 !== 0) throw new RangeError('Serialized bitmap parts start on a byte');
    count = Math.min(count, this.bits - first);
    for (let i = first; i < first + count; ) {
      const c = Math.floor(i / CHUNK_BITS);
      const inChunk = i - c * CHUNK_BITS;
      const n = Math.min(CHUNK_BITS - inChunk, first + count - i);
      const src = data.subarray((i - first) >> 3, (i - first + n + 7) >> 3);
      if (src.some((v) => v !== 0)) src.copy(this.#writable(c), inChunk >> 3);
      else if (this.#chunks.has(c)) this.#writable(c).fill(0, inChunk >> 3, (inChunk + n) >> 3);
      i += n;
    }
    this.#trimTail();
  }

  /** Set `count` bits from bit `first` (an all-ones bitmap table entry). */
  deserializeOnes(first: number, count: number): void {
    this.setBits(first, first + count);
  }
}

const POPCOUNT = Uint8Array.from({ length: 256 }, (_, v) => {
  let n = 0;
  for (let x = v; x; x >>= 1) n += x & 1;
  return n;
});

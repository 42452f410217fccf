// LZFSE decoder (Apple's LZFSE stream format, as its reference implementation lzfse/lzfse defines it:
// block headers of src/lzfse_internal.h, finite-state-entropy coding of src/lzfse_fse.h, LZVN
// opcodes of src/lzvn_decode_base.c), written for DMG's ULFO chunks (0x80000007). No maintained
// JavaScript decoder exists on npm. A stream is a sequence of blocks, each starting with a
// little-endian magic: 'bvx-' raw, 'bvx1'/'bvx2' LZFSE (tables plain / packed), 'bvxn' LZVN, 'bvx$'
// end. Matches may reach back into earlier blocks' output. Every count, state and distance is
// checked: bad input is an LzfseError, never an out-of-bounds access or an unbounded output.

export class LzfseError extends Error {
  constructor(message: string) {
    super(`lzfse: ${message}`);
    this.name = 'LzfseError';
  }
}

const MAGIC_END = 0x24787662; // bvx$
const MAGIC_RAW = 0x2d787662; // bvx-
const MAGIC_V1 = 0x31787662; // bvx1
const MAGIC_V2 = 0x32787662; // bvx2
const MAGIC_LZVN = 0x6e787662; // bvxn

const L_SYMBOLS = 20;
const M_SYMBOLS = 20;
const D_SYMBOLS = 64;
const LITERAL_SYMBOLS = 256;
const L_STATES = 64;
const M_STATES = 64;
const D_STATES = 256;
const LITERAL_STATES = 1024;
const MATCHES_PER_BLOCK = 10000;
const LITERALS_PER_BLOCK = 4 * MATCHES_PER_BLOCK;
/** Size of a v1 block header: 7 u32 counts, literal bits and states, lmd bits and states, then
 *  360 u16 frequencies. */
const V1_HEADER_SIZE = 28 + 4 + 8 + 4 + 6 + 2 * (L_SYMBOLS + M_SYMBOLS + D_SYMBOLS + LITERAL_SYMBOLS);
/** Fixed part of a v2 header: magic, raw size, three packed u64 fields. */
const V2_FIXED_SIZE = 32;

// Extra-bit counts and base values of the L (literal run), M (match length) and D (distance)
// symbols (lzfse_internal.h).
const L_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 5, 8];
const L_BASE = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 20, 28, 60];
const M_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 5, 8, 11];
const M_BASE = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 24, 56, 312];
const D_EXTRA: number[] = [];
const D_BASE: number[] = [];
// Distances: four symbols per extra-bit count 0..15, each group starting where the last ended.
for (let bits = 0, base = 0; bits < 16; bits++) {
  for (let i = 0; i < 4; i++) {
    D_EXTRA.push(bits);
    D_BASE.push(base);
    base += 1 << bits;
  }
}

/** Frequency codes of v2 headers: the low 5 bits of the code select its length and value. */
const FREQ_NBITS = [2, 3, 2, 5, 2, 3, 2, 8, 2, 3, 2, 5, 2, 3, 2, 14, 2, 3, 2, 5, 2, 3, 2, 8, 2, 3, 2, 5, 2, 3, 2, 14];
const FREQ_VALUE = [0, 2, 1, 4, 0, 3, 1, -1, 0, 2, 1, 5, 0, 3, 1, -1, 0, 2, 1, 6, 0, 3, 1, -1, 0, 2, 1, 7, 0, 3, 1, -1];

interface BlockHeader {
  rawBytes: number;
  literals: number;
  matches: number;
  literalPayload: number;
  lmdPayload: number;
  literalBits: number;
  literalState: [number, number, number, number];
  lmdBits: number;
  lState: number;
  mState: number;
  dState: number;
  /** l(20), m(20), d(64), literal(256) frequencies in that order. */
  freq: Uint16Array;
}

/** Backward bit reader of an FSE stream: bytes from the end towards `start`, each byte's bits
 *  high to low, after skipping the zero padding bits at the top of the last byte. */
class BackwardBits {
  #buf: Uint8Array;
  #pos: number;
  readonly #start: number;
  #acc = 0;
  #bits = 0;

  constructor(buf: Uint8Array, start: number, end: number, padBits: number) {
    if (padBits < 0 || padBits > 7) throw new LzfseError('bad bit count in block header');
    if (end - start < 1) throw new LzfseError('empty bit stream');
    this.#buf = buf;
    this.#start = start;
    this.#pos = end;
    if (padBits > 0) {
      const last = buf[--this.#pos]!;
      if (last >> (8 - padBits) !== 0) throw new LzfseError('bit stream padding is not zero');
      this.#acc = last & (0xff >> padBits);
      this.#bits = 8 - padBits;
    }
  }

  /** The next n (<= 24) bits as an integer, first bit highest. */
  pull(n: number): number {
    while (this.#bits < n) {
      if (this.#pos <= this.#start) throw new LzfseError('bit stream ends early');
      this.#acc = ((this.#acc << 8) | this.#buf[--this.#pos]!) >>> 0;
      this.#bits += 8;
    }
    this.#bits -= n;
    const v = this.#acc >>> this.#bits;
    this.#acc &= (1 << this.#bits) - 1;
    return v;
  }
}

const clz32 = Math.clz32;

/** Literal decoder table: per state, symbol | bits to read | next-state base (fse_init_decoder_table). */
function literalTable(freq: Uint16Array, from: number): { symbol: Uint8Array; k: Uint8Array; delta: Int32Array } {
  const nstates = LITERAL_STATES;
  const symbol = new Uint8Array(nstates);
  const k = new Uint8Array(nstates);
  const delta = new Int32Array(nstates);
  const nClz = clz32(nstates);
  let t = 0;
  for (let s = 0; s < LITERAL_SYMBOLS; s++) {
    const f = freq[from + s]!;
    if (f === 0) continue;
    if (t + f > nstates) throw new LzfseError('literal frequencies exceed the state count');
    const shift = clz32(f) - nClz;
    const j0 = ((2 * nstates) >> shift) - f;
    for (let j = 0; j < f; j++, t++) {
      symbol[t] = s;
      if (j < j0) {
        k[t] = shift;
        delta[t] = ((f + j) << shift) - nstates;
      } else {
        k[t] = shift - 1;
        delta[t] = (j - j0) << (shift - 1);
      }
    }
  }
  return { symbol, k, delta };
}

interface ValueTable {
  totalBits: Uint8Array;
  valueBits: Uint8Array;
  delta: Int32Array;
  base: Int32Array;
}

/** L/M/D decoder table (fse_init_value_decoder_table): each state reads its state bits and the
 *  symbol's extra value bits in one pull. */
function valueTable(nstates: number, nsymbols: number, freq: Uint16Array, from: number, extra: number[], base: number[], what: string): ValueTable {
  const table: ValueTable = { totalBits: new Uint8Array(nstates), valueBits: new Uint8Array(nstates), delta: new Int32Array(nstates), base: new Int32Array(nstates) };
  const nClz = clz32(nstates);
  let t = 0;
  for (let s = 0; s < nsymbols; s++) {
    const f = freq[from + s]!;
    if (f === 0) continue;
    if (t + f > nstates) throw new LzfseError(`${what} frequencies exceed the state count`);
    const shift = clz32(f) - nClz;
    const j0 = ((2 * nstates) >> shift) - f;
    for (let j = 0; j < f; j++, t++) {
      table.valueBits[t] = extra[s]!;
      table.base[t] = base[s]!;
      if (j < j0) {
        table.totalBits[t] = shift + extra[s]!;
        table.delta[t] = ((f + j) << shift) - nstates;
      } else {
        table.totalBits[t] = shift - 1 + extra[s]!;
        table.delta[t] = (j - j0) << (shift - 1);
      }
    }
  }
  return table;
}

function u32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}
function u16(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8);
}
/** Bits [offset, offset+n) (n <= 20) of the little-endian u64 at `at`, from its two u32 halves. */
function field(b: Uint8Array, at: number, offset: number, n: number): number {
  const lo = u32(b, at);
  const hi = u32(b, at + 4);
  const mask = (1 << n) - 1;
  if (offset >= 32) return (hi >>> (offset - 32)) & mask;
  if (offset + n <= 32) return (lo >>> offset) & mask;
  return ((lo >>> offset) | (hi << (32 - offset))) & mask;
}

/** A v1 header ('bvx1'): counts and the frequency tables stored plainly. */
function decodeV1Header(src: Uint8Array, at: number): { header: BlockHeader; size: number } {
  if (at + V1_HEADER_SIZE > src.length) throw new LzfseError('truncated block header');
  const i32 = (o: number) => u32(src, at + o) | 0;
  const freq = new Uint16Array(L_SYMBOLS + M_SYMBOLS + D_SYMBOLS + LITERAL_SYMBOLS);
  for (let i = 0; i < freq.length; i++) freq[i] = u16(src, at + 50 + 2 * i);
  const header: BlockHeader = {
    rawBytes: u32(src, at + 4),
    literals: u32(src, at + 12),
    matches: u32(src, at + 16),
    literalPayload: u32(src, at + 20),
    lmdPayload: u32(src, at + 24),
    literalBits: i32(28),
    literalState: [u16(src, at + 32), u16(src, at + 34), u16(src, at + 36), u16(src, at + 38)],
    lmdBits: i32(40),
    lState: u16(src, at + 44),
    mState: u16(src, at + 46),
    dState: u16(src, at + 48),
    freq,
  };
  return { header, size: V1_HEADER_SIZE };
}

/** A v2 header ('bvx2'): counts packed in three u64 fields, then variable-length coded
 *  frequencies up to header_size. */
function decodeV2Header(src: Uint8Array, at: number): { header: BlockHeader; size: number } {
  if (at + V2_FIXED_SIZE > src.length) throw new LzfseError('truncated block header');
  const p0 = at + 8;
  const p1 = at + 16;
  const p2 = at + 24;
  const size = u32(src, p2);
  if (size < V2_FIXED_SIZE || at + size > src.length) throw new LzfseError(`block header size ${size} is out of range`);
  const header: BlockHeader = {
    rawBytes: u32(src, at + 4),
    literals: field(src, p0, 0, 20),
    literalPayload: field(src, p0, 20, 20),
    matches: field(src, p0, 40, 20),
    literalBits: field(src, p0, 60, 3) - 7,
    literalState: [field(src, p1, 0, 10), field(src, p1, 10, 10), field(src, p1, 20, 10), field(src, p1, 30, 10)],
    lmdPayload: field(src, p1, 40, 20),
    lmdBits: field(src, p1, 60, 3) - 7,
    lState: field(src, p2, 32, 10),
    mState: field(src, p2, 42, 10),
    dState: field(src, p2, 52, 10),
    freq: new Uint16Array(L_SYMBOLS + M_SYMBOLS + D_SYMBOLS + LITERAL_SYMBOLS),
  };
  let pos = at + V2_FIXED_SIZE;
  const end = at + size;
  if (pos < end) {
    let acc = 0;
    let bits = 0;
    for (let i = 0; i < header.freq.length; i++) {
      while (pos < end && bits + 8 <= 32) {
        acc = (acc | (src[pos++]! << bits)) >>> 0;
        bits += 8;
      }
      const code = acc & 31;
      const n = FREQ_NBITS[code]!;
      if (n > bits) throw new LzfseError('frequency table ends early');
      header.freq[i] = n === 8 ? 8 + ((acc >>> 4) & 0xf) : n === 14 ? 24 + ((acc >>> 4) & 0x3ff) : FREQ_VALUE[code]!;
      acc >>>= n;
      bits -= n;
    }
    if (bits >= 8 || pos !== end) throw new LzfseError('frequency table does not fill its header');
  }
  return { header, size };
}

function checkHeader(h: BlockHeader): void {
  if (h.literals > LITERALS_PER_BLOCK) throw new LzfseError(`${h.literals} literals in one block`);
  if (h.matches > MATCHES_PER_BLOCK) throw new LzfseError(`${h.matches} matches in one block`);
  if (h.literalState.some((s) => s >= LITERAL_STATES)) throw new LzfseError('literal state out of range');
  if (h.lState >= L_STATES || h.mState >= M_STATES || h.dState >= D_STATES) throw new LzfseError('L/M/D state out of range');
  if (h.literalBits < -7 || h.literalBits > 0 || h.lmdBits < -7 || h.lmdBits > 0) throw new LzfseError('bit count out of range');
}

/** Output buffer with a hard cap: a stream that would write past it is an error. */
interface Out {
  buf: Uint8Array;
  pos: number;
}

function copyMatch(out: Out, distance: number, length: number): void {
  const b = out.buf;
  let p = out.pos;
  if (distance <= 0 || distance > p) throw new LzfseError(`match distance ${distance} reaches before the start of the output`);
  if (p + length > b.length) throw new LzfseError('output is longer than expected');
  if (distance >= length) {
    b.copyWithin(p, p - distance, p - distance + length);
    p += length;
  } else {
    for (const end = p + length; p < end; p++) b[p] = b[p - distance]!;
  }
  out.pos = p;
}

function copyLiteral(out: Out, from: Uint8Array, at: number, length: number): void {
  if (at + length > from.length) throw new LzfseError('literal runs past its source');
  if (out.pos + length > out.buf.length) throw new LzfseError('output is longer than expected');
  out.buf.set(from.subarray(at, at + length), out.pos);
  out.pos += length;
}

/** One LZFSE-coded block (v1 or v2 header already decoded): literals, then L/M/D triples. */
function decodeFseBlock(src: Uint8Array, payload: number, h: BlockHeader, out: Out): number {
  checkHeader(h);
  const litEnd = payload + h.literalPayload;
  const lmdEnd = litEnd + h.lmdPayload;
  if (lmdEnd > src.length) throw new LzfseError('block payload runs past the end of the data');
  const blockStart = out.pos;

  // Literals: four interleaved FSE states over one backward bit stream.
  const lit = literalTable(h.freq, L_SYMBOLS + M_SYMBOLS + D_SYMBOLS);
  const nLiterals = (h.literals + 3) & ~3;
  const literals = new Uint8Array(nLiterals);
  {
    const bits = new BackwardBits(src, payload, litEnd, -h.literalBits);
    const state = [...h.literalState];
    for (let i = 0; i < nLiterals; i += 4) {
      for (let j = 0; j < 4; j++) {
        const s = state[j]!;
        literals[i + j] = lit.symbol[s]!;
        state[j] = lit.delta[s]! + bits.pull(lit.k[s]!);
        if (state[j]! < 0 || state[j]! >= LITERAL_STATES) throw new LzfseError('literal state out of range');
      }
    }
  }

  // L (literal run), M (match length), D (distance; 0 repeats the last one) triples.
  const lT = valueTable(L_STATES, L_SYMBOLS, h.freq, 0, L_EXTRA, L_BASE, 'L');
  const mT = valueTable(M_STATES, M_SYMBOLS, h.freq, L_SYMBOLS, M_EXTRA, M_BASE, 'M');
  const dT = valueTable(D_STATES, D_SYMBOLS, h.freq, L_SYMBOLS + M_SYMBOLS, D_EXTRA, D_BASE, 'D');
  const bits = new BackwardBits(src, litEnd, lmdEnd, -h.lmdBits);
  let ls = h.lState;
  let ms = h.mState;
  let ds = h.dState;
  let d = -1;
  let litPos = 0;
  const value = (t: ValueTable, state: number, nstates: number, set: (s: number) => void): number => {
    const v = bits.pull(t.totalBits[state]!);
    const vb = t.valueBits[state]!;
    const next = t.delta[state]! + (v >>> vb);
    if (next < 0 || next >= nstates) throw new LzfseError('L/M/D state out of range');
    set(next);
    return t.base[state]! + (v & ((1 << vb) - 1));
  };
  for (let n = 0; n < h.matches; n++) {
    const L = value(lT, ls, L_STATES, (s) => (ls = s));
    const M = value(mT, ms, M_STATES, (s) => (ms = s));
    const newD = value(dT, ds, D_STATES, (s) => (ds = s));
    if (newD !== 0) d = newD;
    if (litPos + L > nLiterals) throw new LzfseError('literal run past the block literals');
    copyLiteral(out, literals, litPos, L);
    litPos += L;
    if (M > 0) {
      if (d < 0) throw new LzfseError('match repeats a distance never set');
      copyMatch(out, d, M);
    }
  }
  if (out.pos - blockStart !== h.rawBytes) throw new LzfseError(`block decoded to ${out.pos - blockStart} bytes, its header says ${h.rawBytes}`);
  return lmdEnd;
}

/** One LZVN block payload [at, end): byte opcodes with literals inline (lzvn_decode_base.c). */
function decodeLzvnBlock(src: Uint8Array, at: number, end: number, rawBytes: number, out: Out): void {
  const blockEnd = out.pos + rawBytes;
  if (blockEnd > out.buf.length) throw new LzfseError('output is longer than expected');
  let p = at;
  let d = 0;
  const need = (n: number) => {
    if (p + n > end) throw new LzfseError('LZVN block ends inside an opcode');
  };
  for (;;) {
    need(1);
    const op = src[p]!;
    let L = 0;
    let M = 0;
    let len = 1;
    if (op >= 0xf0) {
      // 1111MMMM: match with the previous distance; 0xF0: long form with a length byte.
      if (op === 0xf0) {
        need(2);
        M = src[p + 1]! + 16;
        len = 2;
      } else M = op & 0xf;
    } else if (op >= 0xe0) {
      // 1110LLLL: literals only; 0xE0: long form with a length byte.
      if (op === 0xe0) {
        need(2);
        L = src[p + 1]! + 16;
        len = 2;
      } else L = op & 0xf;
    } else if (op >= 0xa0 && op < 0xc0) {
      // 101LLMMM DDDDDDMM DDDDDDDD: medium distance.
      need(3);
      const w = src[p + 1]! | (src[p + 2]! << 8);
      L = (op >> 3) & 3;
      M = (((op & 7) << 2) | (w & 3)) + 3;
      d = w >> 2;
      len = 3;
    } else if ((op >= 0x70 && op < 0x80) || (op >= 0xd0 && op < 0xe0)) {
      throw new LzfseError(`undefined LZVN opcode 0x${op.toString(16)}`);
    } else {
      const low = op & 7;
      if (low === 6) {
        if (op === 0x06) {
          need(8);
          if (out.pos !== blockEnd) throw new LzfseError(`LZVN block decoded to ${out.pos - (blockEnd - rawBytes)} bytes, its header says ${rawBytes}`);
          return;
        }
        if (op === 0x0e || op === 0x16) {
          p += 1; // nop
          continue;
        }
        if (op < 0x40) throw new LzfseError(`undefined LZVN opcode 0x${op.toString(16)}`);
        // LLMMM110: literals and a match at the previous distance.
        L = op >> 6;
        M = ((op >> 3) & 7) + 3;
      } else if (low === 7) {
        // LLMMM111 DDDDDDDD DDDDDDDD: large distance.
        need(3);
        L = op >> 6;
        M = ((op >> 3) & 7) + 3;
        d = src[p + 1]! | (src[p + 2]! << 8);
        len = 3;
      } else {
        // LLMMMDDD DDDDDDDD: small distance.
        need(2);
        L = op >> 6;
        M = ((op >> 3) & 7) + 3;
        d = ((op & 7) << 8) | src[p + 1]!;
        len = 2;
      }
    }
    p += len;
    if (L > 0) {
      need(L);
      if (out.pos + L > blockEnd) throw new LzfseError('LZVN block is longer than its header says');
      copyLiteral(out, src, p, L);
      p += L;
    }
    if (M > 0) {
      if (out.pos + M > blockEnd) throw new LzfseError('LZVN block is longer than its header says');
      if (d === 0) throw new LzfseError('LZVN match with distance 0');
      copyMatch(out, d, M);
    }
  }
}

/** Decode a whole LZFSE stream that must produce exactly `outputLength` bytes. */
export function lzfseDecode(src: Uint8Array, outputLength: number): Uint8Array {
  const out: Out = { buf: new Uint8Array(outputLength), pos: 0 };
  let p = 0;
  for (;;) {
    if (p + 4 > src.length) throw new LzfseError('stream ends without an end-of-stream block');
    const magic = u32(src, p);
    if (magic === MAGIC_END) break;
    if (magic === MAGIC_RAW) {
      if (p + 8 > src.length) throw new LzfseError('truncated block header');
      const n = u32(src, p + 4);
      copyLiteral(out, src, p + 8, n);
      p += 8 + n;
    } else if (magic === MAGIC_LZVN) {
      if (p + 12 > src.length) throw new LzfseError('truncated block header');
      const raw = u32(src, p + 4);
      const payload = u32(src, p + 8);
      const start = p + 12;
      if (start + payload > src.length) throw new LzfseError('LZVN payload runs past the end of the data');
      decodeLzvnBlock(src, start, start + payload, raw, out);
      p = start + payload;
    } else if (magic === MAGIC_V1 || magic === MAGIC_V2) {
      const { header, size } = magic === MAGIC_V1 ? decodeV1Header(src, p) : decodeV2Header(src, p);
      p = decodeFseBlock(src, p + size, header, out);
    } else {
      throw new LzfseError(`unknown block magic 0x${magic.toString(16).padStart(8, '0')} at byte ${p}`);
    }
  }
  if (out.pos !== outputLength) throw new LzfseError(`stream decoded to ${out.pos} bytes, expected ${outputLength}`);
  return out.buf;
}

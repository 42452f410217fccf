// Codecs for qcow2 table entries (docs/interop/qcow2.txt "Cluster mapping", "Compressed
// Clusters Descriptor", "Extended L2 Entries"; "Host cluster management" for refcount table
// entries). Entries are u64 big-endian; standard entries are decoded with two u32 reads so the
// hot path never touches BigInt; compressed descriptors (offsets up to bit 61) use BigInt.

import { invalidImage, type BlockErrorContext } from '../../errors.ts';

/** Bit 63 of L1/L2 entries: refcount is exactly one (QCOW_OFLAG_COPIED). */
export const OFLAG_COPIED_HI = 0x80000000;
/** Bit 62 of L2 entries: compressed cluster (QCOW_OFLAG_COMPRESSED). */
export const OFLAG_COMPRESSED_HI = 0x40000000;
/** Bit 0 of standard L2 entries (v3): the cluster reads as zeros (QCOW_OFLAG_ZERO). */
export const OFLAG_ZERO_LO = 0x1;
/** Offset bits 9..55 of L1/L2/refcount-table entries: high word part and low word part. */
const OFFSET_MASK_HI = 0x00ffffff;
const OFFSET_MASK_LO = 0xfffffe00;
/** Reserved bits of an L1 entry (0..8, 56..62) and of a standard L2 entry (1..8, 56..61). */
const L1_RESERVED_HI = 0x7f000000;
const L1_RESERVED_LO = 0x000001ff;
const L2_RESERVED_HI = 0x3f000000;
const L2_RESERVED_LO = 0x000001fe;
/** Compressed data is addressed in 512-byte sectors (QCOW2_COMPRESSED_SECTOR_SIZE). */
export const COMPRESSED_SECTOR = 512;
/** Subclusters per cluster with extended L2 entries. */
export const SUBCLUSTERS = 32;
/** All-allocated / all-zero masks of the extended L2 bitmap halves. */
export const ALL_SUBCLUSTERS = 0xffffffff;
/** Bytes per L1 entry and per refcount table entry. */
export const L1E_SIZE = 8;

const TWO32 = 2 ** 32;

export type ClusterType = 'unallocated' | 'normal' | 'compressed' | 'zero-plain' | 'zero-alloc';

/** A decoded L2 entry (plus its subcluster bitmap when the image has extended L2 entries). */
export interface L2Entry {
  type: ClusterType;
  /** Host offset of a normal / zero-alloc cluster (cluster aligned in valid images). */
  offset: number;
  copied: boolean;
  /** Compressed clusters: host byte offset and byte length of the compressed data. */
  compressedOffset: number;
  compressedSize: number;
  /** Extended L2: bit i = subcluster i allocated / reads as zeros. 0 for standard entries. */
  allocMask: number;
  zeroMask: number;
  reservedBits: boolean;
}

/** The offset field (bits 9..55) of an L1, L2 or refcount-table entry read as two u32 words. */
function entryOffset(hi: number, lo: number): number {
  return (hi & OFFSET_MASK_HI) * TWO32 + ((lo & OFFSET_MASK_LO) >>> 0);
}

/** Host offset in an L1 entry (0: no L2 table), and its flags. */
export function decodeL1(buf: Buffer, index: number): { offset: number; copied: boolean; reservedBits: boolean } {
  const p = index * L1E_SIZE;
  const hi = buf.readUInt32BE(p);
  const lo = buf.readUInt32BE(p + 4);
  return {
    offset: entryOffset(hi, lo),
    copied: (hi & OFFSET_MASK_HI) !== 0 || (lo & OFFSET_MASK_LO) !== 0 ? (hi & OFLAG_COPIED_HI) !== 0 : false,
    reservedBits: (hi & L1_RESERVED_HI) !== 0 || (lo & L1_RESERVED_LO) !== 0,
  };
}

export function encodeL1(buf: Buffer, index: number, offset: number, copied: boolean): void {
  const p = index * L1E_SIZE;
  buf.writeUInt32BE(((Math.floor(offset / TWO32) & OFFSET_MASK_HI) | (copied && offset ? OFLAG_COPIED_HI : 0)) >>> 0, p);
  buf.writeUInt32BE(offset % TWO32 >>> 0, p + 4);
}

/** Geometry needed to decode an L2 entry. */
export interface EntryGeometry {
  clusterBits: number;
  extendedL2: boolean;
  /** Version 2 images have no zero flag. */
  version: number;
  /** With an external data file, host offset 0 is valid: COPIED tells it from "unallocated". */
  externalData?: boolean;
}

export function l2EntryBytes(g: { extendedL2: boolean }): number {
  return g.extendedL2 ? 16 : 8;
}

export function decodeL2(buf: Buffer, index: number, g: EntryGeometry): L2Entry {
  const p = index * l2EntryBytes(g);
  const hi = buf.readUInt32BE(p);
  const lo = buf.readUInt32BE(p + 4);
  const copied = (hi & OFLAG_COPIED_HI) !== 0;
  const zeroMask = g.extendedL2 ? buf.readUInt32BE(p + 8) : 0;
  const allocMask = g.extendedL2 ? buf.readUInt32BE(p + 12) : 0;
  if (hi & OFLAG_COMPRESSED_HI) {
    const v = buf.readBigUInt64BE(p);
    const shift = BigInt(62 - (g.clusterBits - 8));
    const offMask = (1n << shift) - 1n;
    const sizeMask = (1n << BigInt(g.clusterBits - 8)) - 1n;
    const off = v & offMask;
    const sectors = Number((v >> shift) & sizeMask) + 1;
    const offset = off > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(off);
    return {
      type: 'compressed',
      offset: 0,
      copied,
      compressedOffset: offset,
      compressedSize: sectors * COMPRESSED_SECTOR - (offset % COMPRESSED_SECTOR),
      allocMask,
      zeroMask,
      reservedBits: false,
    };
  }
  const offset = entryOffset(hi, lo);
  const reservedBits = (hi & L2_RESERVED_HI) !== 0 || (lo & (g.extendedL2 ? L2_RESERVED_LO | OFLAG_ZERO_LO : L2_RESERVED_LO)) !== 0;
  let type: ClusterType;
  if (!g.extendedL2 && (lo & OFLAG_ZERO_LO) && g.version >= 3) type = offset ? 'zero-alloc' : 'zero-plain';
  else type = offset || (copied && g.externalData) ? 'normal' : 'unallocated';
  return { type, offset, copied, compressedOffset: 0, compressedSize: 0, allocMask, zeroMask, reservedBits };
}

/** Block-status classes of standard L2 entries (the `type` of decodeL2). A zero cluster with a
 *  host cluster (zero-alloc) is a class of its own: QEMU reports its host offset, and a run of
 *  them is contiguous on the host, as data runs are (count_contiguous_subclusters). */
export const L2_DATA = 0;
export const L2_ZERO = 1;
export const L2_UNALLOCATED = 2;
export const L2_COMPRESSED = 3;
export const L2_ZERO_ALLOC = 4;

/**
 * Block status over a standard L2 table without decoding entry objects (block status walks whole
 * tables; an object per entry made the walk of a 4 GiB image cost 0.2 s of CPU): how many entries
 * from `index` (at most `max`) share entry `index`'s class, data entries with host offsets
 * `clusterSize` apart. `host` is the first entry's host offset (data entries). The classes follow
 * decodeL2: zero flag (version 3) first, then compressed, then offset / COPIED with an external
 * data file. Standard entries only (not extended L2).
 */
export function scanStandardL2(buf: Buffer, index: number, max: number, g: EntryGeometry, clusterSize: number): { kind: number; host: number; count: number } {
  const classify = (p: number): number => {
    const hi = buf.readUInt32BE(p);
    const lo = buf.readUInt32BE(p + 4);
    if (hi & OFLAG_COMPRESSED_HI) return L2_COMPRESSED;
    const hasOffset = (hi & OFFSET_MASK_HI) !== 0 || (lo & OFFSET_MASK_LO) !== 0;
    if ((lo & OFLAG_ZERO_LO) !== 0 && g.version >= 3) return hasOffset ? L2_ZERO_ALLOC : L2_ZERO;
    if (hasOffset || ((hi & OFLAG_COPIED_HI) !== 0 && g.externalData)) return L2_DATA;
    return L2_UNALLOCATED;
  };
  const hostAt = (p: number): number => entryOffset(buf.readUInt32BE(p), buf.readUInt32BE(p + 4));
  let p = index * 8;
  const kind = classify(p);
  const mapped = kind === L2_DATA || kind === L2_ZERO_ALLOC;
  const host = mapped ? hostAt(p) : 0;
  let count = 1;
  for (p += 8; count < max; count++, p += 8) {
    if (classify(p) !== kind) break;
    if (mapped && hostAt(p) !== host + count * clusterSize) break;
  }
  return { kind, host, count };
}

/**
 * Host offset of the first of `count` standard L2 entries from `index` when every one maps a data
 * cluster this image alone uses (COPIED, no zero flag, not compressed) and each lies `clusterSize`
 * after the previous: the guest range is then one contiguous host range, writable in place.
 * Undefined otherwise. Standard entries only.
 */
export function contiguousOwnedRun(buf: Buffer, index: number, count: number, g: EntryGeometry, clusterSize: number): number | undefined {
  let first = 0;
  for (let i = 0; i < count; i++) {
    const p = (index + i) * 8;
    const hi = buf.readUInt32BE(p);
    const lo = buf.readUInt32BE(p + 4);
    if (!(hi & OFLAG_COPIED_HI) || hi & OFLAG_COMPRESSED_HI || ((lo & OFLAG_ZERO_LO) !== 0 && g.version >= 3)) return undefined;
    const host = entryOffset(hi, lo);
    if (i === 0) first = host;
    else if (host !== first + i * clusterSize) return undefined;
  }
  return first;
}

/** Write a standard (non-compressed) L2 entry. */
export function encodeL2(buf: Buffer, index: number, g: EntryGeometry, e: { offset: number; copied: boolean; zero?: boolean; allocMask?: number; zeroMask?: number }): void {
  const p = index * l2EntryBytes(g);
  buf.writeUInt32BE(((Math.floor(e.offset / TWO32) & OFFSET_MASK_HI) | (e.copied ? OFLAG_COPIED_HI : 0)) >>> 0, p);
  buf.writeUInt32BE(((e.offset % TWO32) | (e.zero && !g.extendedL2 ? OFLAG_ZERO_LO : 0)) >>> 0, p + 4);
  if (g.extendedL2) {
    buf.writeUInt32BE((e.zeroMask ?? 0) >>> 0, p + 8);
    buf.writeUInt32BE((e.allocMask ?? 0) >>> 0, p + 12);
  }
}

/** Write a compressed cluster descriptor (qcow2.txt "Compressed Clusters Descriptor"). */
export function encodeCompressedL2(buf: Buffer, index: number, g: EntryGeometry, hostOffset: number, length: number): void {
  const p = index * l2EntryBytes(g);
  const shift = BigInt(62 - (g.clusterBits - 8));
  const extraSectors = BigInt(Math.floor((hostOffset + length - 1) / COMPRESSED_SECTOR) - Math.floor(hostOffset / COMPRESSED_SECTOR));
  const v = (1n << 62n) | (extraSectors << shift) | BigInt(hostOffset);
  buf.writeBigUInt64BE(v, p);
  if (g.extendedL2) buf.fill(0, p + 8, p + 16);
}

/** Copy one raw entry (8 or 16 bytes) between tables. */
export function copyEntry(src: Buffer, dst: Buffer, index: number, g: { extendedL2: boolean }): void {
  const n = l2EntryBytes(g);
  src.copy(dst, index * n, index * n, index * n + n);
}

/** Refcount table entry: offset of a refcount block (0 = none); reserved bits 0..8 must be 0. */
export function decodeReftableEntry(buf: Buffer, index: number, ctx?: BlockErrorContext): number {
  const p = index * L1E_SIZE;
  const hi = buf.readUInt32BE(p);
  const lo = buf.readUInt32BE(p + 4);
  if (hi > 0x001fffff) throw invalidImage(`Refcount table entry ${index} is too large (0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')})`, ctx);
  return hi * TWO32 + lo;
}

export function encodeReftableEntry(buf: Buffer, index: number, offset: number): void {
  buf.writeBigUInt64BE(BigInt(offset), index * L1E_SIZE);
}

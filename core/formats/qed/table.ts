// QED L1/L2 table codec (qed_spec.txt "Tables"): a table is table_size clusters of little-endian
// u64 offsets. An L1 entry is 0 (no L2 table) or the offset of an L2 table; an L2 entry is 0
// (unallocated: read the backing file), 1 (zero cluster) or the offset of a data cluster.
// Offsets are valid only when cluster aligned, past the header and inside the file.

import { endianness } from 'node:os';

/** L2 entry value of a cluster that reads as zeros (QED_CLUSTER_ZERO). */
export const QED_ZERO_CLUSTER = 1n;
export const QED_ENTRY_SIZE = 8;

export type QedTable = BigUint64Array;

const HOST_IS_LE = endianness() === 'LE';

/** Decode a table's bytes (one memcpy on little-endian hosts). */
export function decodeTable(buf: Buffer, entries: number): QedTable {
  const t = new BigUint64Array(entries);
  if (HOST_IS_LE) Buffer.from(t.buffer).set(buf.subarray(0, entries * QED_ENTRY_SIZE));
  else for (let i = 0; i < entries; i++) t[i] = buf.readBigUInt64LE(i * QED_ENTRY_SIZE);
  return t;
}

/** Encode entries [first, first+n) of a table. */
export function encodeEntries(t: QedTable, first: number, n: number): Buffer {
  if (HOST_IS_LE) return Buffer.from(Buffer.from(t.buffer, t.byteOffset + first * QED_ENTRY_SIZE, n * QED_ENTRY_SIZE));
  const buf = Buffer.alloc(n * QED_ENTRY_SIZE);
  for (let i = 0; i < n; i++) buf.writeBigUInt64LE(t[first + i]!, i * QED_ENTRY_SIZE);
  return buf;
}

/** The rules every cluster or table offset must meet (qed_check_cluster_offset). */
export interface OffsetRules {
  clusterSize: number;
  headerBytes: number;
  /** Current usable file length (grows with allocation). */
  fileSize: number;
}

/** Is `off` a valid data-cluster offset? */
export function isValidClusterOffset(off: bigint, r: OffsetRules): boolean {
  return off % BigInt(r.clusterSize) === 0n && off >= BigInt(r.headerBytes) && off < BigInt(r.fileSize);
}

/** Is `off` a valid table offset (all of its `tableSize` clusters valid)? */
export function isValidTableOffset(off: bigint, tableBytes: number, r: OffsetRules): boolean {
  return isValidClusterOffset(off, r) && off + BigInt(tableBytes) <= BigInt(r.fileSize);
}

// QCOW v1 L1/L2 table codec (block/qcow.c: big-endian u64 entries). An L1 entry is 0 or the file
// offset of an L2 table; an L2 entry is 0 (unallocated), a sector-aligned data cluster offset, or,
// with bit 63 set, a compressed cluster: its byte count in the cluster_bits bits below bit 63 and
// its file offset in the bits below those.

/** L2 entry bit marking a compressed cluster (QCOW_OFLAG_COMPRESSED). */
export const QCOW_OFLAG_COMPRESSED = 1n << 63n;
/** Bytes per table entry. */
export const QCOW_ENTRY_SIZE = 8;

/** Decode `entries` big-endian u64 entries. */
export function decodeTable(buf: Buffer, entries: number): BigUint64Array {
  const t = new BigUint64Array(entries);
  for (let i = 0; i < entries; i++) t[i] = buf.readBigUInt64BE(i * QCOW_ENTRY_SIZE);
  return t;
}

/** One entry as it goes to disk. */
export function encodeEntry(value: bigint): Buffer {
  const e = Buffer.alloc(QCOW_ENTRY_SIZE);
  e.writeBigUInt64BE(value);
  return e;
}

/** A compressed entry: `bytes` of deflate data at `host` (QEMU's get_cluster_offset, allocate 2). */
export function compressedEntry(host: number, bytes: number, clusterBits: number): bigint {
  return QCOW_OFLAG_COMPRESSED | (BigInt(bytes) << BigInt(63 - clusterBits)) | BigInt(host);
}

/** Split a compressed entry into its file offset and byte count. */
export function decodeCompressed(entry: bigint, clusterBits: number): { host: bigint; bytes: number } {
  const sizeShift = BigInt(63 - clusterBits);
  return { host: entry & ((1n << sizeShift) - 1n), bytes: Number((entry >> sizeShift) & ((1n << BigInt(clusterBits)) - 1n)) };
}

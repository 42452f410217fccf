// QED header codec (QEMU docs/interop/qed_spec.txt, "Header"): the little-endian 64-byte header
// at offset 0 of the first header cluster, followed (inside the header clusters) by the backing
// file name. validateQedHeader() applies the spec's and QEMU's rules (block/qed.c
// bdrv_qed_do_open) in the order magic, features, ranges, overflow, bounds.

import { invalidImage, unsupported, type BlockErrorContext } from '../../errors.ts';

/** "QED\0" read as a little-endian u32. */
export const QED_MAGIC = 0x00444551;
/** Bytes of the on-disk header struct. */
export const QED_HEADER_STRUCT_SIZE = 64;

/** features: the image has a backing file. */
export const QED_F_BACKING_FILE = 0x01n;
/** features: the image was not closed cleanly; run a consistency check before writing. */
export const QED_F_NEED_CHECK = 0x02n;
/** features: the backing file is raw, do not probe it. */
export const QED_F_BACKING_FORMAT_NO_PROBE = 0x04n;
/** Every feature bit this implementation knows. */
export const QED_FEATURE_MASK = QED_F_BACKING_FILE | QED_F_NEED_CHECK | QED_F_BACKING_FORMAT_NO_PROBE;
/** No compat or autoclear features are defined. */
export const QED_COMPAT_FEATURE_MASK = 0n;
export const QED_AUTOCLEAR_FEATURE_MASK = 0n;

/** Cluster sizes the spec allows: a power of two from 4 KiB to 64 MiB. */
export const QED_MIN_CLUSTER_SIZE = 4 * 1024;
export const QED_MAX_CLUSTER_SIZE = 64 * 1024 * 1024;
export const QED_DEFAULT_CLUSTER_SIZE = 64 * 1024;
/** Table sizes in clusters: a power of two from 1 to 16. */
export const QED_MIN_TABLE_SIZE = 1;
export const QED_MAX_TABLE_SIZE = 16;
export const QED_DEFAULT_TABLE_SIZE = 4;
/** Sizes are in whole sectors. */
export const QED_SECTOR_SIZE = 512;
/** QEMU keeps the backing file name in a 1024-byte buffer with its NUL. */
export const QED_MAX_BACKING_NAME = 1023;
/** Largest table (L1 or L2) Platter loads: the spec allows 64 MiB clusters x 16 = 1 GiB tables,
 *  which would pin a gigabyte of memory per table; no real image uses them. */
export const QED_MAX_TABLE_BYTES = 256 * 1024 * 1024;

/** QEDHeader (qed_spec.txt "Header"). */
export interface QedHeader {
  magic: number;
  /** In bytes. */
  clusterSize: number;
  /** Of L1 and L2 tables, in clusters. */
  tableSize: number;
  /** Of the header, in clusters. */
  headerSize: number;
  features: bigint;
  compatFeatures: bigint;
  autoclearFeatures: bigint;
  l1TableOffset: bigint;
  /** Virtual disk size in bytes. */
  imageSize: bigint;
  /** In bytes from the start of the header. */
  backingFilenameOffset: number;
  backingFilenameSize: number;
}

export function decodeQedHeader(buf: Buffer): QedHeader {
  if (buf.length < QED_HEADER_STRUCT_SIZE) throw invalidImage(`QED header is truncated (${buf.length} of ${QED_HEADER_STRUCT_SIZE} bytes)`);
  return {
    magic: buf.readUInt32LE(0),
    clusterSize: buf.readUInt32LE(4),
    tableSize: buf.readUInt32LE(8),
    headerSize: buf.readUInt32LE(12),
    features: buf.readBigUInt64LE(16),
    compatFeatures: buf.readBigUInt64LE(24),
    autoclearFeatures: buf.readBigUInt64LE(32),
    l1TableOffset: buf.readBigUInt64LE(40),
    imageSize: buf.readBigUInt64LE(48),
    backingFilenameOffset: buf.readUInt32LE(56),
    backingFilenameSize: buf.readUInt32LE(60),
  };
}

export function encodeQedHeader(h: QedHeader): Buffer {
  const buf = Buffer.alloc(QED_HEADER_STRUCT_SIZE);
  buf.writeUInt32LE(h.magic, 0);
  buf.writeUInt32LE(h.clusterSize, 4);
  buf.writeUInt32LE(h.tableSize, 8);
  buf.writeUInt32LE(h.headerSize, 12);
  buf.writeBigUInt64LE(h.features, 16);
  buf.writeBigUInt64LE(h.compatFeatures, 24);
  buf.writeBigUInt64LE(h.autoclearFeatures, 32);
  buf.writeBigUInt64LE(h.l1TableOffset, 40);
  buf.writeBigUInt64LE(h.imageSize, 48);
  buf.writeUInt32LE(h.backingFilenameOffset, 56);
  buf.writeUInt32LE(h.backingFilenameSize, 60);
  return buf;
}

const isPow2 = (v: number) => v > 0 && (v & (v - 1)) === 0;

export function isValidClusterSize(v: number): boolean {
  return isPow2(v) && v >= QED_MIN_CLUSTER_SIZE && v <= QED_MAX_CLUSTER_SIZE;
}

export function isValidTableSize(v: number): boolean {
  return isPow2(v) && v >= QED_MIN_TABLE_SIZE && v <= QED_MAX_TABLE_SIZE;
}

/** The largest virtual size two levels of tables can map (qed_max_image_size). */
export function maxImageSize(clusterSize: number, tableSize: number): bigint {
  const entries = BigInt((clusterSize * tableSize) / 8);
  return BigInt(clusterSize) * entries * entries;
}

export function isValidImageSize(size: bigint, clusterSize: number, tableSize: number): boolean {
  return size % BigInt(QED_SECTOR_SIZE) === 0n && size <= maxImageSize(clusterSize, tableSize) && size <= BigInt(Number.MAX_SAFE_INTEGER);
}

/** The sizes derived from a valid header. */
export interface QedGeometry {
  clusterSize: number;
  tableSize: number;
  /** Bytes of one L1 or L2 table. */
  tableBytes: number;
  /** Entries per table. */
  tableEntries: number;
  /** Bytes of the header area (header_size clusters). */
  headerBytes: number;
  l1TableOffset: number;
  imageSize: number;
  /** The file's usable length: its size rounded down to a cluster (QEMU's s->file_size). */
  fileSize: number;
}

/** Validate a decoded header against the spec/QEMU rules and the file's size. */
export function validateQedHeader(h: QedHeader, fileLength: number, ctx: BlockErrorContext): QedGeometry {
  if (h.magic !== QED_MAGIC) throw invalidImage('Image not in QED format', ctx);
  const unknown = h.features & ~QED_FEATURE_MASK;
  if (unknown !== 0n) throw unsupported(`Unsupported QED features: ${unknown.toString(16)}`, ctx);
  if (!isValidClusterSize(h.clusterSize)) {
    throw invalidImage(`QED cluster size is invalid (${h.clusterSize}; expected a power of 2 within [${QED_MIN_CLUSTER_SIZE}, ${QED_MAX_CLUSTER_SIZE}])`, ctx);
  }
  if (!isValidTableSize(h.tableSize)) {
    throw invalidImage(`QED table size is invalid (${h.tableSize}; expected a power of 2 within [${QED_MIN_TABLE_SIZE}, ${QED_MAX_TABLE_SIZE}] clusters)`, ctx);
  }
  if (!isValidImageSize(h.imageSize, h.clusterSize, h.tableSize)) {
    throw invalidImage(`QED image size is invalid (${h.imageSize}; expected a multiple of ${QED_SECTOR_SIZE} up to ${maxImageSize(h.clusterSize, h.tableSize)})`, ctx);
  }
  // Both factors are bounded (16 x 64 MiB; u32 x 64 MiB), so the products stay exact.
  const tableBytes = h.clusterSize * h.tableSize;
  const headerBytes = h.headerSize * h.clusterSize;
  if (h.headerSize < 1 || headerBytes > 0xffffffff) {
    throw invalidImage(`QED header size of ${h.headerSize} clusters is invalid (expected 1 or more, below 4 GiB in total)`, ctx);
  }
  if (tableBytes > QED_MAX_TABLE_BYTES) {
    throw unsupported(`QED tables of ${tableBytes} bytes are larger than Platter's limit of ${QED_MAX_TABLE_BYTES} bytes`, ctx);
  }
  const fileSize = fileLength - (fileLength % h.clusterSize);
  const l1 = h.l1TableOffset;
  if (l1 % BigInt(h.clusterSize) !== 0n || l1 < BigInt(headerBytes) || l1 + BigInt(tableBytes) > BigInt(fileSize)) {
    throw invalidImage(
      `QED table offset is invalid (L1 table at ${l1}; expected cluster aligned, after the ${headerBytes}-byte header, with the ${tableBytes}-byte table inside the ${fileSize}-byte file)`,
      ctx,
    );
  }
  if (h.features & QED_F_BACKING_FILE) {
    if (h.backingFilenameOffset + h.backingFilenameSize > headerBytes) {
      throw invalidImage(`QED backing file name (${h.backingFilenameSize} bytes at offset ${h.backingFilenameOffset}) is outside the ${headerBytes}-byte header`, ctx);
    }
    if (h.backingFilenameSize > QED_MAX_BACKING_NAME) throw invalidImage(`QED backing file name is too long (${h.backingFilenameSize} bytes, at most ${QED_MAX_BACKING_NAME})`, ctx);
  }
  return {
    clusterSize: h.clusterSize,
    tableSize: h.tableSize,
    tableBytes,
    tableEntries: tableBytes / 8,
    headerBytes,
    l1TableOffset: Number(l1),
    imageSize: Number(h.imageSize),
    fileSize,
  };
}

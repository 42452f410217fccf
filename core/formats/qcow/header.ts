// QCOW version 1 header codec (the big-endian 48-byte QCowHeader of QEMU's block/qcow.c; there is
// no separate spec document for version 1). decode() reads the fields; validateQcowHeader()
// checks them as QEMU's qcow_open does (magic, version, ranges, overflow: the CVE-2014-0222/0223
// class of huge L1 tables and cluster sizes), then the overlaps and bounds QEMU leaves to chance.

import { BlockError, invalidImage, unsupported, type BlockErrorContext } from '../../errors.ts';

/** "QFI\xfb" */
export const QCOW_MAGIC = 0x514649fb;
export const QCOW_VERSION = 1;
/** crypt_method values. */
export const QCOW_CRYPT_NONE = 0;
export const QCOW_CRYPT_AES = 1;
/** Bytes of the on-disk header. */
export const QCOW_HEADER_SIZE = 48;
/** Cluster sizes QEMU accepts: 512 B .. 64 KiB (cluster_bits 9..16). */
export const QCOW_MIN_CLUSTER_BITS = 9;
export const QCOW_MAX_CLUSTER_BITS = 16;
/** L2 tables of 512 B .. 64 KiB, i.e. 2^6 .. 2^13 eight-byte entries. */
export const QCOW_MIN_L2_BITS = QCOW_MIN_CLUSTER_BITS - 3;
export const QCOW_MAX_L2_BITS = QCOW_MAX_CLUSTER_BITS - 3;
/** QEMU limits the L1 table to INT_MAX bytes (l1_size <= INT_MAX / 8). */
export const QCOW_MAX_L1_ENTRIES = Math.floor(0x7fffffff / 8);
/** QEMU's limit on the stored backing file name (bs->backing_file is 1024 bytes with the NUL). */
export const QCOW_MAX_BACKING_NAME = 1023;
/** The layout qemu-img create uses: 4 KiB clusters and 4 KiB L2 tables, or with a backing file
 *  512-byte clusters (no copy of unmodified sectors needed) and 32 KiB L2 tables. */
export const QCOW_CREATE_BITS = { cluster: 12, l2: 9 } as const;
export const QCOW_CREATE_BITS_BACKING = { cluster: 9, l2: 12 } as const;

/** QCowHeader (block/qcow.c), big endian. */
export interface QcowHeader {
  magic: number;
  version: number;
  backingFileOffset: bigint;
  backingFileSize: number;
  mtime: number;
  /** Virtual disk size in bytes. */
  size: bigint;
  clusterBits: number;
  l2Bits: number;
  cryptMethod: number;
  l1TableOffset: bigint;
}

export function decodeQcowHeader(buf: Buffer): QcowHeader {
  if (buf.length < QCOW_HEADER_SIZE) throw invalidImage(`qcow header is truncated (${buf.length} of ${QCOW_HEADER_SIZE} bytes)`);
  return {
    magic: buf.readUInt32BE(0),
    version: buf.readUInt32BE(4),
    backingFileOffset: buf.readBigUInt64BE(8),
    backingFileSize: buf.readUInt32BE(16),
    mtime: buf.readUInt32BE(20),
    size: buf.readBigUInt64BE(24),
    clusterBits: buf.readUInt8(32),
    l2Bits: buf.readUInt8(33),
    // 34..35: padding
    cryptMethod: buf.readUInt32BE(36),
    l1TableOffset: buf.readBigUInt64BE(40),
  };
}

export function encodeQcowHeader(h: QcowHeader): Buffer {
  const buf = Buffer.alloc(QCOW_HEADER_SIZE);
  buf.writeUInt32BE(h.magic, 0);
  buf.writeUInt32BE(h.version, 4);
  buf.writeBigUInt64BE(h.backingFileOffset, 8);
  buf.writeUInt32BE(h.backingFileSize, 16);
  buf.writeUInt32BE(h.mtime, 20);
  buf.writeBigUInt64BE(h.size, 24);
  buf.writeUInt8(h.clusterBits, 32);
  buf.writeUInt8(h.l2Bits, 33);
  buf.writeUInt32BE(h.cryptMethod, 36);
  buf.writeBigUInt64BE(h.l1TableOffset, 40);
  return buf;
}

/** What the rest of the driver needs from a valid header. */
export interface QcowGeometry {
  size: number;
  clusterBits: number;
  clusterSize: number;
  l2Bits: number;
  /** Entries per L2 table. */
  l2Size: number;
  l1Size: number;
  l1TableOffset: number;
  backing?: { offset: number; size: number };
}

/** Validate a header against QEMU's qcow_open rules and the file's size. */
export function validateQcowHeader(h: QcowHeader, fileSize: number, ctx: BlockErrorContext): QcowGeometry {
  if (h.magic !== QCOW_MAGIC) throw invalidImage('Image not in qcow format', ctx);
  if (h.version !== QCOW_VERSION) {
    throw new BlockError('Unsupported', `qcow (v${QCOW_VERSION}) does not support qcow version ${h.version}`, ctx, { hint: "Try the 'qcow2' driver instead.\n" });
  }
  if (h.size <= 1n) throw invalidImage('Image size is too small (must be at least 2 bytes)', ctx);
  if (h.clusterBits < QCOW_MIN_CLUSTER_BITS || h.clusterBits > QCOW_MAX_CLUSTER_BITS) {
    throw invalidImage(`Cluster size must be between 512 and 64k (cluster_bits is ${h.clusterBits}, expected ${QCOW_MIN_CLUSTER_BITS}..${QCOW_MAX_CLUSTER_BITS})`, ctx);
  }
  if (h.l2Bits < QCOW_MIN_L2_BITS || h.l2Bits > QCOW_MAX_L2_BITS) {
    throw invalidImage(`L2 table size must be between 512 and 64k (l2_bits is ${h.l2Bits}, expected ${QCOW_MIN_L2_BITS}..${QCOW_MAX_L2_BITS})`, ctx);
  }
  if (h.cryptMethod > QCOW_CRYPT_AES) throw invalidImage(`invalid encryption method in qcow header (${h.cryptMethod})`, ctx);
  // crypt_method 1 (AES-CBC) is decrypted by the node (qcow2/encryption.ts openQcowV1Crypto).
  // L1 size: the virtual size in units of (cluster * L2 entries), with QEMU's overflow guards.
  const shift = BigInt(h.clusterBits + h.l2Bits);
  if (h.size > 2n ** 64n - 1n - (1n << shift)) throw invalidImage('Image too large', ctx);
  const l1Size = (h.size + (1n << shift) - 1n) >> shift;
  if (l1Size > BigInt(QCOW_MAX_L1_ENTRIES)) throw invalidImage(`Image too large (L1 table of ${l1Size} entries, at most ${QCOW_MAX_L1_ENTRIES})`, ctx);
  if (h.size > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidImage(`Image too large (${h.size} bytes)`, ctx);
  // Bounds and overlap: the L1 table must lie in the file, after the header.
  const l1Bytes = Number(l1Size) * 8;
  if (h.l1TableOffset < BigInt(QCOW_HEADER_SIZE)) throw invalidImage(`L1 table offset ${h.l1TableOffset} overlaps the header`, ctx);
  if (h.l1TableOffset + BigInt(l1Bytes) > BigInt(fileSize)) {
    throw invalidImage(`L1 table (${l1Size} entries at offset ${h.l1TableOffset}) extends beyond the end of the file (${fileSize} bytes)`, ctx);
  }
  const geo: QcowGeometry = {
    // QEMU counts whole sectors (total_sectors = size / 512).
    size: Number(h.size) - (Number(h.size) % 512),
    clusterBits: h.clusterBits,
    clusterSize: 1 << h.clusterBits,
    l2Bits: h.l2Bits,
    l2Size: 1 << h.l2Bits,
    l1Size: Number(l1Size),
    l1TableOffset: Number(h.l1TableOffset),
  };
  if (h.backingFileOffset !== 0n) {
    if (h.backingFileSize > QCOW_MAX_BACKING_NAME) throw invalidImage(`Backing file name too long (${h.backingFileSize} bytes, at most ${QCOW_MAX_BACKING_NAME})`, ctx);
    if (h.backingFileOffset + BigInt(h.backingFileSize) > BigInt(fileSize)) {
      throw invalidImage(`Backing file name (${h.backingFileSize} bytes at offset ${h.backingFileOffset}) extends beyond the end of the file`, ctx);
    }
    geo.backing = { offset: Number(h.backingFileOffset), size: h.backingFileSize };
  }
  return geo;
}

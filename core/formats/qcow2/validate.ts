// Validation of a decoded qcow2 header against the file it came from (docs/interop/qcow2.txt
// "Header"; the checks QEMU's qcow2_do_open makes, with its wording): magic and version first,
// then field ranges, overflow, and overlap with the header cluster, then feature bits.

import { BlockError, invalidImage, unsupported, type BlockErrorContext } from '../../errors.ts';
import {
  AUTOCLEAR_DATA_FILE_RAW,
  COMPRESSION_ZLIB,
  COMPRESSION_ZSTD,
  CRYPT_LUKS,
  HEADER_V3_MIN_LENGTH,
  INCOMPAT_COMPRESSION,
  INCOMPAT_CORRUPT,
  INCOMPAT_DATA_FILE,
  INCOMPAT_EXTL2,
  INCOMPAT_KNOWN,
  MAX_BACKING_NAME,
  unsupportedFeatureText,
  type Qcow2Header,
} from './header.ts';
import { L1E_SIZE } from './entries.ts';
import { MAX_REFTABLE_BYTES } from './refcount.ts';

/** Cluster sizes qcow2 allows: 512 B .. 2 MiB (MIN_CLUSTER_BITS, MAX_CLUSTER_BITS). */
export const MIN_CLUSTER_BITS = 9;
export const MAX_CLUSTER_BITS = 21;
/** Extended L2 entries need clusters of at least 16 KiB (subclusters of >= 512 bytes). */
export const MIN_EXTL2_CLUSTER_BITS = 14;
/** QEMU's cap on the active L1 table (QCOW_MAX_L1_SIZE = 32 MiB). */
export const MAX_L1_BYTES = 32 << 20;
/** QEMU's cap on internal snapshots (QCOW_MAX_SNAPSHOTS). */
export const MAX_SNAPSHOTS = 65536;
/** Largest refcount_order (64-bit refcounts). */
export const MAX_REFCOUNT_ORDER = 6;
/** refcount_order of version 2 images (16-bit refcounts, fixed). */
export const V2_REFCOUNT_ORDER = 4;

/** The most L1 entries a virtual size may need (QEMU keeps that index in an int). */
const INT_MAX = 2 ** 31 - 1;

/** L2 entries per table and L1 entries needed for a virtual size. */
export function l1EntriesFor(size: number, clusterBits: number, extendedL2: boolean): number {
  const l2Bits = clusterBits - (extendedL2 ? 4 : 3);
  const perL1 = 2 ** (clusterBits + l2Bits);
  return Math.ceil(size / perL1);
}

/**
 * Check every header field that later code relies on. `fileSize` is the image file's size;
 * tables must lie inside it and must not overlap the header cluster.
 */
export function validateHeader(h: Qcow2Header, fileSize: number, readOnly: boolean, ctx: BlockErrorContext, forCheck = false): void {
  if (h.version !== 2 && h.version !== 3) throw unsupported(`Unsupported qcow2 version ${h.version}`, ctx);
  if (h.clusterBits < MIN_CLUSTER_BITS || h.clusterBits > MAX_CLUSTER_BITS) {
    throw invalidImage(`Unsupported cluster size: 2^${h.clusterBits} (expected 2^${MIN_CLUSTER_BITS}..2^${MAX_CLUSTER_BITS})`, ctx);
  }
  const cs = 2 ** h.clusterBits;
  if (h.version >= 3) {
    if (h.headerLength < HEADER_V3_MIN_LENGTH) throw invalidImage(`qcow2 header too short (header_length ${h.headerLength}, expected at least ${HEADER_V3_MIN_LENGTH})`, ctx);
    if (h.headerLength > cs) throw invalidImage(`qcow2 header exceeds cluster size (header_length ${h.headerLength}, cluster size ${cs})`, ctx);
  }
  if (h.backingFileOffset > cs) throw invalidImage(`Invalid backing file offset (${h.backingFileOffset}, must lie in the first cluster of ${cs} bytes)`, ctx);
  if (h.backingFileOffset > 0 && h.backingFileSize > MAX_BACKING_NAME) {
    throw invalidImage(`Backing file name too long (${h.backingFileSize} bytes, at most ${MAX_BACKING_NAME})`, ctx);
  }
  if (h.backingFileOffset > 0 && h.backingFileOffset + h.backingFileSize > cs) {
    throw invalidImage(`Backing file name at offset ${h.backingFileOffset} (${h.backingFileSize} bytes) runs past the header cluster`, ctx);
  }
  if (h.refcountOrder > MAX_REFCOUNT_ORDER) throw invalidImage(`Reference count entry width too large; may not exceed 64 bits (refcount_order ${h.refcountOrder})`, ctx);
  if (h.version === 2 && h.refcountOrder !== V2_REFCOUNT_ORDER) throw invalidImage('Version 2 images must have 16-bit refcounts', ctx);

  // Feature bits.
  const unknown = h.incompatible & ~INCOMPAT_KNOWN;
  if (unknown) {
    throw unsupported(`Unsupported qcow2 feature(s): ${unsupportedFeatureText(h, unknown)}`, ctx);
  }
  if (h.incompatible & INCOMPAT_CORRUPT && !readOnly && !forCheck) {
    throw new BlockError('Permission', 'qcow2: Image is corrupt; cannot be opened read/write (run qemu-img check -r all, or open it read-only)', ctx);
  }
  if (h.incompatible & INCOMPAT_COMPRESSION) {
    if (h.compressionType === COMPRESSION_ZLIB) throw invalidImage('Compression type incompatible feature bit must not be set if compression type is zlib', ctx);
    if (h.compressionType !== COMPRESSION_ZSTD) throw unsupported(`Unknown compression type ${h.compressionType} (expected 0 zlib or 1 zstd)`, ctx);
  } else if (h.compressionType !== COMPRESSION_ZLIB) {
    throw invalidImage(`Compression type is ${h.compressionType}, but the compression type incompatible feature bit is not set`, ctx);
  }
  if (h.incompatible & INCOMPAT_EXTL2 && h.clusterBits < MIN_EXTL2_CLUSTER_BITS) {
    throw invalidImage(`Extended L2 entries are only supported with cluster sizes of at least ${2 ** MIN_EXTL2_CLUSTER_BITS} bytes`, ctx);
  }
  if (h.autoclear & AUTOCLEAR_DATA_FILE_RAW && !(h.incompatible & INCOMPAT_DATA_FILE)) {
    throw invalidImage('data-file-raw requires a data file', ctx);
  }
  if (h.cryptMethod > CRYPT_LUKS) throw unsupported(`Unsupported encryption method: ${h.cryptMethod}`, ctx);

  // Refcount table.
  const reftableBytes = h.refcountTableClusters * cs;
  if (reftableBytes > MAX_REFTABLE_BYTES) throw invalidImage(`Reference count table too large (${h.refcountTableClusters} clusters, at most ${MAX_REFTABLE_BYTES} bytes)`, ctx);
  if (h.refcountTableClusters === 0 || h.refcountTableOffset % cs !== 0 || h.refcountTableOffset < cs) {
    throw invalidImage(`Invalid reference count table offset 0x${h.refcountTableOffset.toString(16)} (${h.refcountTableClusters} clusters): it must be cluster aligned, after the header`, ctx);
  }
  if (h.refcountTableOffset + reftableBytes > fileSize) {
    throw invalidImage(`Reference count table at 0x${h.refcountTableOffset.toString(16)} (${reftableBytes} bytes) is beyond the end of the file (${fileSize} bytes)`, ctx);
  }

  // Snapshot table (not when opened for a check, which validates and reads it itself).
  if (!forCheck) {
    if (h.nbSnapshots > MAX_SNAPSHOTS) throw new BlockError('InvalidImage', 'Snapshot table too large', ctx, { errno: 'EFBIG' });
    // A table past the end of the file reads as zeros (snapshots-table.ts), as in QEMU.
    if (h.nbSnapshots > 0 && (h.snapshotsOffset % cs !== 0 || h.snapshotsOffset < cs)) {
      throw invalidImage(`Invalid snapshot table offset 0x${h.snapshotsOffset.toString(16)} (file size ${fileSize})`, ctx);
    }
  }

  // Active L1 table.
  const extendedL2 = (h.incompatible & INCOMPAT_EXTL2) !== 0n;
  if (h.l1Size * L1E_SIZE > MAX_L1_BYTES) throw invalidImage(`Active L1 table too large (${h.l1Size} entries)`, ctx);
  const needed = l1EntriesFor(h.size, h.clusterBits, extendedL2);
  if (needed > INT_MAX) throw new BlockError('InvalidImage', 'Image is too big', ctx, { errno: 'EFBIG' });
  if (h.l1Size < needed) throw invalidImage('L1 table is too small', ctx);
  if (h.l1Size > 0) {
    if (h.l1TableOffset % cs !== 0 || h.l1TableOffset < cs) {
      throw invalidImage(`Invalid L1 table offset 0x${h.l1TableOffset.toString(16)}: it must be cluster aligned and may not overlap the header`, ctx);
    }
    if (h.l1TableOffset + h.l1Size * L1E_SIZE > fileSize) {
      throw invalidImage(`L1 table at 0x${h.l1TableOffset.toString(16)} (${h.l1Size} entries) is beyond the end of the file (${fileSize} bytes)`, ctx);
    }
  }
  if (!Number.isFinite(Math.ceil(h.size / cs) * cs)) throw invalidImage(`Image size ${h.size} overflows when rounded up to whole clusters`, ctx);
}

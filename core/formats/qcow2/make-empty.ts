// Emptying a whole image in one go (QEMU block/qcow2.c make_completely_empty, used by
// bdrv_make_empty after qemu-img commit): instead of discarding every cluster, reset the file to
// a header, an empty refcount table, one refcount block and a zeroed L1 table, and truncate it.
// Only for images where that loses nothing but guest data: version 3 (the dirty bit covers the
// moments when refcounts are wrong), no snapshots, bitmaps, LUKS header or external data file,
// and an L1 table small enough for one refcount block to cover. The steps, their writes and the
// debug events between them are QEMU's, so an error injected at any event leaves the file as
// QEMU leaves it (iotest 098): the dirty bit set, and whatever was written before the failure.

import { corrupt } from '../../errors.ts';
import { CRYPT_LUKS, INCOMPAT_DIRTY } from './header.ts';
import { L1E_SIZE } from './entries.ts';
import type { Qcow2Image } from './image.ts';

/** Byte offsets of header fields QEMU rewrites on their own (QCowHeader, qcow2.txt "Header"). */
const L1_TABLE_OFFSET_FIELD = 40;
const INCOMPATIBLE_FEATURES_FIELD = 72;
/** l1_table_offset (u64), refcount_table_offset (u64), refcount_table_clusters (u32). */
const TABLE_FIELDS_BYTES = 20;
/** Clusters before the L1 table of an emptied image: header, refcount table, refcount block. */
const FIXED_CLUSTERS = 3;

function l1Clusters(img: Qcow2Image): number {
  return Math.ceil((img.l1Size * L1E_SIZE) / img.clusterSize);
}

/** Can this image be emptied by make_completely_empty (QEMU qcow2_make_empty's test)? */
export function canEmptyCompletely(img: Qcow2Image): boolean {
  const h = img.header;
  return h.version >= 3 && img.snapshots.length === 0 && h.bitmapsExt === undefined && FIXED_CLUSTERS + l1Clusters(img) <= img.refcounts.perBlock && h.cryptMethod !== CRYPT_LUKS && !img.externalData;
}

/** Set the dirty bit on disk (QEMU's qcow2_mark_dirty: that one header field, then a flush). */
async function markDirty(img: Qcow2Image): Promise<void> {
  if (img.header.incompatible & INCOMPAT_DIRTY) return;
  const field = Buffer.alloc(8);
  field.writeBigUInt64BE(img.header.incompatible | INCOMPAT_DIRTY);
  await img.writeMeta(INCOMPATIBLE_FEATURES_FIELD, field);
  await img.file.flush();
  img.header.incompatible |= INCOMPAT_DIRTY;
}

/**
 * Empty the image. `eject` is called when a step fails after refcounts on disk stopped matching
 * the image (QEMU then ejects the node: nothing more may be written through it, not even at
 * close, and the dirty bit makes the next open repair it). Caller holds `meta`.
 */
export async function makeCompletelyEmpty(img: Qcow2Image, eject: () => void): Promise<void> {
  const file = img.file;
  const cs = img.clusterSize;
  const l1c = l1Clusters(img);
  // Both caches written back and forgotten (qcow2_cache_empty).
  await img.writeBack();
  img.l2Cache.clear();
  img.refcounts.invalidate();
  await markDirty(img);
  try {
    file.debugEvent('l1_update');
    await file.writeZeroes(img.header.l1TableOffset, l1c * cs);
    img.l1.fill(0);
    file.debugEvent('empty_image_prepare');
    // Room for the new refcount table, refcount block and L1 table right after the header; this
    // may overwrite the old tables, which the dirty bit allows.
    await file.writeZeroes(cs, (FIXED_CLUSTERS - 1 + l1c) * cs);
    file.debugEvent('l1_update');
    file.debugEvent('reftable_update');
    const fields = Buffer.alloc(TABLE_FIELDS_BYTES);
    fields.writeBigUInt64BE(BigInt(FIXED_CLUSTERS * cs), 0);
    fields.writeBigUInt64BE(BigInt(cs), 8);
    fields.writeUInt32BE(1, 16);
    await img.writeMeta(L1_TABLE_OFFSET_FIELD, fields);
    await file.flush();
    img.header.l1TableOffset = FIXED_CLUSTERS * cs;
    img.header.refcountTableOffset = cs;
    img.header.refcountTableClusters = 1;
    file.debugEvent('refblock_alloc');
    const reftable = Buffer.alloc(cs);
    reftable.writeBigUInt64BE(BigInt(2 * cs), 0);
    await img.writeMeta(cs, reftable.subarray(0, 8));
    await file.flush();
    // The header, the two refcount clusters and the L1 table are now the image's only clusters.
    img.refcounts = img.makeRefcounts(img.header.refcountOrder, cs, 1, reftable);
    const at = await img.refcounts.allocate(FIXED_CLUSTERS + l1c);
    if (at !== 0) throw corrupt('First cluster in emptied image is in use', img.ctx);
  } catch (e) {
    eject();
    throw e;
  }
  // qcow2_mark_clean: everything written back, then the header as a whole.
  img.header.incompatible &= ~INCOMPAT_DIRTY;
  await img.writeBack();
  await img.writeHeader();
  await file.truncate((FIXED_CLUSTERS + l1c) * cs, { shrink: true });
}

// Guest-to-host cluster mapping (docs/interop/qcow2.txt "Cluster mapping"; QEMU
// block/qcow2-cluster.c as inspiration): two-level L1/L2 lookup, L2 table allocation and
// copy-on-write of L2 tables shared with snapshots, batched L2 entry updates, L1 growth.
// Every function that changes metadata expects the caller to hold img.meta. Write order:
// refcounts (committed inside allocate) -> barrier -> L2 table -> barrier -> L1 entry. In the
// image's write-back mode, L2 entry changes stay in the cache and barriers write them back.

import { corrupt, invalidImage } from '../../errors.ts';
import { decodeL1, decodeL2, encodeL1, l2EntryBytes, L1E_SIZE, type L2Entry } from './entries.ts';
import type { Qcow2Image } from './image.ts';
import { MAX_L1_BYTES } from './validate.ts';

export const UNALLOCATED: L2Entry = Object.freeze({ type: 'unallocated', offset: 0, copied: false, compressedOffset: 0, compressedSize: 0, allocMask: 0, zeroMask: 0, reservedBits: false });

/** Cluster index of a guest offset, and its position in the L1/L2 tables. */
export function position(img: Qcow2Image, guestOffset: number): { cluster: number; l1Index: number; l2Index: number } {
  const cluster = Math.floor(guestOffset / img.clusterSize);
  return { cluster, l1Index: Math.floor(cluster / img.l2Entries), l2Index: cluster % img.l2Entries };
}

/** The L2 entry that maps the guest cluster containing `guestOffset`. */
export async function lookup(img: Qcow2Image, guestOffset: number): Promise<L2Entry> {
  const { l1Index, l2Index } = position(img, guestOffset);
  if (l1Index >= img.l1Size) return UNALLOCATED;
  const l1e = decodeL1(img.l1, l1Index);
  if (!l1e.offset) return UNALLOCATED;
  const table = await img.l2Table(l1e.offset);
  return decodeL2(table, l2Index, img.geo);
}

/** The L2 entries of guest clusters [cluster, cluster+count), which lie in one L2 table: one
 *  table fetch for the run (the copy and allocation paths look at whole requests). */
export async function lookupRun(img: Qcow2Image, cluster: number, count: number): Promise<L2Entry[]> {
  const l1Index = Math.floor(cluster / img.l2Entries);
  const first = cluster - l1Index * img.l2Entries;
  if (first + count > img.l2Entries) throw corrupt('internal: L2 lookup run crosses a table boundary', img.ctx);
  const out = new Array<L2Entry>(count);
  if (l1Index >= img.l1Size) return out.fill(UNALLOCATED);
  const l1e = decodeL1(img.l1, l1Index);
  if (!l1e.offset) return out.fill(UNALLOCATED);
  const table = await img.l2Table(l1e.offset);
  for (let i = 0; i < count; i++) out[i] = decodeL2(table, first + i, img.geo);
  return out;
}

/** The L2 entries of guest clusters from `cluster` to the end of its table, decoded on demand:
 *  block status merges runs of unknown length, so it must not decode a whole table per call. */
export async function lazyRun(img: Qcow2Image, cluster: number): Promise<{ count: number; entry(i: number): L2Entry }> {
  const l1Index = Math.floor(cluster / img.l2Entries);
  const first = cluster - l1Index * img.l2Entries;
  const count = img.l2Entries - first;
  const l1e = l1Index < img.l1Size ? decodeL1(img.l1, l1Index) : undefined;
  if (!l1e?.offset) return { count, entry: () => UNALLOCATED };
  const table = await img.l2Table(l1e.offset);
  const geo = img.geo;
  return { count, entry: (i) => decodeL2(table, first + i, geo) };
}

/** Clusters from `cluster` to the end of its L2 table. */
export function clustersLeftInTable(img: Qcow2Image, cluster: number): number {
  return img.l2Entries - (cluster % img.l2Entries);
}

/** Does an L2 entry hold host clusters of the image file (compressed bytes or a data cluster)? */
function holdsClusters(img: Qcow2Image, e: L2Entry): boolean {
  return e.type === 'compressed' || ((e.type === 'normal' || e.type === 'zero-alloc') && !img.externalData);
}

/** Free what an L2 entry held (compressed bytes or a data cluster); commit() is the caller's. */
export async function releaseEntry(img: Qcow2Image, e: L2Entry): Promise<void> {
  if (!holdsClusters(img, e)) return;
  img.file.debugEvent('cluster_free'); // QEMU's qcow2_free_any_cluster
  if (e.type === 'compressed') await img.refcounts.update(e.compressedOffset, e.compressedSize, -1);
  else await img.refcounts.update(e.offset, img.clusterSize, -1);
}

/**
 * The L2 table for `l1Index`, ready to be modified in place: allocated when missing, copied
 * when shared with a snapshot (no COPIED flag on its L1 entry).
 */
export async function l2ForWrite(img: Qcow2Image, l1Index: number): Promise<{ table: Buffer; offset: number }> {
  if (l1Index >= img.l1Size) throw corrupt(`L1 index ${l1Index} is past the L1 table (${img.l1Size} entries)`, img.ctx);
  const l1e = decodeL1(img.l1, l1Index);
  if (l1e.offset && l1e.copied) return { table: await img.l2Table(l1e.offset), offset: l1e.offset };
  const table = l1e.offset ? Buffer.from(await img.l2Table(l1e.offset)) : Buffer.alloc(img.clusterSize);
  const offset = await img.refcounts.allocate(1);
  await img.barrier();
  await img.writeMeta(offset, table);
  await img.barrier();
  // Cached before the L1 entry names it: a reader that finds the entry (while the L1 write is
  // under way) must get this very buffer, not load a second copy whose changes would be lost.
  img.l2Cache.put(offset, table);
  encodeL1(img.l1, l1Index, offset, true);
  await img.writeL1Entries(l1Index, 1);
  if (l1e.offset) {
    // The old table stays with the snapshots that still use it.
    await img.freeClusters(l1e.offset, img.clusterSize);
    await img.refcounts.commit();
  }
  return { table, offset };
}

/** Write entries [first, first+count) of an L2 table to disk. */
export async function writeL2Span(img: Qcow2Image, l2: { table: Buffer; offset: number }, first: number, count: number): Promise<void> {
  const eb = l2EntryBytes(img.geo);
  await img.writeMeta(l2.offset + first * eb, l2.table.subarray(first * eb, (first + count) * eb));
}

/**
 * Change the entries of guest clusters [cluster, cluster+count) (within one L2 table) with
 * `apply(table, l2Index, i)`, which returns the old entry to release (or undefined). The new
 * entries are written before anything is freed.
 */
export async function updateEntries(img: Qcow2Image, cluster: number, count: number, apply: (table: Buffer, l2Index: number, i: number, old: L2Entry) => boolean, synced = false): Promise<void> {
  const l1Index = Math.floor(cluster / img.l2Entries);
  const first = cluster % img.l2Entries;
  if (first + count > img.l2Entries) throw corrupt('internal: L2 update crosses a table boundary', img.ctx);
  // Refcounts of the new clusters are on disk before entries use them (unless the caller
  // already made sure, outside the metadata lock).
  const deferring = img.deferring;
  if (!synced && !deferring) await img.barrier();
  const l2 = await l2ForWrite(img, l1Index);
  const release: L2Entry[] = [];
  for (let i = 0; i < count; i++) {
    const old = decodeL2(l2.table, first + i, img.geo);
    if (apply(l2.table, first + i, i, old) && holdsClusters(img, old)) release.push(old);
  }
  if (deferring) {
    const eb = l2EntryBytes(img.geo);
    img.l2Cache.markDirty(l2.offset, l2.table, first * eb, (first + count) * eb);
  } else await writeL2Span(img, l2, first, count);
  if (release.length > 0) {
    // The entries that dropped their references reach the file before the lowered refcounts.
    await img.barrier();
    for (const e of release) await releaseEntry(img, e);
    await img.refcounts.commit();
  }
  if (deferring) await img.writeBackIfFull();
}

/** Make the active L1 table hold at least `entries` entries (moves it to new clusters). */
export async function growL1(img: Qcow2Image, entries: number): Promise<void> {
  if (entries <= img.l1Size) return;
  if (entries * L1E_SIZE > MAX_L1_BYTES) throw invalidImage(`Active L1 table too large (${entries} entries, at most ${MAX_L1_BYTES / L1E_SIZE})`, img.ctx);
  const cs = img.clusterSize;
  const clusters = Math.ceil((entries * L1E_SIZE) / cs);
  const table = Buffer.alloc(clusters * cs);
  img.l1.copy(table, 0, 0, img.l1Size * L1E_SIZE);
  const offset = await img.refcounts.allocate(clusters);
  await img.barrier();
  // Only the entries are written (as QEMU does): a new image's file ends right after them.
  await img.writeMeta(offset, table.subarray(0, entries * L1E_SIZE));
  await img.barrier();
  const oldOffset = img.header.l1TableOffset;
  const oldBytes = img.l1Size * L1E_SIZE;
  img.header.l1TableOffset = offset;
  img.header.l1Size = entries;
  img.l1 = table.subarray(0, entries * L1E_SIZE);
  await img.writeHeader();
  if (oldBytes > 0) {
    await img.freeClusters(oldOffset, Math.ceil(oldBytes / cs) * cs);
    await img.refcounts.commit();
  }
}

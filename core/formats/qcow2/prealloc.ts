// Preallocation of guest clusters (qemu-img create/resize -o preallocation=metadata|falloc|full;
// QEMU's qcow2 preallocate_co as inspiration): every unallocated guest cluster in a range gets an
// L2 entry pointing at a host cluster (reading as zeros), then the file is grown to cover them,
// with space reserved (falloc) or written (full). Caller holds img.meta and the write lock.

import type { Preallocation } from '../../block/types.ts';
import { encodeL2, ALL_SUBCLUSTERS } from './entries.ts';
import type { Qcow2Image } from './image.ts';
import { clustersLeftInTable, l2ForWrite, lookupRun, position, updateEntries } from './cluster-map.ts';

/** Zero-fill chunk for host clusters reused inside the file. */
const ZERO_CHUNK = 1 << 20;

/** How a resize preallocates (qcow2_co_truncate). */
export interface PreallocateOptions {
  /** A backing file would show through the new area: make it read zeros (BDRV_REQ_ZERO_WRITE). */
  zeroWrite?: boolean;
  /** Copy the head of the cluster the old end cuts through into its new host cluster. */
  cowHead?: (host: number) => Promise<void>;
}

/**
 * Preallocate guest [from, to) (the cluster holding `from` included). metadata: map every
 * unallocated cluster (QEMU's preallocate_co). falloc/full: as QEMU's qcow2_co_truncate, one
 * contiguous run of new host clusters for the whole range, reserved (falloc) or written (full) in
 * the file, then the L2 entries (old clusters there freed). Returns true when the new area now
 * reads as zeros from the file (falloc/full): no zero clusters needed on top.
 */
export async function preallocate(img: Qcow2Image, from: number, to: number, mode: Preallocation, o: PreallocateOptions = {}): Promise<boolean> {
  if (mode === 'off' || to <= from) return false;
  const cs = img.clusterSize;
  const start = Math.floor(from / cs) * cs;
  if (mode === 'metadata' || img.externalData) {
    // With a backing file (extended L2 only), preallocated subclusters stay unallocated so the
    // backing still shows through; otherwise they are allocated and read as the (zero) host data.
    const first = await lookupRun(img, start / cs, 1);
    const hostEnd = await mapUnallocated(img, start, to, img.header.backingFile ? 0 : ALL_SUBCLUSTERS);
    if (o.cowHead && first[0]!.type === 'unallocated' && img.header.backingFile) {
      const now = await lookupRun(img, start / cs, 1);
      if (now[0]!.type === 'normal') await o.cowHead(now[0]!.offset);
    }
    const target = img.externalData ? Math.max(to, hostEnd) : hostEnd;
    if (target > img.dataFile.size) {
      await img.dataFile.truncate(target, { preallocation: mode === 'metadata' ? 'off' : mode, shrink: false });
    }
    return false;
  }
  const count = Math.ceil(to / cs) - start / cs;
  // As qcow2_co_truncate: refcount structures for the run and the L2 tables it may need (one more
  // for an unaligned head) right after the used part of the file, the run right after them.
  const fileClusters = Math.ceil(img.file.size / cs);
  const last = await img.refcounts.lastInUse(fileClusters);
  const areaStart = last >= 0 ? last + 1 : fileClusters;
  const dataAt = await img.refcounts.refcountArea(areaStart, count + Math.ceil(count / img.l2Entries) + 1);
  await img.refcounts.allocateAt(dataAt, count);
  const host = dataAt * cs;
  const end = host + count * cs;
  if (end > img.dataFile.size) await img.dataFile.truncate(end, { preallocation: mode, shrink: false });
  await o.cowHead?.(host);
  // Subclusters of the new clusters are allocated (they read the file's zeros) unless a backing
  // file should still show through them (QEMU's meta->prealloc).
  const allocMask = o.zeroWrite || !img.header.backingFile ? ALL_SUBCLUSTERS : 0;
  for (let k = 0; k < count; ) {
    const cluster = start / cs + k;
    const n = Math.min(clustersLeftInTable(img, cluster), count - k);
    const base = host + k * cs;
    await updateEntries(img, cluster, n, (t, idx, i) => {
      encodeL2(t, idx, img.geo, { offset: base + i * cs, copied: true, allocMask, zeroMask: 0 });
      return true;
    });
    k += n;
  }
  return true;
}

/**
 * Give every unallocated guest cluster of [from, to) an L2 entry pointing at a new host cluster
 * (runs allocated contiguously, in guest order); host clusters reused from inside the file are
 * zeroed first. Returns the end of the highest host cluster mapped (0 if none). The file is not
 * grown: the caller does that (preallocate) or covers the gap until data lands (reserve).
 */
export async function mapUnallocated(img: Qcow2Image, from: number, to: number, allocMask: number): Promise<number> {
  const cs = img.clusterSize;
  const fileEndBefore = img.dataFile.size;
  let hostEnd = 0;
  let pos = Math.floor(from / cs) * cs;
  while (pos < to) {
    const { cluster, l2Index } = position(img, pos);
    const n = Math.min(img.l2Entries - l2Index, Math.ceil((to - pos) / cs));
    // Runs of unallocated clusters within this table.
    const entries = await lookupRun(img, cluster, n);
    const free = (k: number) => entries[k]!.type === 'unallocated' || entries[k]!.type === 'zero-plain';
    let i = 0;
    let tableReady = false;
    while (i < n) {
      if (!free(i)) {
        i++;
        continue;
      }
      // The L2 table first, then the data clusters it maps (QEMU's handle_alloc gets the table,
      // allocating it, before it allocates the clusters): the same layout as qemu-img's, the data
      // ending the file, where preallocation reserves or writes it.
      if (!tableReady) {
        await l2ForWrite(img, Math.floor(cluster / img.l2Entries));
        tableReady = true;
      }
      let j = i + 1;
      while (j < n && free(j)) j++;
      const count = j - i;
      const host = img.externalData ? (cluster + i) * cs : await img.refcounts.allocate(count);
      // Clusters reused from inside the file may hold old bytes: zero them.
      for (let p = host; p < Math.min(host + count * cs, fileEndBefore); p += ZERO_CHUNK) {
        await img.dataFile.write(p, Buffer.alloc(Math.min(ZERO_CHUNK, Math.min(host + count * cs, fileEndBefore) - p)));
      }
      hostEnd = Math.max(hostEnd, host + count * cs);
      await updateEntries(img, cluster + i, count, (t, idx, k) => {
        encodeL2(t, idx, img.geo, { offset: host + k * cs, copied: true, allocMask, zeroMask: 0 });
        return false;
      });
      i = j;
    }
    pos += n * cs;
  }
  return hostEnd;
}

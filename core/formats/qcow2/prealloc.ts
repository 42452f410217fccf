// Preallocation of guest clusters (qemu-img create/resize -o preallocation=metadata|falloc|full;
// QEMU's qcow2 preallocate_co as inspiration): every unallocated guest cluster in a range gets an
// L2 entry pointing at a host cluster (reading as zeros), then the file is grown to cover them,
// with space reserved (falloc) or written (full). Caller holds img.meta and the write lock.

import type { Preallocation } from '../../block/types.ts';
import { encodeL2, ALL_SUBCLUSTERS } from './entries.ts';
import type { Qcow2Image } from './image.ts';
import { l2ForWrite, lookupRun, position, updateEntries } from './cluster-map.ts';

/** Zero-fill chunk for host clusters reused inside the file. */
const ZERO_CHUNK = 1 << 20;

export async function preallocate(img: Qcow2Image, from: number, to: number, mode: Preallocation): Promise<void> {
  if (mode === 'off' || to <= from) return;
  // With a backing file (extended L2 only), preallocated subclusters stay unallocated so the
  // backing still shows through; otherwise they are allocated and read as the (zero) host data.
  const hostEnd = await mapUnallocated(img, from, to, img.header.backingFile ? 0 : ALL_SUBCLUSTERS);
  const target = img.externalData ? Math.max(to, hostEnd) : hostEnd;
  if (target > img.dataFile.size) {
    await img.dataFile.truncate(target, { preallocation: mode === 'metadata' ? 'off' : mode, shrink: false });
  }
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
    while (i < n) {
      if (!free(i)) {
        i++;
        continue;
      }
      let j = i + 1;
      while (j < n && free(j)) j++;
      const count = j - i;
      // The L2 table first, then the data clusters after it (QEMU's order): the data then ends
      // the file, where preallocation reserves or writes it.
      await l2ForWrite(img, Math.floor(cluster / img.l2Entries));
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

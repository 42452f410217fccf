// qemu-img measure -O qcow2 (QEMU qcow2_measure / qcow2_calc_prealloc_size /
// qcow2_refcount_metadata_size, same arithmetic, own code): the size of a fully allocated image
// (header, L2 and L1 tables, refcount structures, data) and the size actually required for a
// given source (only the clusters holding data).

import { invalidArgument } from '../../errors.ts';
import { l1EntriesFor, MAX_L1_BYTES } from './validate.ts';
import type { BlockNode } from '../../block/node.ts';
import { blockStatusAbove } from '../../block/node.ts';
import type { MeasureResult } from '../../block/types.ts';
import type { OptionValues } from '../../block/options-schema.ts';
import { createParams } from './create.ts';
import { cryptoHeaderBytes } from './encryption.ts';
import { L1E_SIZE } from './entries.ts';
import type { Qcow2Node } from './node.ts';
import { readBitmapDirectory } from './bitmaps.ts';

/** Bytes of refcount table + blocks needed to count `clusters` clusters (their own included). */
export function refcountMetadataSize(clusters: number, clusterSize: number, refcountBits: number): number {
  const tableEntriesPerCluster = clusterSize / L1E_SIZE;
  const perBlock = (clusterSize * 8) / refcountBits;
  let table = 0;
  let blocks = 0;
  let n = 0;
  let last: number;
  do {
    last = n;
    blocks = Math.ceil((clusters + table + blocks) / perBlock);
    table = Math.ceil(blocks / tableEntriesPerCluster);
    n = clusters + blocks + table;
  } while (n !== last);
  return (blocks + table) * clusterSize;
}

/** Size of an image with every cluster of `size` allocated (QEMU's qcow2_calc_prealloc_size). */
export function fullyAllocatedSize(size: number, clusterSize: number, refcountBits: number, extendedL2: boolean): number {
  const entryBytes = extendedL2 ? 16 : 8;
  const aligned = Math.ceil(size / clusterSize) * clusterSize;
  let meta = clusterSize; // header
  let nl2e = aligned / clusterSize;
  nl2e = Math.ceil(nl2e / (clusterSize / entryBytes)) * (clusterSize / entryBytes);
  meta += nl2e * entryBytes;
  let nl1e = (nl2e * entryBytes) / clusterSize;
  nl1e = Math.ceil(nl1e / (clusterSize / L1E_SIZE)) * (clusterSize / L1E_SIZE);
  meta += nl1e * L1E_SIZE;
  meta += refcountMetadataSize((meta + aligned) / clusterSize, clusterSize, refcountBits);
  return meta + aligned;
}

export async function measureQcow2(size: number, options: OptionValues, source?: BlockNode): Promise<MeasureResult> {
  const p = createParams(options, 0);
  const cs = p.clusterSize;
  let virtualSize = Math.ceil(size / cs) * cs;
  if (!source && l1EntriesFor(virtualSize, Math.log2(cs), p.extendedL2) * L1E_SIZE > MAX_L1_BYTES) {
    throw invalidArgument('The image size is too large (try using a larger cluster size)');
  }
  let required = 0;
  if (source) {
    const ssize = source.size;
    virtualSize = Math.ceil(ssize / cs) * cs;
    if (p.backingFile) required = virtualSize;
    else {
      let pnum = 0;
      for (let offset = 0; offset < ssize; offset += pnum) {
        const st = await blockStatusAbove(source, offset, ssize - offset);
        pnum = st.length;
        if (st.zero) continue;
        if (st.data && st.allocated) {
          pnum = Math.ceil((offset + pnum) / cs) * cs - offset;
          required += (offset % cs) + pnum;
        }
      }
    }
  }
  if (p.preallocation === 'full' || p.preallocation === 'falloc') required = virtualSize;
  // The LUKS header clusters of encrypt.format=luks (encryption.ts), as qcow2_measure adds them.
  const luksBytes = p.crypto ? cryptoHeaderBytes(p.crypto, cs) : 0;
  const fullyAllocated = fullyAllocatedSize(virtualSize, cs, p.refcountBits, p.extendedL2) + luksBytes;
  const out: MeasureResult = { required: fullyAllocated - virtualSize + required, fullyAllocated };
  if (p.version >= 3 && source && source.format === 'qcow2') {
    out.bitmaps = await bitmapsSize(source, cs);
  }
  return out;
}

/** Space the source's persistent bitmaps would take in the new image. */
async function bitmapsSize(source: BlockNode, cs: number): Promise<number> {
  const img = (source.impl as Qcow2Node).img;
  if (!img?.header.bitmapsExt) return 0;
  const dir = await readBitmapDirectory(img).catch(() => undefined);
  if (!dir || dir.bitmaps.length === 0) return 0;
  let size = 0;
  let dirSize = 0;
  for (const b of dir.bitmaps) {
    const bits = Math.ceil(source.size / 2 ** b.granularityBits);
    const clusters = Math.ceil(Math.ceil(bits / 8) / cs);
    size += clusters * cs;
    size += Math.ceil((clusters * 8) / cs) * cs;
    dirSize += Math.ceil((24 + Buffer.byteLength(b.name)) / 8) * 8;
  }
  return size + Math.ceil(dirSize / cs) * cs;
}

// qemu-img check for qcow2 (QEMU block/qcow2-refcount.c qcow2_check_refcounts semantics, own
// code): rebuild the reference counts in memory by walking every structure (header, L1/L2 of
// the active image and of each snapshot, snapshot table, refcount table and blocks, bitmaps,
// encryption header), compare them with the stored refcounts (lower = corruption, higher =
// leak), check QCOW_OFLAG_COPIED on the active tables, and report fragmentation figures.
// Repair: 'leaks' fixes refcounts that are too high; 'all' fixes every mismatch and flag.
//
// Snapshots usually share most L2 tables with each other and with the active image: the walk
// of a snapshot's L2 table is summarised once (the clusters it references, the errors it holds)
// and later references to the same table reuse the summary, so checking N snapshots costs their
// L1 tables plus the distinct L2 tables, not N times every table (CVE-2015-5162: a crafted
// snapshot table must not buy unbounded CPU). Errors are still reported once per reference.

import type { CheckResult, RepairMode } from '../../block/types.ts';
import { decodeL1, decodeL2, encodeL1, encodeL2, L1E_SIZE, l2EntryBytes } from './entries.ts';
import { INCOMPAT_CORRUPT, INCOMPAT_DIRTY, AUTOCLEAR_BITMAPS } from './header.ts';
import type { Qcow2Image } from './image.ts';
import { bitmapRanges } from './bitmaps.ts';

const hex = (n: number) => n.toString(16);

export async function checkImage(img: Qcow2Image, repair: RepairMode | undefined): Promise<CheckResult> {
  const cs = img.clusterSize;
  const res: CheckResult = { corruptions: 0, leaks: 0, checkErrors: 0, corruptionsFixed: 0, leaksFixed: 0, messages: [] };
  const fileSize = img.file.size;
  const nbClusters = Math.ceil(fileSize / cs);
  const refs = new Uint32Array(nbClusters);
  const fixLeaks = repair === 'leaks' || repair === 'all';
  const fixAll = repair === 'all';

  const inc = (offset: number, size: number) => {
    if (size <= 0) return;
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + size - 1) / cs);
    for (let c = first; c <= last; c++) {
      if (c >= nbClusters) {
        res.corruptions++;
        res.messages.push(`ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x${hex(offset)} size 0x${hex(size)}`);
        return;
      }
      refs[c]!++;
    }
  };

  let allocated = 0;
  let fragmented = 0;
  let compressed = 0;

  /** Where the walk of one L2 table sends its findings. */
  interface L2Sink {
    inc(offset: number, size: number): void;
    error(message: string): void;
  }
  const direct: L2Sink = {
    inc,
    error: (m) => {
      res.corruptions++;
      res.messages.push(m);
    },
  };

  /** A snapshot L2 table's contribution: the clusters it references and the errors it holds. */
  interface L2Summary {
    clusters: Int32Array;
    errors: string[];
  }
  const summaries = new Map<number, L2Summary>();
  /** References to each summarised table not yet added to `refs`. */
  const pending = new Map<number, number>();
  /** Cluster indices kept in summaries at most (about 64 MiB); tables past it are walked again. */
  const SUMMARY_BUDGET = 16 << 20;
  let summarised = 0;

  const summarise = (table: Buffer): L2Summary => {
    const clusters: number[] = [];
    const errors: string[] = [];
    walkL2(table, {
      inc: (offset, size) => {
        if (size <= 0) return;
        const first = Math.floor(offset / cs);
        const last = Math.floor((offset + size - 1) / cs);
        for (let c = first; c <= last; c++) {
          if (c >= nbClusters) {
            errors.push(`ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x${hex(offset)} size 0x${hex(size)}`);
            return;
          }
          clusters.push(c);
        }
      },
      error: (m) => errors.push(m),
    }, false);
    return { clusters: Int32Array.from(clusters), errors };
  };

  /** Walk the entries of one L2 table (active: also count allocation and fragmentation). */
  const walkL2 = (table: Buffer, sink: L2Sink, active: boolean): void => {
    let nextContiguous = 0;
    for (let j = 0; j < img.l2Entries; j++) {
      const x = decodeL2(table, j, img.geo);
      switch (x.type) {
        case 'compressed':
          if (img.externalData) {
            sink.error(`ERROR compressed cluster ${j} with data file`);
            break;
          }
          if (x.allocMask || x.zeroMask) {
            sink.error(`ERROR compressed cluster ${j} with non-zero subcluster allocation bitmap`);
            break;
          }
          sink.inc(x.compressedOffset, x.compressedSize);
          if (active) {
            allocated++;
            compressed++;
            fragmented++;
          }
          break;
        case 'normal':
        case 'zero-alloc':
          if (x.allocMask & x.zeroMask) sink.error(`ERROR offset=${hex(x.offset)}: Allocated cluster has corrupted subcluster allocation bitmap`);
          if (x.offset % cs !== 0) sink.error(`ERROR offset=${hex(x.offset)}: Data cluster is not properly aligned; L2 entry corrupted.`);
          if (active) {
            allocated++;
            if (nextContiguous && x.offset !== nextContiguous) fragmented++;
            nextContiguous = x.offset + cs;
          }
          if (!img.externalData) sink.inc(x.offset, cs);
          break;
        case 'unallocated':
          if (x.allocMask) sink.error('ERROR: Unallocated cluster has non-zero subcluster allocation map');
          break;
        default:
          break;
      }
    }
  };

  const walkL1 = async (l1: Buffer, l1Offset: number, l1Size: number, active: boolean) => {
    if (l1Size === 0) return;
    inc(l1Offset, l1Size * L1E_SIZE);
    for (let i = 0; i < l1Size; i++) {
      const e = decodeL1(l1, i);
      if (l1.readUInt32BE(i * 8) === 0 && l1.readUInt32BE(i * 8 + 4) === 0) continue;
      if (e.reservedBits) {
        res.corruptions++;
        res.messages.push(`ERROR found L1 entry with reserved bits set: ${l1.readBigUInt64BE(i * 8).toString(16)}`);
      }
      if (!e.offset) continue;
      inc(e.offset, cs);
      if (e.offset % cs !== 0) {
        res.corruptions++;
        res.messages.push(`ERROR l2_offset=${hex(e.offset)}: Table is not cluster aligned; L1 entry corrupted`);
        continue;
      }
      if (e.offset + cs > fileSize) {
        res.checkErrors++;
        res.messages.push(`ERROR: I/O error in check_refcounts_l2 (L2 table at 0x${hex(e.offset)} is past the end of the file)`);
        continue;
      }
      if (active) {
        walkL2(await img.file.read(e.offset, cs), direct, true);
        continue;
      }
      let s = summaries.get(e.offset);
      if (!s) {
        const table = await img.file.read(e.offset, cs);
        if (summarised >= SUMMARY_BUDGET) {
          walkL2(table, direct, false);
          continue;
        }
        s = summarise(table);
        summaries.set(e.offset, s);
        summarised += s.clusters.length;
      }
      for (const m of s.errors) direct.error(m);
      pending.set(e.offset, (pending.get(e.offset) ?? 0) + 1);
    }
  };

  // Header, active tables, snapshots.
  inc(0, cs);
  await walkL1(img.l1, img.header.l1TableOffset, img.l1Size, true);
  for (const sn of img.snapshots) {
    if (sn.l1TableOffset % cs !== 0) {
      res.corruptions++;
      res.messages.push(`ERROR snapshot ${sn.id} (${sn.name}) l1_offset=${hex(sn.l1TableOffset)}: L1 table is not cluster aligned; snapshot table entry corrupted`);
      continue;
    }
    const l1 = await img.file.read(sn.l1TableOffset, sn.l1Size * L1E_SIZE);
    await walkL1(l1, sn.l1TableOffset, sn.l1Size, false);
  }
  for (const [offset, times] of pending) {
    for (const c of summaries.get(offset)!.clusters) refs[c]! += times;
  }
  if (img.header.nbSnapshots > 0) inc(img.header.snapshotsOffset, img.snapshotTableBytes);
  inc(img.refcounts.tableOffset, img.refcounts.tableClusters * cs);
  if (img.header.bitmapsExt && img.header.autoclear & AUTOCLEAR_BITMAPS) {
    try {
      for (const [o, s] of await bitmapRanges(img)) inc(o, s);
    } catch (e) {
      res.checkErrors++;
      res.messages.push(`ERROR: could not read the bitmaps: ${(e as Error).message}`);
    }
  }
  if (img.header.cryptoExt && img.header.cryptoExt.length >= 16) {
    inc(Number(img.header.cryptoExt.readBigUInt64BE(0)), Number(img.header.cryptoExt.readBigUInt64BE(8)));
  }
  const table = img.refcounts.table;
  for (let b = 0; b < table.length; b++) {
    const off = table[b]!;
    if (!off) continue;
    if (off % cs !== 0) {
      res.corruptions++;
      res.messages.push(`ERROR refcount block ${b} is not cluster aligned; refcount table entry corrupted`);
      continue;
    }
    if (off / cs >= nbClusters) {
      res.corruptions++;
      res.messages.push(`ERROR refcount block ${b} is outside image`);
      continue;
    }
    inc(off, cs);
  }

  // Compare with the stored refcounts: first only reporting, then, if that found something and
  // repairs were asked for, again with repairs from the counts as they were before (QEMU's
  // qcow2_check_refcounts: "Leaked cluster" lines, then "Repairing cluster" lines).
  const perBlock = img.refcounts.perBlock;
  let highest = -1;
  let changed = false;
  const compare = async (repairLeaks: boolean, repairAll: boolean): Promise<void> => {
    for (let c = 0; c < nbClusters; c++) {
      const b = Math.floor(c / perBlock);
      const blockOk = b < table.length && table[b]! % cs === 0 && table[b]! / cs < nbClusters;
      let stored = 0;
      if (blockOk && table[b]) {
        try {
          stored = await img.refcounts.get(c);
        } catch {
          res.checkErrors++;
          continue;
        }
      }
      const computed = c < nbClusters ? refs[c]! : 0;
      if (stored > 0 || computed > 0) highest = c;
      if (stored === computed) continue;
      const canSet = blockOk && (table[b] !== 0 || computed === 0);
      let fixed: 'leak' | 'corruption' | undefined;
      if (stored > computed && repairLeaks && canSet) fixed = 'leak';
      else if (stored < computed && repairAll && canSet) fixed = 'corruption';
      res.messages.push(`${fixed ? 'Repairing' : stored < computed ? 'ERROR' : 'Leaked'} cluster ${c} refcount=${stored} reference=${computed}`);
      if (fixed) {
        await img.refcounts.set(c, computed);
        changed = true;
        if (fixed === 'leak') res.leaksFixed++;
        else res.corruptionsFixed++;
        continue;
      }
      if (stored < computed) res.corruptions++;
      else res.leaks++;
    }
  };
  const before = { leaks: res.leaks, corruptions: res.corruptions, checkErrors: res.checkErrors };
  await compare(false, false);
  if ((fixLeaks || fixAll) && (res.leaks > before.leaks || res.corruptions > before.corruptions)) {
    Object.assign(res, before);
    await compare(fixLeaks, fixAll);
  }
  if (changed) {
    await img.refcounts.commit();
    img.refcounts.resetFreeHint();
  }

  // QCOW_OFLAG_COPIED on the active tables.
  const repairFlags = fixAll || (fixLeaks && res.checkErrors === 0 && res.corruptions === 0 && res.leaks === 0);
  let l1Dirty = false;
  for (let i = 0; i < img.l1Size; i++) {
    const e = decodeL1(img.l1, i);
    if (!e.offset || e.offset % cs !== 0 || e.offset + cs > fileSize) continue;
    const rc = await img.refcounts.get(e.offset / cs);
    if ((rc === 1) !== e.copied) {
      res.messages.push(`${repairFlags ? 'Repairing' : 'ERROR'} OFLAG_COPIED L2 cluster: l1_index=${i} l1_entry=${img.l1.readBigUInt64BE(i * 8).toString(16)} refcount=${rc}`);
      if (repairFlags) {
        encodeL1(img.l1, i, e.offset, rc === 1);
        l1Dirty = true;
        res.corruptionsFixed++;
      } else res.corruptions++;
    }
    const t = await img.l2Table(e.offset);
    let l2Dirty = false;
    for (let j = 0; j < img.l2Entries; j++) {
      const x = decodeL2(t, j, img.geo);
      if (x.type !== 'normal' && x.type !== 'zero-alloc') continue;
      const drc = img.externalData ? 1 : x.offset % cs === 0 ? await img.refcounts.get(x.offset / cs) : 1;
      if ((drc === 1) !== x.copied) {
        res.messages.push(`${repairFlags ? 'Repairing' : 'ERROR'} OFLAG_COPIED data cluster: l2_entry=${t.readBigUInt64BE(j * l2EntryBytes(img.geo)).toString(16)} refcount=${drc}`);
        if (repairFlags) {
          encodeL2(t, j, img.geo, { offset: x.offset, copied: drc === 1, zero: x.type === 'zero-alloc', allocMask: x.allocMask, zeroMask: x.zeroMask });
          l2Dirty = true;
          res.corruptionsFixed++;
        } else res.corruptions++;
      }
    }
    if (l2Dirty) await img.writeMeta(e.offset, t);
  }
  if (l1Dirty) await img.writeL1Entries(0, img.l1Size);

  if (repair && res.corruptions === 0 && res.checkErrors === 0) {
    const h = img.header;
    if (h.incompatible & (INCOMPAT_DIRTY | INCOMPAT_CORRUPT) && !img.readOnly) {
      await img.file.flush();
      h.incompatible &= ~(INCOMPAT_DIRTY | INCOMPAT_CORRUPT);
      await img.writeHeader();
    }
  }

  res.imageEndOffset = (highest + 1) * cs;
  res.totalClusters = Math.ceil(img.size / cs);
  res.allocatedClusters = allocated;
  res.fragmentedClusters = fragmented;
  res.compressedClusters = compressed;
  return res;
}

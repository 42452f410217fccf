// qemu-img check for qcow2 (QEMU block/qcow2-refcount.c qcow2_check_refcounts semantics, own
// code), in the same steps as QEMU:
//   1. calculateRefcounts: rebuild the reference counts in memory by walking every structure
//      (header, L1/L2 of the active image and of each snapshot, snapshot table, refcount table,
//      encryption header, bitmaps, refcount blocks);
//   2. compareRefcounts: compare them with the stored refcounts (lower = corruption, higher =
//      leak), first only reporting, then (with -r) repairing what may be repaired;
//   3. rebuildRefcountStructure: where a stored refcount is 0 for a used cluster or a refcount
//      block is broken, -r all writes a new refcount table and new blocks from the in-memory
//      counts, then counts and compares again (the old structures are now leaks, repaired);
//   4. checkCopiedFlags: QCOW_OFLAG_COPIED on the active tables;
//   5. a repaired image without errors is marked clean.
// Messages, their order and the counters are QEMU's.
//
// Snapshots usually share most L2 tables with each other and with the active image: the walk
// of a snapshot's L2 table is summarised once (the clusters it references, the errors it holds)
// and later references to the same table reuse the summary, so checking N snapshots costs their
// L1 tables plus the distinct L2 tables, not N times every table (CVE-2015-5162: a crafted
// snapshot table must not buy unbounded CPU). Errors are still reported once per reference.

import type { CheckResult, RepairMode } from '../../block/types.ts';
import { decodeL1, decodeL2, encodeL1, encodeL2, encodeReftableEntry, L1E_SIZE, l2EntryBytes } from './entries.ts';
import { INCOMPAT_CORRUPT, INCOMPAT_DIRTY, AUTOCLEAR_BITMAPS } from './header.ts';
import type { Qcow2Image } from './image.ts';
import { bitmapRanges } from './bitmaps.ts';
import { writeRefcountEntry } from './refcount.ts';
import { MAX_L1_BYTES } from './validate.ts';

const hex = (n: number) => n.toString(16);

/** What may be repaired (QEMU's BDRV_FIX_LEAKS / BDRV_FIX_ERRORS). */
interface Fix {
  leaks: boolean;
  errors: boolean;
}
const NO_FIX: Fix = { leaks: false, errors: false };

/** Refcounts the in-memory table can count to (Uint32 cells; far past any real sharing). */
const IMRT_CELL_MAX = 0xffffffff;

/** The in-memory refcount table (QEMU's "imrt"): one count per host cluster, growable. */
class InMemoryRefcounts {
  #counts: Uint32Array;
  length: number;
  constructor(length: number) {
    this.length = length;
    this.#counts = new Uint32Array(Math.max(length, 1));
  }
  get(c: number): number {
    return c < this.length ? this.#counts[c]! : 0;
  }
  set(c: number, v: number): void {
    this.grow(c + 1);
    this.#counts[c] = v;
  }
  grow(length: number): void {
    if (length <= this.length) return;
    if (length > this.#counts.length) {
      const next = new Uint32Array(Math.max(length, this.#counts.length * 2));
      next.set(this.#counts);
      this.#counts = next;
    }
    this.length = length;
  }
  clear(): void {
    this.#counts.fill(0);
  }
}

/** A snapshot L2 table's contribution: the clusters it references and the errors it holds. */
interface L2Summary {
  clusters: Int32Array;
  errors: string[];
}

/** Where the walk of one L2 table sends its findings. */
interface L2Sink {
  inc(offset: number, size: number): void;
  error(message: string): void;
}

/** Cluster indices kept in snapshot L2 summaries at most (about 64 MiB); tables past it are
 *  walked again at each reference. */
const SUMMARY_BUDGET = 16 << 20;

/** Step 1 (QEMU calculate_refcounts): count every reference into `refs`. Returns whether the
 *  refcount structure itself is broken (it must be rebuilt). */
async function calculateRefcounts(img: Qcow2Image, res: CheckResult, refs: InMemoryRefcounts, fragInfo: boolean, fix: Fix): Promise<boolean> {
  const cs = img.clusterSize;
  const fileSize = img.file.size;
  const limit = img.refcounts.max;

  const inc = (offset: number, size: number): void => {
    if (size <= 0) return;
    // The last cluster may be partly past the end of the file; a whole cluster may not.
    if (offset + size - fileSize >= cs) {
      res.corruptions++;
      res.messages.push(`ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x${hex(offset)} size 0x${hex(size)}`);
      return;
    }
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + size - 1) / cs);
    for (let c = first; c <= last; c++) {
      const n = refs.get(c);
      if (n >= limit || n >= IMRT_CELL_MAX) {
        res.corruptions++;
        res.messages.push(`ERROR: overflow cluster offset=0x${hex(c * cs)}`);
        res.messages.push('Use qemu-img amend to increase the refcount entry width or qemu-img convert to create a clean copy if the image cannot be opened for writing');
        continue;
      }
      refs.set(c, n + 1);
    }
  };
  const direct: L2Sink = {
    inc,
    error: (m) => {
      res.corruptions++;
      res.messages.push(m);
    },
  };

  let nextContiguous = 0;
  /** Walk the entries of one L2 table (active: also count allocation and fragmentation).
   *  `repaired` (direct walks with -r all) collects the entries rewritten in `table`. */
  const walkL2 = (table: Buffer, sink: L2Sink, active: boolean, repaired?: number[]): void => {
    nextContiguous = 0;
    for (let j = 0; j < img.l2Entries; j++) {
      const x = decodeL2(table, j, img.geo);
      if (x.type !== 'compressed' && x.reservedBits) {
        sink.error(`ERROR found l2 entry with reserved bits set: ${table.readBigUInt64BE(j * l2EntryBytes(img.geo)).toString(16)}`);
      }
      switch (x.type) {
        case 'compressed': {
          const raw = table.readBigUInt64BE(j * l2EntryBytes(img.geo));
          if (img.externalData) {
            sink.error(`ERROR compressed cluster ${j} with data file, entry=0x${raw.toString(16)}`);
            break;
          }
          if (x.allocMask || x.zeroMask) {
            sink.error(`ERROR compressed cluster ${j} with non-zero subcluster allocation bitmap, entry=0x${raw.toString(16)}`);
            break;
          }
          sink.inc(x.compressedOffset, x.compressedSize);
          if (active && fragInfo) {
            res.allocatedClusters!++;
            res.compressedClusters!++;
            res.fragmentedClusters!++;
          }
          break;
        }
        case 'normal':
        case 'zero-alloc':
          if (x.allocMask & x.zeroMask) sink.error(`ERROR offset=${hex(x.offset)}: Allocated cluster has corrupted subcluster allocation bitmap`);
          if (x.offset % cs !== 0) {
            const holdsData = img.geo.extendedL2 ? x.allocMask !== 0 : x.type === 'normal';
            if (holdsData) sink.error(`ERROR offset=${hex(x.offset)}: Data cluster is not properly aligned; L2 entry corrupted.`);
            else if (repaired && fix.errors) {
              // Nothing to lose: the entry becomes a zero cluster (QEMU fix_l2_entry_by_zero).
              res.messages.push(`Repairing offset=${hex(x.offset)}: Preallocated cluster is not properly aligned; L2 entry corrupted.`);
              encodeL2(table, j, img.geo, { offset: 0, copied: false, zero: true, allocMask: 0, zeroMask: (x.allocMask | x.zeroMask) >>> 0 });
              repaired.push(j);
              res.corruptionsFixed++;
              continue;
            } else sink.error(`ERROR offset=${hex(x.offset)}: Preallocated cluster is not properly aligned; L2 entry corrupted.`);
          }
          if (active && fragInfo) {
            res.allocatedClusters!++;
            if (nextContiguous && x.offset !== nextContiguous) res.fragmentedClusters!++;
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

  const summaries = new Map<number, L2Summary>();
  /** References to each summarised table not yet added to `refs`. */
  const pending = new Map<number, number>();
  let summarised = 0;
  const summarise = (table: Buffer): L2Summary => {
    const clusters: number[] = [];
    const errors: string[] = [];
    walkL2(
      table,
      {
        inc: (offset, size) => {
          if (size <= 0) return;
          if (offset + size - fileSize >= cs) {
            errors.push(`ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x${hex(offset)} size 0x${hex(size)}`);
            return;
          }
          const first = Math.floor(offset / cs);
          const last = Math.floor((offset + size - 1) / cs);
          for (let c = first; c <= last; c++) clusters.push(c);
        },
        error: (m) => errors.push(m),
      },
      false,
    );
    return { clusters: Int32Array.from(clusters), errors };
  };

  const walkL1 = async (l1: Buffer, l1Offset: number, l1Size: number, active: boolean): Promise<void> => {
    if (l1Size === 0) return;
    inc(l1Offset, l1Size * L1E_SIZE);
    for (let i = 0; i < l1Size; i++) {
      if (l1.readUInt32BE(i * 8) === 0 && l1.readUInt32BE(i * 8 + 4) === 0) continue;
      const e = decodeL1(l1, i);
      if (e.reservedBits) direct.error(`ERROR found L1 entry with reserved bits set: ${l1.readBigUInt64BE(i * 8).toString(16)}`);
      if (!e.offset) continue;
      inc(e.offset, cs);
      // A misaligned table is still read and checked where it points, as QEMU's
      // check_refcounts_l1 goes on into check_refcounts_l2 (its counts match); it is never
      // repaired in place: what lies there is not an L2 table.
      const misaligned = e.offset % cs !== 0;
      if (misaligned) direct.error(`ERROR l2_offset=${hex(e.offset)}: Table is not cluster aligned; L1 entry corrupted`);
      // A table past the end of the file reads as zeros (its own reference was flagged above);
      // one the file ends inside of reads as zeros from there (a fresh image's L1 is that short).
      if (e.offset >= fileSize) continue;
      const readTable = async (): Promise<Buffer> => {
        if (e.offset + cs <= fileSize) return img.file.read(e.offset, cs);
        const t = Buffer.alloc(cs);
        (await img.file.read(e.offset, fileSize - e.offset)).copy(t);
        return t;
      };
      if (active) {
        const table = await readTable();
        const repaired: number[] = [];
        walkL2(table, direct, true, misaligned ? undefined : repaired);
        await writeRepairedEntries(img, e.offset, table, repaired);
        continue;
      }
      let s = summaries.get(e.offset);
      if (!s) {
        const table = await readTable();
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
  if (img.externalData && img.snapshots.length) direct.error(`ERROR ${img.snapshots.length} snapshots in image with data file`);
  for (const sn of img.snapshots) {
    if (sn.l1TableOffset % cs !== 0) {
      direct.error(`ERROR snapshot ${sn.id} (${sn.name}) l1_offset=0x${hex(sn.l1TableOffset)}: L1 table is not cluster aligned; snapshot table entry corrupted`);
      continue;
    }
    if (sn.l1Size * L1E_SIZE > MAX_L1_BYTES) {
      direct.error(`ERROR snapshot ${sn.id} (${sn.name}) l1_size=0x${hex(sn.l1Size)}: L1 table is too large; snapshot table entry corrupted`);
      continue;
    }
    if (sn.l1TableOffset + sn.l1Size * L1E_SIZE > fileSize) {
      inc(sn.l1TableOffset, sn.l1Size * L1E_SIZE); // reports the region past the end of the file
      continue;
    }
    const l1 = await img.file.read(sn.l1TableOffset, sn.l1Size * L1E_SIZE);
    await walkL1(l1, sn.l1TableOffset, sn.l1Size, false);
  }
  for (const [offset, times] of pending) {
    for (const c of summaries.get(offset)!.clusters) {
      const n = refs.get(c);
      refs.set(c, Math.min(IMRT_CELL_MAX, n + times));
    }
  }
  if (img.header.nbSnapshots > 0) inc(img.header.snapshotsOffset, img.snapshotTableBytes);
  inc(img.refcounts.tableOffset, img.refcounts.tableClusters * cs);
  if (img.header.cryptoExt && img.header.cryptoExt.length >= 16) {
    inc(Number(img.header.cryptoExt.readBigUInt64BE(0)), Number(img.header.cryptoExt.readBigUInt64BE(8)));
  }
  if (img.header.bitmapsExt && img.header.autoclear & AUTOCLEAR_BITMAPS) {
    try {
      for (const [o, s] of await bitmapRanges(img)) inc(o, s);
    } catch (e) {
      res.checkErrors++;
      res.messages.push(`ERROR: could not read the bitmaps: ${(e as Error).message}`);
    }
  }
  return checkRefcountBlocks(img, res, refs, inc);
}

/** Write back the L2 entries a repair rewrote in `table` (at `offset`). */
async function writeRepairedEntries(img: Qcow2Image, offset: number, table: Buffer, entries: number[]): Promise<void> {
  if (!entries.length) return;
  const size = l2EntryBytes(img.geo);
  for (const j of entries) await img.writeMeta(offset + j * size, table.subarray(j * size, (j + 1) * size));
  await img.file.flush();
  img.l2Cache.drop(offset);
}

/** The refcount blocks (QEMU check_refblocks): counted, and each must be aligned, inside the
 *  file and used once. Returns whether the refcount structure must be rebuilt. */
function checkRefcountBlocks(img: Qcow2Image, res: CheckResult, refs: InMemoryRefcounts, inc: (offset: number, size: number) => void): boolean {
  const cs = img.clusterSize;
  const nbClusters = Math.ceil(img.file.size / cs);
  let rebuild = false;
  const table = img.refcounts.table;
  for (let b = 0; b < table.length; b++) {
    const off = table[b]!;
    if (!off) continue;
    if (off % cs !== 0) {
      res.corruptions++;
      res.messages.push(`ERROR refcount block ${b} is not cluster aligned; refcount table entry corrupted`);
      rebuild = true;
      continue;
    }
    if (off / cs >= nbClusters) {
      res.corruptions++;
      res.messages.push(`ERROR refcount block ${b} is outside image`);
      continue;
    }
    inc(off, cs);
    if (refs.get(off / cs) !== 1) {
      res.corruptions++;
      res.messages.push(`ERROR refcount block ${b} refcount=${refs.get(off / cs)}`);
      rebuild = true;
    }
  }
  return rebuild;
}

/** Step 2 (QEMU compare_refcounts): stored against counted, repairing as `fix` allows. A
 *  stored 0 for a used cluster cannot be repaired in place: it asks for a rebuild. */
async function compareRefcounts(img: Qcow2Image, res: CheckResult, refs: InMemoryRefcounts, fix: Fix): Promise<{ rebuild: boolean; highest: number; changed: boolean }> {
  let rebuild = false;
  let highest = -1;
  let changed = false;
  const end = refs.length;
  for (let c = 0; c < end; c++) {
    let stored: number;
    try {
      stored = await img.refcounts.get(c);
    } catch {
      res.checkErrors++;
      res.messages.push(`Can't get refcount for cluster ${c}: Input/output error`);
      continue;
    }
    const counted = refs.get(c);
    if (stored > 0 || counted > 0) highest = c;
    if (stored === counted) continue;
    let fixing: 'leak' | 'corruption' | undefined;
    if (stored === 0) rebuild = true;
    else if (stored > counted && fix.leaks) fixing = 'leak';
    else if (stored < counted && fix.errors) fixing = 'corruption';
    const shown = stored >= Number.MAX_SAFE_INTEGER ? await img.refcounts.exact(c) : stored;
    res.messages.push(`${fixing ? 'Repairing' : stored < counted ? 'ERROR' : 'Leaked'} cluster ${c} refcount=${shown} reference=${counted}`);
    if (fixing) {
      try {
        await img.refcounts.set(c, counted);
        changed = true;
        if (fixing === 'leak') res.leaksFixed++;
        else res.corruptionsFixed++;
        continue;
      } catch {
        // Could not be fixed: counted as found.
      }
    }
    if (stored < counted) res.corruptions++;
    else res.leaks++;
  }
  if (changed) {
    await img.refcounts.commit();
    img.refcounts.resetFreeHint();
  }
  return { rebuild, highest, changed };
}

/** Take `count` contiguous clusters that are free in `refs` (QEMU alloc_clusters_imrt),
 *  searching from `from.cluster`, appending past the end where none are; returns the first. */
function allocateInMemory(refs: InMemoryRefcounts, count: number, from: { cluster: number }): number {
  let c = from.cluster;
  let run = 0;
  let firstGap = true;
  for (; c < refs.length && run < count; c++) {
    if (refs.get(c) === 0) {
      run++;
      if (firstGap) {
        from.cluster = c;
        firstGap = false;
      }
    } else run = 0;
  }
  if (run < count) refs.grow(c + count - run);
  const start = c - run;
  for (let i = 0; i < count; i++) refs.set(start + i, 1);
  return start;
}

/** Step 3 (QEMU rebuild_refcount_structure): write a refcount block for every range of
 *  clusters in use and a new refcount table, all placed in clusters free in `refs`, then enter
 *  the table in the header. The old structures are left as leaks for the next comparison. */
async function rebuildRefcountStructure(img: Qcow2Image, refs: InMemoryRefcounts): Promise<void> {
  const cs = img.clusterSize;
  const bits = img.refcounts.bits;
  const perBlock = img.refcounts.perBlock;
  const entriesPerCluster = cs / L1E_SIZE;
  const reftable: number[] = [];

  /** Write the blocks covering clusters [first, end) that hold counts; true if the table grew. */
  const writeBlocks = async (first: number, end: number): Promise<boolean> => {
    let grown = false;
    const from = { cluster: 0 };
    for (let c = first; c < end; c++) {
      if (!refs.get(c)) continue;
      const b = Math.floor(c / perBlock);
      const blockStart = b * perBlock;
      let offset = reftable[b] ?? 0;
      if (!offset) {
        // Never inside a block already written.
        if (from.cluster < blockStart) from.cluster = blockStart;
        const at = allocateInMemory(refs, 1, from);
        if (at >= end) end = at + 1; // the block that counts this block must be written too
        if (reftable.length <= b) {
          const entries = Math.ceil(((b + 1) * L1E_SIZE) / cs) * entriesPerCluster;
          while (reftable.length < entries) reftable.push(0);
          grown = true;
        }
        offset = at * cs;
        reftable[b] = offset;
      }
      const block = Buffer.alloc(cs);
      for (let i = 0; i < perBlock; i++) {
        const n = refs.get(blockStart + i);
        if (n) writeRefcountEntry(block, i, bits, n);
      }
      await img.file.write(offset, block);
      c = blockStart + perBlock - 1;
    }
    return grown;
  };

  let grown = await writeBlocks(0, refs.length);
  let tableOffset = 0;
  let tableClusters = 0;
  do {
    tableClusters = Math.ceil((reftable.length * L1E_SIZE) / cs);
    const start = allocateInMemory(refs, tableClusters, { cluster: 0 });
    tableOffset = start * cs;
    grown = await writeBlocks(start, start + tableClusters);
  } while (grown);

  const buf = Buffer.alloc(tableClusters * cs);
  reftable.forEach((o, i) => encodeReftableEntry(buf, i, o));
  await img.file.write(tableOffset, buf);
  await img.file.flush();
  img.header.refcountTableOffset = tableOffset;
  img.header.refcountTableClusters = tableClusters;
  await img.writeHeader();
  img.refcounts = img.makeRefcounts(img.header.refcountOrder, tableOffset, tableClusters, buf);
}

/** Step 4 (QEMU check_oflag_copied): the COPIED flag of each active L1 and L2 entry must say
 *  whether the stored refcount is exactly 1. */
async function checkCopiedFlags(img: Qcow2Image, res: CheckResult, fix: Fix): Promise<void> {
  const cs = img.clusterSize;
  const repair = fix.errors || (fix.leaks && res.checkErrors === 0 && res.corruptions === 0 && res.leaks === 0);
  const refcountOf = async (offset: number): Promise<number | undefined> => {
    try {
      return await img.refcounts.get(Math.floor(offset / cs));
    } catch {
      return undefined;
    }
  };
  let l1Dirty = false;
  for (let i = 0; i < img.l1Size; i++) {
    const e = decodeL1(img.l1, i);
    if (!e.offset) continue;
    const rc = await refcountOf(e.offset);
    if (rc === undefined) continue;
    if ((rc === 1) !== e.copied) {
      res.messages.push(`${repair ? 'Repairing' : 'ERROR'} OFLAG_COPIED L2 cluster: l1_index=${i} l1_entry=${img.l1.readBigUInt64BE(i * 8).toString(16)} refcount=${rc}`);
      if (repair) {
        encodeL1(img.l1, i, e.offset, rc === 1);
        l1Dirty = true;
        res.corruptionsFixed++;
      } else res.corruptions++;
    }
    if (e.offset % cs !== 0 || e.offset + cs > img.file.size) continue;
    const t = await img.l2Table(e.offset);
    let l2Dirty = false;
    for (let j = 0; j < img.l2Entries; j++) {
      const x = decodeL2(t, j, img.geo);
      if (x.type !== 'normal' && x.type !== 'zero-alloc') continue;
      const drc = img.externalData ? 1 : await refcountOf(x.offset);
      if (drc === undefined) continue;
      if ((drc === 1) !== x.copied) {
        res.messages.push(`${repair ? 'Repairing' : 'ERROR'} OFLAG_COPIED data cluster: l2_entry=${t.readBigUInt64BE(j * l2EntryBytes(img.geo)).toString(16)} refcount=${drc}`);
        if (repair) {
          encodeL2(t, j, img.geo, { offset: x.offset, copied: drc === 1, zero: x.type === 'zero-alloc', allocMask: x.allocMask, zeroMask: x.zeroMask });
          l2Dirty = true;
          res.corruptionsFixed++;
        } else res.corruptions++;
      }
    }
    if (l2Dirty) await img.writeMeta(e.offset, t);
  }
  if (l1Dirty) await img.writeL1Entries(0, img.l1Size);
}

/** Step 5: a repaired image without errors is clean (dirty and corrupt bits cleared). */
async function markClean(img: Qcow2Image): Promise<void> {
  const h = img.header;
  if (h.incompatible & (INCOMPAT_DIRTY | INCOMPAT_CORRUPT) && !img.readOnly) {
    await img.file.flush();
    h.incompatible &= ~(INCOMPAT_DIRTY | INCOMPAT_CORRUPT);
    await img.writeHeader();
  }
}

export async function checkImage(img: Qcow2Image, repair: RepairMode | undefined): Promise<CheckResult> {
  const cs = img.clusterSize;
  const res: CheckResult = {
    corruptions: 0,
    leaks: 0,
    checkErrors: 0,
    corruptionsFixed: 0,
    leaksFixed: 0,
    messages: [],
    allocatedClusters: 0,
    fragmentedClusters: 0,
    compressedClusters: 0,
  };
  const fix: Fix = { leaks: repair === 'leaks' || repair === 'all', errors: repair === 'all' };

  const refs = new InMemoryRefcounts(Math.ceil(img.file.size / cs));
  let rebuild = await calculateRefcounts(img, res, refs, true, fix);
  const beforeCompare = { corruptions: res.corruptions, leaks: res.leaks, checkErrors: res.checkErrors, messages: res.messages.length };
  const first = await compareRefcounts(img, res, refs, NO_FIX);
  rebuild ||= first.rebuild;
  let highest = first.highest;

  if (rebuild && fix.errors) {
    const found = { corruptions: res.corruptions, leaks: res.leaks };
    res.messages.push('Rebuilding refcount structure');
    await rebuildRefcountStructure(img, refs);
    res.corruptions = 0;
    res.leaks = 0;
    refs.clear();
    await calculateRefcounts(img, res, refs, false, NO_FIX);
    // The old structures are leaks now: repaired, and not counted as found.
    const saved = { corruptions: res.corruptions, leaks: res.leaks, checkErrors: res.checkErrors, corruptionsFixed: res.corruptionsFixed, leaksFixed: res.leaksFixed };
    res.corruptions = 0;
    res.leaks = 0;
    const again = await compareRefcounts(img, res, refs, { leaks: true, errors: false });
    if (again.rebuild) res.messages.push('ERROR rebuilt refcount structure is still broken');
    highest = again.highest;
    const freshLeaks = res.leaks;
    Object.assign(res, saved);
    if (res.corruptions < found.corruptions) res.corruptionsFixed += found.corruptions - res.corruptions;
    if (res.leaks < found.leaks) res.leaksFixed += found.leaks - res.leaks;
    res.leaks += freshLeaks;
  } else if (fix.leaks) {
    if (rebuild) {
      res.messages.push('ERROR need to rebuild refcount structures');
      res.checkErrors++;
      res.failed = 'Input/output error';
      return finish(img, res, highest);
    }
    if (res.leaks || res.corruptions) {
      res.corruptions = beforeCompare.corruptions;
      res.leaks = beforeCompare.leaks;
      res.checkErrors = beforeCompare.checkErrors;
      highest = (await compareRefcounts(img, res, refs, fix)).highest;
    }
  }

  await checkCopiedFlags(img, res, fix);
  if (repair && res.corruptions === 0 && res.checkErrors === 0) await markClean(img);
  return finish(img, res, highest);
}

/** The figures qemu-img prints after the counters. */
function finish(img: Qcow2Image, res: CheckResult, highest: number): CheckResult {
  res.imageEndOffset = (highest + 1) * img.clusterSize;
  res.totalClusters = Math.ceil(img.size / img.clusterSize);
  return res;
}

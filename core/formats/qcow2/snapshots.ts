// Internal snapshots (docs/interop/qcow2.txt "Snapshots"; QEMU block/qcow2-snapshot.c and
// qcow2_update_snapshot_refcount as inspiration): create copies the active L1 table and adds one
// reference to every cluster it reaches; apply swaps the active L1 for a snapshot's; delete drops
// the snapshot's references. After each, QCOW_OFLAG_COPIED is recomputed on the tables touched
// (set exactly where the refcount is 1). Metadata order: new clusters and refcounts first, then
// the tables that use them, then the snapshot table and header; a crash leaks, never corrupts.

import type { NodeImpl, SnapshotCapability, SnapshotInfo } from '../../block/types.ts';
import { BlockError, invalidArgument, notFound, strerror, unsupported } from '../../errors.ts';
import { decodeL1, decodeL2, encodeL1, encodeL2, L1E_SIZE } from './entries.ts';
import type { Qcow2Image } from './image.ts';
import { growL1 } from './cluster-map.ts';
import { encodeSnapshotTable, MAX_SNAPSHOT_TABLE_BYTES, readSnapshotTable, SNAPSHOT_EXTRA_V3, validateSnapshotL1, type Snapshot } from './snapshots-table.ts';
import { MAX_SNAPSHOTS } from './validate.ts';
import type { Qcow2Node } from './node.ts';

/**
 * Add `delta` references to every L2 table and data cluster reachable from `l1`, then make the
 * COPIED flags of those tables and of `l1` match the refcounts. Nothing is written: refcount
 * changes stay dirty in memory and changed L2 tables are collected in `tables`, so that
 * writeBatch() issues them all at once (QEMU gets the same effect from its metadata caches): a
 * crash then leaves the flags and refcounts either before or after, not half-way for long.
 * Returns whether `l1` changed.
 */
export async function updateTree(img: Qcow2Image, l1: Buffer, l1Size: number, delta: number, tables: Map<number, Buffer>): Promise<boolean> {
  const cs = img.clusterSize;
  const rc = img.refcounts;
  let l1Changed = false;
  for (let i = 0; i < l1Size; i++) {
    const e = decodeL1(l1, i);
    if (!e.offset) continue;
    const t = await img.l2Table(e.offset);
    let dirty = false;
    for (let j = 0; j < img.l2Entries; j++) {
      const x = decodeL2(t, j, img.geo);
      if (x.type === 'compressed') {
        if (delta) await rc.update(x.compressedOffset, x.compressedSize, delta);
        continue;
      }
      if (x.type !== 'normal' && x.type !== 'zero-alloc') continue;
      if (delta && !img.externalData) await rc.update(x.offset, cs, delta);
      const count = img.externalData ? 1 : await rc.get(x.offset / cs);
      if ((count === 1) !== x.copied) {
        encodeL2(t, j, img.geo, { offset: x.offset, copied: count === 1, zero: x.type === 'zero-alloc', allocMask: x.allocMask, zeroMask: x.zeroMask });
        dirty = true;
      }
    }
    if (dirty) tables.set(e.offset, t);
    if (delta) await rc.update(e.offset, cs, delta);
    const own = await rc.get(e.offset / cs);
    if (own === 0) continue;
    if ((own === 1) !== e.copied) {
      encodeL1(l1, i, e.offset, own === 1);
      l1Changed = true;
    }
  }
  return l1Changed;
}

/** Write the refcount changes, the changed L2 tables still in use, and `extra` writes
 *  together, then make them durable. */
export async function writeBatch(img: Qcow2Image, tables: Map<number, Buffer>, extra: (() => Promise<void>)[] = []): Promise<void> {
  const live: [number, Buffer][] = [];
  for (const [offset, t] of tables) if ((await img.refcounts.get(offset / img.clusterSize)) > 0) live.push([offset, t]);
  await Promise.all([img.refcounts.commit(), ...live.map(([offset, t]) => img.writeMeta(offset, t)), ...extra.map((f) => f())]);
  await img.barrier();
}

/** The outcome of reading the snapshot table for a check (QEMU qcow2_check_read_snapshot_table). */
export interface SnapshotTableCheck {
  /** Findings in order; an entry starting with ERROR_REPORT is an error report (program name). */
  messages: string[];
  corruptions: number;
  corruptionsFixed: number;
  /** The table could not be read: strerror text; the check stops here ("Check failed"). */
  failed?: string;
}

/**
 * Read the snapshot table as a check does (the open for check leaves it unread, so a broken
 * table does not stop the check): validate the pointer, read the entries, and with -r all cut
 * off what QEMU cuts off (snapshots past 65536 or past 64 MiB, which then leak until the
 * refcount check frees them; extra data past 1 KiB, dropped when the table is rewritten later).
 * On success img.snapshots is the table read.
 */
export async function readSnapshotTableForCheck(img: Qcow2Image, repairAll: boolean, errorReport: string): Promise<SnapshotTableCheck> {
  const h = img.header;
  const out: SnapshotTableCheck = { messages: [], corruptions: 0, corruptionsFixed: 0 };
  img.snapshots = [];
  img.snapshotTableBytes = 0;
  let nb = h.nbSnapshots;
  let reduced = 0;
  if (nb > MAX_SNAPSHOTS && repairAll) {
    out.messages.push(`Discarding ${nb - MAX_SNAPSHOTS} overhanging snapshots`);
    reduced += nb - MAX_SNAPSHOTS;
    nb = MAX_SNAPSHOTS;
  }
  // The pointer (QEMU qcow2_validate_table on "snapshot table", 40-byte entries).
  let bad: [string, 'EFBIG' | 'EINVAL'] | undefined;
  if (nb > MAX_SNAPSHOTS) bad = ['snapshot table too large', 'EFBIG'];
  else if (h.snapshotsOffset % img.clusterSize !== 0 || h.snapshotsOffset > Number.MAX_SAFE_INTEGER - nb * 40) bad = ['snapshot table offset invalid', 'EINVAL'];
  if (bad) {
    let m = `${errorReport}ERROR ${bad[0]}`;
    if (nb > MAX_SNAPSHOTS) m += `\nYou can force-remove all ${nb - MAX_SNAPSHOTS} overhanging snapshots with qemu-img check -r all`;
    out.messages.push(m);
    out.failed = strerror(bad[1]);
    return out;
  }
  const repair = { reduced: 0, extraDropped: 0, messages: out.messages };
  try {
    if (nb > 0) {
      const t = await readSnapshotTable(img.file, h.snapshotsOffset, nb, img.clusterSize, img.ctx, repairAll ? repair : undefined);
      for (const sn of t.snapshots) sn.diskSize ??= h.size;
      img.snapshots = t.snapshots;
      img.snapshotTableBytes = t.bytes;
    }
  } catch (e) {
    if (!(e instanceof BlockError)) throw e;
    out.messages.push(`${errorReport}ERROR failed to read the snapshot table: ${e.message}${e.hint ? `\n${e.hint.replace(/\n$/, '')}` : ''}`);
    out.failed = strerror(e.errno ?? 'EIO');
    return out;
  }
  reduced += repair.reduced;
  out.corruptions += reduced + repair.extraDropped;
  if (reduced) {
    // The header gets the new count now: the refcount check relies on it (and frees the leak).
    h.nbSnapshots = img.snapshots.length;
    await img.writeHeader();
    out.corruptionsFixed += reduced;
    out.corruptions -= reduced;
  }
  return out;
}

/** Rewrite the snapshot table at a new place and point the header at it; free the old one. */
/** Write the whole table anew (every entry with all the extra data Platter knows) and free the
 *  old one. */
export async function writeSnapshotTable(img: Qcow2Image): Promise<void> {
  const cs = img.clusterSize;
  const buf = encodeSnapshotTable(img.snapshots);
  if (buf.length > MAX_SNAPSHOT_TABLE_BYTES) throw unsupported('Snapshot table too large', img.ctx);
  let offset = 0;
  if (buf.length > 0) {
    offset = await img.refcounts.allocate(Math.ceil(buf.length / cs));
    await img.barrier();
    await img.writeMeta(offset, buf);
    await img.barrier();
  }
  const oldOffset = img.header.snapshotsOffset;
  const oldBytes = img.snapshotTableBytes;
  img.header.nbSnapshots = img.snapshots.length;
  img.header.snapshotsOffset = offset;
  await img.writeHeader();
  img.snapshotTableBytes = buf.length;
  for (const sn of img.snapshots) sn.extraDataSize = SNAPSHOT_EXTRA_V3 + sn.extraTail.length;
  if (oldOffset && oldBytes) {
    await img.freeClusters(oldOffset, oldBytes);
    await img.refcounts.commit();
  }
}

/** A step's failure in QEMU's words: "<what>: <cause>". */
function failedTo(what: string, e: unknown): unknown {
  return e instanceof BlockError ? new BlockError(e.kind, `${what}: ${e.message}`, e.context, { cause: e }) : e;
}

/** What qemu-img says of a snapshot that is not there, by operation (qcow2_snapshot_goto's
 *  -ENOENT through bdrv_snapshot_goto; qcow2_snapshot_delete's own words). */
const APPLY_NOT_FOUND = 'Failed to load snapshot: No such file or directory';
const DELETE_NOT_FOUND = 'snapshot not found';

function find(img: Qcow2Image, idOrName: string, missing = `Can't find the snapshot '${idOrName}'`): Snapshot {
  const s = img.snapshots.find((x) => x.id === idOrName) ?? img.snapshots.find((x) => x.name === idOrName);
  if (!s) throw notFound(missing, img.ctx);
  return s;
}

function toInfo(s: Snapshot): SnapshotInfo {
  return {
    id: s.id,
    name: s.name,
    vmStateSize: s.vmStateSize,
    dateSec: s.dateSec,
    dateNsec: s.dateNsec,
    vmClockNsec: s.vmClockNsec,
    ...(s.icount !== undefined ? { icount: s.icount } : {}),
    ...(s.diskSize !== undefined ? { diskSize: s.diskSize } : {}),
  };
}

/** A snapshot's L1 table, checked first (validateSnapshotL1). */
export async function readSnapshotL1(img: Qcow2Image, s: Snapshot): Promise<Buffer> {
  validateSnapshotL1(s, img.clusterSize, img.file.size, img.ctx);
  return s.l1Size ? img.file.read(s.l1TableOffset, s.l1Size * L1E_SIZE) : Buffer.alloc(0);
}

/** "Failed to load snapshot: Invalid argument", after the reason on its own line (what
 *  qemu-img prints when applying a snapshot whose L1 table is bad). */
function loadFailure(e: unknown): unknown {
  if (!(e instanceof BlockError) || !e.errno) return e;
  return new BlockError(e.kind, `Failed to load snapshot: ${strerror(e.errno)}`, e.context, { cause: e, reportedBefore: [e.message] });
}

export class Qcow2Snapshots implements SnapshotCapability {
  readonly #node: Qcow2Node;

  constructor(node: Qcow2Node) {
    this.#node = node;
  }

  async list(): Promise<SnapshotInfo[]> {
    return this.#node.img.snapshots.map(toInfo);
  }

  async create(info: { name: string; id?: string; dateSec: number; dateNsec: number; vmClockNsec?: number; vmStateSize?: number }): Promise<SnapshotInfo> {
    const node = this.#node;
    const img = node.img;
    if (img.readOnly) throw invalidArgument('Cannot create a snapshot in a read-only image', img.ctx);
    if (info.vmStateSize) throw unsupported('Snapshots with VM state are not supported', img.ctx);
    await node.prepareMetadataChange();
    return node.exclusive(async () => {
      if (img.snapshots.length >= MAX_SNAPSHOTS) throw new BlockError('Unsupported', `Too many snapshots (at most ${MAX_SNAPSHOTS})`, img.ctx, { errno: 'EFBIG' });
      let id = info.id;
      if (id === undefined || id === '') {
        let max = 0;
        for (const s of img.snapshots) if (/^\d+$/.test(s.id)) max = Math.max(max, Number(s.id));
        id = String(max + 1);
      }
      if (img.snapshots.some((s) => s.id === id)) throw invalidArgument(`Could not create snapshot '${info.name}': snapshot ID '${id}' already exists`, img.ctx, { code: 'Worded' });
      const cs = img.clusterSize;
      const l1Size = img.l1Size;
      let l1Offset = 0;
      if (l1Size > 0) {
        const copy = Buffer.alloc(Math.ceil((l1Size * L1E_SIZE) / cs) * cs);
        img.l1.copy(copy, 0, 0, l1Size * L1E_SIZE);
        for (let i = 0; i < l1Size; i++) {
          const e = decodeL1(copy, i);
          if (e.offset) encodeL1(copy, i, e.offset, false);
        }
        l1Offset = await img.refcounts.allocate(copy.length / cs);
        await img.barrier();
        await img.writeMeta(l1Offset, copy);
        await img.barrier();
      }
      const tables = new Map<number, Buffer>();
      const l1Changed = await updateTree(img, img.l1, l1Size, +1, tables);
      await writeBatch(img, tables, l1Changed ? [() => img.writeL1Entries(0, l1Size)] : []);
      const sn: Snapshot = {
        l1TableOffset: l1Offset,
        l1Size,
        id,
        name: info.name,
        dateSec: info.dateSec,
        dateNsec: info.dateNsec,
        vmClockNsec: info.vmClockNsec ?? 0,
        vmStateSize: 0,
        diskSize: img.size,
        icount: 0,
        extraTail: Buffer.alloc(0),
      };
      img.snapshots.push(sn);
      try {
        await writeSnapshotTable(img);
      } catch (e) {
        img.snapshots.pop();
        throw e;
      }
      return toInfo(sn);
    });
  }

  async apply(idOrName: string): Promise<void> {
    const node = this.#node;
    const img = node.img;
    await node.prepareMetadataChange();
    await node.exclusive(async () => {
      const sn = find(img, idOrName, APPLY_NOT_FOUND);
      if (sn.diskSize !== undefined && sn.diskSize !== img.size) {
        throw unsupported('qcow2: Loading snapshots with different disk size is not supported', img.ctx);
      }
      const snL1 = await readSnapshotL1(img, sn).catch((e) => {
        throw loadFailure(e);
      });
      if (sn.l1Size > img.l1Size) await growL1(img, sn.l1Size);
      // References for what becomes active, the switch, and the old active tree's release.
      const tables = new Map<number, Buffer>();
      const snChanged = await updateTree(img, snL1, sn.l1Size, +1, tables);
      const old = Buffer.from(img.l1);
      const fresh = Buffer.alloc(img.l1Size * L1E_SIZE);
      snL1.copy(fresh, 0, 0, Math.min(snL1.length, fresh.length));
      img.l1.set(fresh);
      await updateTree(img, old, old.length / L1E_SIZE, -1, tables);
      await updateTree(img, img.l1, img.l1Size, 0, tables);
      await writeBatch(img, tables, [() => img.writeL1Entries(0, img.l1Size), ...(snChanged ? [() => img.writeMeta(sn.l1TableOffset, snL1)] : [])]);
    });
  }

  /** Delete a snapshot in QEMU's order (qcow2_snapshot_delete): the snapshot list first, then
   *  the references its tables held, then the COPIED flags. A failure after the list changed
   *  leaves only leaks, each step's error worded as QEMU's. */
  async delete(idOrName: string): Promise<void> {
    const node = this.#node;
    const img = node.img;
    await node.prepareMetadataChange();
    await node.exclusive(async () => {
      const sn = find(img, idOrName, DELETE_NOT_FOUND);
      const snL1 = await readSnapshotL1(img, sn);
      const index = img.snapshots.indexOf(sn);
      img.snapshots.splice(index, 1);
      try {
        await writeSnapshotTable(img);
      } catch (e) {
        img.snapshots.splice(index, 0, sn);
        throw failedTo('Failed to remove snapshot from snapshot list', e);
      }
      const tables = new Map<number, Buffer>();
      try {
        await updateTree(img, snL1, sn.l1Size, -1, tables);
      } catch (e) {
        throw failedTo('Failed to free the cluster and L1 table', e);
      }
      if (sn.l1Size) await img.freeClusters(sn.l1TableOffset, sn.l1Size * L1E_SIZE);
      try {
        const l1Changed = await updateTree(img, img.l1, img.l1Size, 0, tables);
        await writeBatch(img, tables, l1Changed ? [() => img.writeL1Entries(0, img.l1Size)] : []);
      } catch (e) {
        throw failedTo('Failed to update snapshot status in disk', e);
      }
    });
  }

  async openView(idOrName: string): Promise<NodeImpl> {
    const img = this.#node.img;
    const sn = find(img, idOrName);
    const l1 = await readSnapshotL1(img, sn).catch((e) => {
      throw e instanceof BlockError ? new BlockError(e.kind, `Failed to load snapshot: ${e.message}`, e.context, { cause: e }) : e;
    });
    return this.#node.viewOf(l1, sn.l1Size, sn.diskSize ?? img.size);
  }
}

// Codec for the qcow2 snapshot table (docs/interop/qcow2.txt "Snapshots"): one variable-length
// entry per internal snapshot: a fixed 40-byte part, extra data (vm_state_size_large,
// disk_size, icount), the id and name strings, padding to 8 bytes. Unknown extra data is kept.

import type { BlockNode } from '../../block/node.ts';
import { BlockError, invalidImage, type BlockErrorContext } from '../../errors.ts';
import { L1E_SIZE } from './entries.ts';
import { MAX_L1_BYTES } from './validate.ts';

/** Fixed part of a snapshot table entry. */
const SNAPSHOT_FIXED = 40;
/** QEMU's limit on one entry's extra data (QCOW_MAX_SNAPSHOT_EXTRA_DATA). */
export const MAX_SNAPSHOT_EXTRA = 1024;
/** Extra data QEMU 7.2 writes: vm_state_size_large, disk_size, icount. */
export const SNAPSHOT_EXTRA_V3 = 24;
/** Version 3 requires at least vm_state_size_large and disk_size. */
export const SNAPSHOT_EXTRA_V3_MIN = 16;
/** Upper bound of the whole table (QEMU: QCOW_MAX_SNAPSHOTS_SIZE, 64 MiB). */
export const MAX_SNAPSHOT_TABLE_BYTES = 64 << 20;
/** The largest entry: fixed part, extra data, id and name of 64 KiB each at most. */
const MAX_ENTRY_BYTES = SNAPSHOT_FIXED + MAX_SNAPSHOT_EXTRA + 2 * 0xffff;
/** Read the table through a window of this size. */
const READ_WINDOW = 64 << 10;

/**
 * A snapshot's L1 table before use (QEMU qcow2_validate_table): not larger than the active
 * L1 limit (EFBIG), cluster aligned (EINVAL), and, Platter's own rule, inside the file.
 */
export function validateSnapshotL1(sn: { l1TableOffset: number; l1Size: number }, clusterSize: number, fileSize: number, ctx: BlockErrorContext): void {
  if (sn.l1Size * L1E_SIZE > MAX_L1_BYTES) throw new BlockError('InvalidImage', 'Snapshot L1 table too large', ctx, { errno: 'EFBIG' });
  if (sn.l1TableOffset % clusterSize !== 0 || (sn.l1Size > 0 && (sn.l1TableOffset < clusterSize || sn.l1TableOffset + sn.l1Size * L1E_SIZE > fileSize))) {
    throw new BlockError('InvalidImage', 'Snapshot L1 table offset invalid', ctx, { errno: 'EINVAL' });
  }
}

export interface Snapshot {
  l1TableOffset: number;
  l1Size: number;
  id: string;
  name: string;
  dateSec: number;
  dateNsec: number;
  vmClockNsec: number;
  vmStateSize: number;
  diskSize?: number;
  /** -1 / undefined when not recorded. */
  icount?: number;
  /** Extra data past the fields we know, preserved. */
  extraTail: Buffer;
  /** Bytes of extra data the entry has on disk (v3 requires at least SNAPSHOT_EXTRA_V3_MIN). */
  extraDataSize?: number;
}

/** An id or name as QEMU keeps it: a C string, so it ends at the first NUL byte (QEMU then
 *  writes back only that much). */
function cString(b: Buffer): string {
  const end = b.indexOf(0);
  return b.toString('utf8', 0, end < 0 ? b.length : end);
}

/** QEMU's bound on the table's extent in the file (offset - snapshots_offset <= INT_MAX). */
const MAX_TABLE_EXTENT = 2 ** 31 - 1;

/** What a repairing read (qemu-img check -r all) changed in the table it read. */
export interface SnapshotTableRepair {
  /** Snapshots cut off the end because the table passed 64 MiB. */
  reduced: number;
  /** Entries whose extra data was cut down to MAX_SNAPSHOT_EXTRA bytes. */
  extraDropped: number;
  /** What was discarded, in QEMU's words (qcow2_do_read_snapshots prints these). */
  messages: string[];
}

/**
 * Read and decode `count` entries at `offset`. With `repair` (qemu-img check -r all), an entry
 * with too much extra data keeps only the first MAX_SNAPSHOT_EXTRA bytes of it, and the
 * snapshots past the 64 MiB limit are cut off (counted in `repair`), instead of failing.
 */
export async function readSnapshotTable(file: BlockNode, offset: number, count: number, clusterSize: number, ctx: BlockErrorContext, repair?: SnapshotTableRepair): Promise<{ snapshots: Snapshot[]; bytes: number }> {
  const out: Snapshot[] = [];
  let pos = offset;
  /** The table's length with cut-down extra data counted at its new size. */
  let tableLength = 0;
  let win: Buffer = Buffer.alloc(0);
  let winStart = offset;
  const need = async (at: number, len: number): Promise<Buffer> => {
    // Reads stay within the table limit plus one entry (the limit itself is checked per entry);
    // a repairing read skips oversized extra data, so it is bounded by the extent check.
    if (!repair && at + len - offset > MAX_SNAPSHOT_TABLE_BYTES + MAX_ENTRY_BYTES) throw invalidImage(`Snapshot table too large (more than ${MAX_SNAPSHOT_TABLE_BYTES} bytes)`, ctx);
    // Past the end of the file the table reads as zeros, as QEMU's block layer reads it
    // (entries of zeros: no id, no name, no L1 table).
    if (at < winStart || at + len > winStart + win.length) {
      winStart = at;
      const want = Math.max(len, READ_WINDOW);
      win = Buffer.alloc(want);
      const have = Math.max(0, Math.min(want, file.size - at));
      if (have > 0) (await file.read(at, have)).copy(win);
    }
    return win.subarray(at - winStart, at - winStart + len);
  };
  for (let i = 0; i < count; i++) {
    const entryStart = pos;
    tableLength = Math.ceil(tableLength / 8) * 8;
    const f = await need(pos, SNAPSHOT_FIXED);
    const l1TableOffset = Number(f.readBigUInt64BE(0));
    const l1Size = f.readUInt32BE(8);
    const idSize = f.readUInt16BE(12);
    const nameSize = f.readUInt16BE(14);
    const dateSec = f.readUInt32BE(16);
    const dateNsec = f.readUInt32BE(20);
    const vmClockNsec = Number(f.readBigUInt64BE(24));
    const vmState32 = f.readUInt32BE(32);
    const extraSize = f.readUInt32BE(36);
    let keptExtra = extraSize;
    if (extraSize > MAX_SNAPSHOT_EXTRA) {
      if (!repair) {
        throw new BlockError('InvalidImage', `Too much extra metadata in snapshot table entry ${i}`, ctx, { errno: 'EFBIG', hint: 'You can force-remove this extra metadata with qemu-img check -r all\n' });
      }
      repair.messages.push(`Discarding too much extra metadata in snapshot table entry ${i} (${extraSize} > ${MAX_SNAPSHOT_EXTRA})`);
      repair.extraDropped++;
      keptExtra = MAX_SNAPSHOT_EXTRA;
    }
    // Each snapshot's L1 table is checked where it is used (validateSnapshotL1), as QEMU does:
    // a bad entry leaves the image usable and the other snapshots reachable.
    let p = pos + SNAPSHOT_FIXED;
    const extra = Buffer.from(await need(p, keptExtra));
    p += extraSize;
    const id = cString(await need(p, idSize));
    p += idSize;
    const name = cString(await need(p, nameSize));
    p += nameSize;
    tableLength += SNAPSHOT_FIXED + keptExtra + idSize + nameSize;
    // The table may not pass 64 MiB with this entry (QEMU counts it before the padding).
    if (tableLength > MAX_SNAPSHOT_TABLE_BYTES || p - offset > MAX_TABLE_EXTENT) {
      if (!repair) {
        throw new BlockError('InvalidImage', 'Snapshot table is too big', ctx, { errno: 'EFBIG', hint: `You can force-remove all ${count - i} overhanging snapshots with qemu-img check -r all\n` });
      }
      // This entry and all after it go; their clusters leak until the refcount check frees them.
      repair.messages.push(`Discarding ${count - i} overhanging snapshots (snapshot table is too big)`);
      repair.reduced += count - i;
      pos = entryStart;
      break;
    }
    p = offset + Math.ceil((p - offset) / 8) * 8;
    const sn: Snapshot = { l1TableOffset, l1Size, id, name, dateSec, dateNsec, vmClockNsec, vmStateSize: vmState32, extraTail: Buffer.alloc(0), extraDataSize: keptExtra };
    if (keptExtra >= 8) sn.vmStateSize = Number(extra.readBigUInt64BE(0));
    if (keptExtra >= 16) sn.diskSize = Number(extra.readBigUInt64BE(8));
    if (keptExtra >= 24) {
      const ic = extra.readBigInt64BE(16);
      if (ic >= 0n) sn.icount = Number(ic);
    }
    if (keptExtra > SNAPSHOT_EXTRA_V3) sn.extraTail = extra.subarray(SNAPSHOT_EXTRA_V3);
    out.push(sn);
    pos = p;
  }
  return { snapshots: out, bytes: pos - offset };
}

/** Encode the whole table. */
export function encodeSnapshotTable(snapshots: readonly Snapshot[]): Buffer {
  const parts: Buffer[] = [];
  for (const s of snapshots) {
    // At most 65535 bytes each (a name read with invalid UTF-8 may have grown when decoded).
    const id = Buffer.from(s.id, 'utf8').subarray(0, 0xffff);
    const name = Buffer.from(s.name, 'utf8').subarray(0, 0xffff);
    const extraSize = SNAPSHOT_EXTRA_V3 + s.extraTail.length;
    const len = Math.ceil((SNAPSHOT_FIXED + extraSize + id.length + name.length) / 8) * 8;
    const b = Buffer.alloc(len);
    b.writeBigUInt64BE(BigInt(s.l1TableOffset), 0);
    b.writeUInt32BE(s.l1Size, 8);
    b.writeUInt16BE(id.length, 12);
    b.writeUInt16BE(name.length, 14);
    b.writeUInt32BE(s.dateSec >>> 0, 16);
    b.writeUInt32BE(s.dateNsec >>> 0, 20);
    b.writeBigUInt64BE(BigInt(s.vmClockNsec), 24);
    b.writeUInt32BE(s.vmStateSize > 0xffffffff ? 0 : s.vmStateSize, 32);
    b.writeUInt32BE(extraSize, 36);
    b.writeBigUInt64BE(BigInt(s.vmStateSize), 40);
    b.writeBigUInt64BE(BigInt(s.diskSize ?? 0), 48);
    b.writeBigInt64BE(s.icount === undefined ? -1n : BigInt(s.icount), 56);
    s.extraTail.copy(b, 64);
    id.copy(b, SNAPSHOT_FIXED + extraSize);
    name.copy(b, SNAPSHOT_FIXED + extraSize + id.length);
    parts.push(b);
  }
  return Buffer.concat(parts);
}

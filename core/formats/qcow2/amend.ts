// qemu-img amend for qcow2 (QEMU qcow2_amend_options as inspiration): compat 0.10 <-> 1.1
// (downgrade expands zero clusters first, as QEMU does), lazy_refcounts on/off, size (resize),
// backing_file/backing_fmt. Changing refcount_bits or the data file is refused with a clear
// error. Runs with the node locked exclusively.

import type { AmendContext } from '../../block/types.ts';
import type { OptionValues } from '../../block/options-schema.ts';
import { BlockError, invalidArgument, strerror, unsupported } from '../../errors.ts';
import { readSnapshotL1, writeSnapshotTable } from './snapshots.ts';
import { SNAPSHOT_EXTRA_V3_MIN } from './snapshots-table.ts';
import { COMPAT_LAZY_REFCOUNTS, COMPRESSION_ZLIB, HEADER_V3_LENGTH, INCOMPAT_DIRTY, MAX_BACKING_NAME } from './header.ts';
import { decodeL1, decodeL2, encodeL2 } from './entries.ts';
import { l2ForWrite, writeL2Span } from './cluster-map.ts';
import type { Qcow2Node } from './node.ts';
import type { Qcow2Image } from './image.ts';
import { versionOf } from './options.ts';
import { maxRefcount, writeRefcountEntry } from './refcount.ts';
import { encodeReftableEntry, L1E_SIZE } from './entries.ts';

/** The hint amend's messages end with (QEMU's words for amend, not create's). */
const COMPAT_HINT = '(use compat=1.1 or greater)';

export async function amendImage(node: Qcow2Node, o: OptionValues, ctx: AmendContext): Promise<void> {
  const img = node.img;
  const h = img.header;
  if (o['compat'] !== undefined && !['0.10', 'v2', '1.1', 'v3'].includes(String(o['compat']))) throw invalidArgument(`Unknown compatibility level ${String(o['compat'])}`, {}, { code: 'Worded' });
  const target = o['compat'] !== undefined ? versionOf(String(o['compat'])) : h.version;
  const lazy = o['lazy_refcounts'] !== undefined ? o['lazy_refcounts'] === true : (h.compatible & COMPAT_LAZY_REFCOUNTS) !== 0n;
  const newBits = o['refcount_bits'] !== undefined ? Number(o['refcount_bits']) : 1 << h.refcountOrder;
  if (!Number.isInteger(Math.log2(newBits)) || newBits < 1 || newBits > 64) throw invalidArgument('Refcount width must be a power of two and may not exceed 64 bits', img.ctx);
  if (o['data_file'] !== undefined || o['data_file_raw'] !== undefined) throw unsupported('Changing the external data file with amend is not supported yet', img.ctx);
  if (o['size'] !== undefined) throw unsupported("Use 'resize' to change the size of a qcow2 image", img.ctx);

  // QEMU's order (qcow2_amend_options): upgrade first, then refcount width, backing file and
  // lazy refcounts, downgrade last (so what 0.10 cannot hold is gone by then).
  if (target > h.version) {
    h.version = 3;
    h.headerLength = HEADER_V3_LENGTH;
    img.geo.version = 3;
    await img.writeHeader();
    // v3 snapshot entries need vm_state_size_large and disk_size: rewrite a table that lacks them.
    if (img.snapshots.some((sn) => (sn.extraDataSize ?? 0) < SNAPSHOT_EXTRA_V3_MIN)) await writeSnapshotTable(img);
  }
  if (newBits !== 1 << h.refcountOrder) {
    if (target < 3 && newBits !== 16) throw invalidArgument(`Refcount widths other than 16 bits require compatibility level 1.1 or above ${COMPAT_HINT}`, img.ctx);
    await changeRefcountWidth(img, newBits, ctx.onProgress);
  }
  if (o['backing_file'] !== undefined || o['backing_fmt'] !== undefined) {
    const file = o['backing_file'] !== undefined ? String(o['backing_file']) : h.backingFile;
    const fmt = o['backing_fmt'] !== undefined ? String(o['backing_fmt']) : h.backingFormat;
    if (file !== undefined && Buffer.byteLength(file) > MAX_BACKING_NAME) throw invalidArgument('Backing file name too long', img.ctx);
    if (file) h.backingFile = file;
    else delete h.backingFile;
    if (fmt && file) h.backingFormat = fmt;
    else delete h.backingFormat;
    await img.writeHeader();
  }
  if (lazy !== ((h.compatible & COMPAT_LAZY_REFCOUNTS) !== 0n)) {
    if (lazy && target < 3) throw invalidArgument(`Lazy refcounts only supported with compatibility level 1.1 and above ${COMPAT_HINT}`, img.ctx);
    await img.file.flush();
    if (lazy) h.compatible |= COMPAT_LAZY_REFCOUNTS;
    else {
      h.compatible &= ~COMPAT_LAZY_REFCOUNTS;
      h.incompatible &= ~INCOMPAT_DIRTY;
    }
    await img.writeHeader();
  }
  if (target < h.version) {
    if (h.refcountOrder !== 4) throw invalidArgument('compat=0.10 requires refcount_bits=16', img.ctx);
    if (img.externalData) throw invalidArgument('Cannot downgrade an image with a data file', img.ctx);
    if (img.geo.extendedL2) throw invalidArgument('Cannot downgrade an image with extended L2 entries', img.ctx);
    if (h.compressionType !== COMPRESSION_ZLIB) throw invalidArgument('Cannot downgrade an image with a compression type other than zlib', img.ctx);
    if (img.snapshots.length > 0) await refuseSnapshotZeroClusters(img);
    await expandZeroClusters(img, node.openContext.backing() !== undefined, ctx);
    h.incompatible = 0n;
    h.compatible = 0n;
    h.autoclear = 0n;
    h.version = 2;
    h.headerLength = 72;
    img.geo.version = 2;
    await img.file.flush();
    await img.writeHeader();
  }
}

async function refuseSnapshotZeroClusters(img: Qcow2Image): Promise<void> {
  for (const sn of img.snapshots) {
    const l1 = await readSnapshotL1(img, sn).catch((e) => {
      if (!(e instanceof BlockError) || !e.errno) throw e;
      throw new BlockError(e.kind, `Failed to turn zero into data clusters: ${strerror(e.errno)}`, e.context, { cause: e, reportedBefore: [e.message] });
    });
    for (let i = 0; i < sn.l1Size; i++) {
      const e = decodeL1(l1, i);
      if (!e.offset) continue;
      const t = await img.l2Table(e.offset);
      for (let j = 0; j < img.l2Entries; j++) {
        const x = decodeL2(t, j, img.geo);
        if (x.type === 'zero-plain' || x.type === 'zero-alloc') {
          throw unsupported(`Cannot downgrade: snapshot '${sn.name}' has zero clusters (not supported yet)`, img.ctx);
        }
      }
    }
  }
}

/** Version 2 has no zero flag: zero clusters become unallocated (no backing) or zero-filled
 *  allocated clusters (with a backing file, so the backing does not show through). */
async function expandZeroClusters(img: Qcow2Image, hasBacking: boolean, ctx: AmendContext): Promise<void> {
  const cs = img.clusterSize;
  for (let i = 0; i < img.l1Size; i++) {
    if (ctx.signal?.aborted) throw invalidArgument('Operation cancelled', img.ctx);
    const e = decodeL1(img.l1, i);
    if (!e.offset) continue;
    const t = await img.l2Table(e.offset);
    const zeros: number[] = [];
    for (let j = 0; j < img.l2Entries; j++) {
      const x = decodeL2(t, j, img.geo);
      if (x.type === 'zero-plain' || x.type === 'zero-alloc') zeros.push(j);
    }
    if (zeros.length === 0) continue;
    const l2 = await l2ForWrite(img, i);
    for (const j of zeros) {
      const x = decodeL2(l2.table, j, img.geo);
      if (x.type === 'zero-alloc' && x.copied) {
        await img.writeMeta(x.offset, Buffer.alloc(cs));
        encodeL2(l2.table, j, img.geo, { offset: x.offset, copied: true });
      } else if (hasBacking) {
        const host = await img.refcounts.allocate(1);
        await img.writeMeta(host, Buffer.alloc(cs));
        await img.barrier();
        if (x.type === 'zero-alloc') await img.refcounts.update(x.offset, cs, -1);
        encodeL2(l2.table, j, img.geo, { offset: host, copied: true });
      } else {
        if (x.type === 'zero-alloc') await img.refcounts.update(x.offset, cs, -1);
        encodeL2(l2.table, j, img.geo, { offset: 0, copied: false });
      }
      await writeL2Span(img, l2, j, 1);
    }
    await img.refcounts.commit();
  }
}

/**
 * Rewrite the refcount structures with `bits`-bit entries (QEMU's qcow2_change_refcount_order,
 * simpler): the new table and blocks go after the end of the file, the header switches to them
 * in one write, and the old ones become free. Until that header write the old structures stay
 * valid, so a crash only leaves unreferenced clusters past the old end.
 */
/**
 * How many passes over the old refcount table QEMU's qcow2_change_refcount_order makes to
 * allocate the new refblocks and reftable (it repeats while a pass allocated anything, since
 * its own allocations may need refblocks too). Replayed on a copy of the refcounts with QEMU's
 * allocator (first free clusters from a moving free index) so that amend -p reports progress
 * as qemu-img does, walks and all.
 */
function allocationWalks(values: readonly number[], coverage: number, newPerBlock: number, cs: number): number {
  const v = values.slice();
  let freeIndex = 0;
  const alloc = (n: number): number => {
    for (;;) {
      const start = freeIndex;
      let ok = true;
      for (let i = 0; i < n; i++) {
        if (v[freeIndex++]) {
          ok = false;
          break;
        }
      }
      if (ok) {
        for (let i = 0; i < n; i++) v[start + i] = 1;
        return start;
      }
    }
  };
  const reftable: number[] = [];
  let reftableSize = 0;
  let tableAt = -1;
  let tableClusters = 0;
  for (let walks = 1; ; walks++) {
    let allocated = false;
    // Past the last cluster in use every new refblock would be empty (`v` grows as it allocates).
    for (let j = 0; j * newPerBlock < Math.min(coverage, v.length); j++) {
      let empty = true;
      for (let c = j * newPerBlock; c < Math.min((j + 1) * newPerBlock, coverage, v.length) && empty; c++) if (v[c]) empty = false;
      if (empty) continue;
      if (j >= reftableSize) reftableSize = Math.ceil((j + 1) / (cs / L1E_SIZE)) * (cs / L1E_SIZE);
      if (!reftable[j]) {
        reftable[j] = alloc(1) + 1;
        allocated = true;
      }
    }
    if (!allocated || walks > 64) return walks;
    if (tableAt >= 0) {
      for (let i = 0; i < tableClusters; i++) v[tableAt + i] = 0;
      freeIndex = Math.min(freeIndex, tableAt);
    }
    tableClusters = Math.ceil((reftableSize * L1E_SIZE) / cs);
    tableAt = alloc(tableClusters);
  }
}

/** The status QEMU's refcount width change reports: per walk over the old reftable, one step
 *  per entry and one at its end; the walks so far plus at least the ones still due as total. */
function reportWalks(onProgress: (done: number, total: number) => void, walks: number, reftableEntries: number): void {
  const r = reftableEntries;
  const walk = (index: number, total: number) => {
    for (let i = 0; i < r; i++) onProgress(index * r + i, total * r);
    onProgress((index + 1) * r, total * r);
  };
  for (let w = 0; w < walks; w++) walk(w, Math.max(w + 2, 3));
  walk(walks, walks + 1);
}

async function changeRefcountWidth(img: Qcow2Image, bits: number, onProgress?: (done: number, total: number) => void): Promise<void> {
  const cs = img.clusterSize;
  const old = img.refcounts;
  const nb = Math.ceil(img.file.size / cs);
  const values = new Array<number>(nb);
  for (let c = 0; c < nb; c++) values[c] = await old.get(c);
  const max = maxRefcount(bits);
  for (let c = 0; c < nb; c++) {
    if (values[c]! > max) {
      throw invalidArgument(`Cannot decrease refcount entry width to ${bits} bits: Cluster at offset 0x${(c * cs).toString(16)} has a refcount of ${values[c]}`, img.ctx);
    }
  }
  if (onProgress) {
    const reftableEntries = (old.tableClusters * cs) / L1E_SIZE;
    reportWalks(onProgress, allocationWalks(values, reftableEntries * old.perBlock, (cs * 8) / bits, cs), reftableEntries);
  }
  // The old table and blocks are freed by the switch.
  for (let i = 0; i < old.tableClusters; i++) values[old.tableOffset / cs + i] = 0;
  for (const b of old.table) if (b && b / cs < nb) values[b / cs] = 0;
  const perBlock = (cs * 8) / bits;
  let blocks = 0;
  let tableClusters = 0;
  for (;;) {
    const total = nb + blocks + tableClusters;
    const nextBlocks = Math.ceil(total / perBlock);
    const nextTable = Math.ceil((nextBlocks * L1E_SIZE) / cs);
    if (nextBlocks === blocks && nextTable === tableClusters) break;
    blocks = nextBlocks;
    tableClusters = nextTable;
  }
  const tableAt = nb;
  const blocksAt = nb + tableClusters;
  const table = Buffer.alloc(tableClusters * cs);
  for (let b = 0; b < blocks; b++) {
    const buf = Buffer.alloc(cs);
    for (let i = 0; i < perBlock; i++) {
      const c = b * perBlock + i;
      const v = c < nb ? values[c]! : c < nb + tableClusters + blocks ? 1 : 0;
      if (v) writeRefcountEntry(buf, i, bits, v);
    }
    await img.writeMeta((blocksAt + b) * cs, buf);
    encodeReftableEntry(table, b, (blocksAt + b) * cs);
  }
  await img.writeMeta(tableAt * cs, table);
  await img.file.flush();
  img.header.refcountOrder = Math.log2(bits);
  img.header.refcountTableOffset = tableAt * cs;
  img.header.refcountTableClusters = tableClusters;
  await img.writeHeader();
  img.refcounts = img.makeRefcounts(img.header.refcountOrder, tableAt * cs, tableClusters, table);
}

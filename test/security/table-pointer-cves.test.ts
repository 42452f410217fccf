// QEMU-CVE regression corpus, table-pointer and resource classes (issue 8): CVE-2014-0146 (qcow2
// NULL dereference through a snapshot table or L2 cache fed bad offsets), CVE-2014-0147 (block
// I/O bounds: L1/L2/BAT entries pointing past the end of the file or into metadata) and
// CVE-2015-5162 (an image that makes `qemu-img info` use unbounded CPU or memory). Images are made
// by qemu-img (with data written by qemu-io) and patched. Where the pointer is merely odd but
// readable, Platter must read exactly what QEMU reads; otherwise a typed BlockError. Every case is
// bounded in time and memory and leaves the file unchanged. QEMU 7.2's verdict is asserted
// (`qemu-img info` for opening, `qemu-io -c read` for reading).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tempDir, run, qemuImg, SKIP_NO_QEMU } from '../helpers/qemu.ts';
import { openImage } from '../../core/drivers/open.ts';
import { blockStatusAbove } from '../../core/block/node.ts';
import { probeHostile, assertRefused, patchFile, qemuImgInfo, MAX_CASE_MS } from './harness.ts';
import { qemuImage, qcow2FirstL2, withSnapshotTable, Q2, Q2_COPIED, vhdxRegion, VHDX_BAT_GUID } from './craft.ts';

/** A host offset no test image reaches (1 TiB). */
const FAR = 1n << 40n;
/** VHDX BAT entry state "fully present" (VHDX spec §2.5.1.1) and the offset field shift (MB units). */
const VHDX_PAYLOAD_FULLY_PRESENT = 6n;
const VHDX_BAT_OFFSET_SHIFT = 20n;
/** qcow2 snapshot entry fields (qcow2.txt "Snapshots"): byte offsets within an entry. */
const SN = { l1Offset: 0, l1Size: 8, idSize: 12, nameSize: 14, extraSize: 36 } as const;
const U32_MAX = 0xffffffff;

const t = tempDir('platter-sec-ptr-');
test.after(() => t.cleanup());
let n = 0;
const img = (format: string, o: { data?: boolean; snapshot?: boolean; size?: string; options?: string } = {}): string => {
  const p = qemuImage(t.path(`case${n++}.${format}`), format, o.size ?? '64M', o);
  if (o.snapshot) qemuImg('snapshot', '-c', 's1', p);
  return p;
};
const snapshotEntry = (b: Buffer): number => Number(b.readBigUInt64BE(Q2.snapshotsOffset));
const l1Entry0 = (b: Buffer): number => Number(b.readBigUInt64BE(Q2.l1Offset));
/** qemu-io's verdict on reading the first 64 KiB (read-only). */
const qemuIoReads = (path: string, format: string): boolean => run('qemu-io', ['-r', '-f', format, '-c', 'read -q 0 64k', path]).status === 0;

interface Case {
  cve: string;
  title: string;
  format: string;
  make(): string;
  mutate(b: Buffer): unknown;
  platter: RegExp;
  /** qemu-img info opens it ('opens') or refuses with this text. */
  qemuInfo: RegExp | 'opens';
  /** When qemu-img info opens it: does qemu-io read the first 64 KiB? */
  qemuRead?: boolean;
  /** Platter opens the image as QEMU does and refuses only when the first snapshot is used. */
  onSnapshotUse?: boolean;
}

/** Open (bounded, as probeHostile checks) then use the first snapshot: the refusal comes then. */
async function assertRefusedOnSnapshotUse(path: string, format: string, message: RegExp): Promise<void> {
  const out = await probeHostile(path, { format });
  assert.equal(out.error, undefined, out.error?.message);
  const node = await openImage(path, { readOnly: true, format, warn: () => {} });
  try {
    const [first] = await node.impl.snapshots!.list();
    assert.ok(first, 'the snapshot is listed');
    await assert.rejects(node.impl.snapshots!.openView(first.id), message);
  } finally {
    await node.close();
  }
}

const CASES: Case[] = [
  // CVE-2014-0146: snapshot entries whose L1 pointer is bad. QEMU 7.2 lists them and fails only on
  // use, and so does Platter (iotest 080): the image opens, the snapshot is refused when used.
  { cve: 'CVE-2014-0146', title: 'qcow2 snapshot L1 table offset unaligned', format: 'qcow2', make: () => img('qcow2', { data: true, snapshot: true }), mutate: (b) => b.writeBigUInt64BE(0x12345n, snapshotEntry(b) + SN.l1Offset), platter: /Snapshot L1 table offset invalid/, onSnapshotUse: true, qemuInfo: 'opens', qemuRead: true },
  { cve: 'CVE-2014-0146', title: 'qcow2 snapshot L1 table past the end of the file', format: 'qcow2', make: () => img('qcow2', { data: true, snapshot: true }), mutate: (b) => b.writeBigUInt64BE(FAR, snapshotEntry(b) + SN.l1Offset), platter: /Snapshot L1 table offset invalid/, onSnapshotUse: true, qemuInfo: 'opens', qemuRead: true },
  { cve: 'CVE-2014-0146', title: 'qcow2 snapshot L1 size 2^32-1', format: 'qcow2', make: () => img('qcow2', { data: true, snapshot: true }), mutate: (b) => b.writeUInt32BE(U32_MAX, snapshotEntry(b) + SN.l1Size), platter: /Snapshot L1 table too large/, onSnapshotUse: true, qemuInfo: 'opens', qemuRead: true },
  { cve: 'CVE-2014-0146', title: 'qcow2 snapshot extra data size 2^32-1', format: 'qcow2', make: () => img('qcow2', { data: true, snapshot: true }), mutate: (b) => b.writeUInt32BE(U32_MAX, snapshotEntry(b) + SN.extraSize), platter: /Too much extra metadata in snapshot table entry 0/, qemuInfo: /Too much extra metadata in snapshot table entry 0/ },
  // CVE-2014-0146 via the L2 cache: an L1 entry naming an L2 table that cannot be one.
  { cve: 'CVE-2014-0146', title: 'qcow2 L1 entry with an unaligned L2 table offset', format: 'qcow2', make: () => img('qcow2', { data: true }), mutate: (b) => b.writeBigUInt64BE(Q2_COPIED | 0x30200n, l1Entry0(b)), platter: /L2 table offset 0x30200 is not cluster aligned/, qemuInfo: 'opens', qemuRead: false },
  { cve: 'CVE-2014-0146', title: 'qcow2 L1 entry with an L2 table past the end of the file', format: 'qcow2', make: () => img('qcow2', { data: true }), mutate: (b) => b.writeBigUInt64BE(Q2_COPIED | FAR, l1Entry0(b)), platter: /L2 table at offset 0x10000000000 is beyond the end of the file/, qemuInfo: 'opens', qemuRead: true },
  { cve: 'CVE-2014-0146', title: 'qed L1 entry with an unaligned L2 table offset', format: 'qed', make: () => img('qed', { data: true }), mutate: (b) => { const l1 = Number(b.readBigUInt64LE(40)); b.writeBigUInt64LE(b.readBigUInt64LE(l1) + 512n, l1); }, platter: /invalid L2 table offset/, qemuInfo: 'opens', qemuRead: false },
  // CVE-2014-0147: data pointers past the end of the file. QEMU reads zeros for most of these
  // (file-posix pads short reads); Platter reports the corruption instead of inventing data.
  { cve: 'CVE-2014-0147', title: 'qcow2 L2 entry pointing past the end of the file', format: 'qcow2', make: () => img('qcow2', { data: true }), mutate: (b) => b.writeBigUInt64BE(Q2_COPIED | FAR, qcow2FirstL2(b)), platter: /points past the end of the file/, qemuInfo: 'opens', qemuRead: true },
  { cve: 'CVE-2014-0147', title: 'qed L1 entry pointing past the end of the file', format: 'qed', make: () => img('qed', { data: true }), mutate: (b) => b.writeBigUInt64LE(FAR, Number(b.readBigUInt64LE(40))), platter: /invalid L2 table offset 1099511627776/, qemuInfo: 'opens', qemuRead: false },
  { cve: 'CVE-2014-0147', title: 'vdi block map entry past the last block', format: 'vdi', make: () => img('vdi', { data: true }), mutate: (b) => b.writeUInt32LE(0x7ffffff0, b.readUInt32LE(0x154)), platter: /points to data block 2147483632, but the image has only 64 blocks/, qemuInfo: 'opens', qemuRead: true },
  { cve: 'CVE-2014-0147', title: 'vpc BAT entry past the end of the file', format: 'vpc', make: () => img('vpc', { data: true }), mutate: (b) => b.writeUInt32BE(0x7ffffff0, Number(b.readBigUInt64BE(512 + 16))), platter: /points after the end of file/, qemuInfo: /points after the end of file/ },
  { cve: 'CVE-2014-0147', title: 'vhdx BAT entry past the end of the file', format: 'vhdx', make: () => img('vhdx', { data: true }), mutate: (b) => b.writeBigUInt64LE(((1n << 30n) << VHDX_BAT_OFFSET_SHIFT) | VHDX_PAYLOAD_FULLY_PRESENT, vhdxRegion(b, VHDX_BAT_GUID).offset), platter: /BAT entry 0 start offset \d+ points after end of file/, qemuInfo: /BAT entry 0 start offset \d+ points after end of file/ },
];

for (const c of CASES) {
  test(`${c.cve} (${c.title}): refused with a typed error, bounded, file unchanged; compared with qemu-img info / qemu-io read`, { skip: SKIP_NO_QEMU }, async () => {
    const path = c.make();
    patchFile(path, c.mutate);
    if (c.onSnapshotUse) await assertRefusedOnSnapshotUse(path, c.format, c.platter);
    else assertRefused(await probeHostile(path, { format: c.format }), c.platter);
    const q = qemuImgInfo(path, c.format);
    if (c.qemuInfo === 'opens') {
      assert.ok(q.ok, `qemu-img info was expected to open it: ${q.text}`);
      assert.equal(qemuIoReads(path, c.format), c.qemuRead, 'qemu-io read verdict');
    } else {
      assert.ok(!q.ok, 'qemu-img info was expected to refuse it');
      assert.match(q.text, c.qemuInfo);
    }
  });
}

/** Platter's bytes and qemu-img convert's bytes for the first `len` bytes of the guest disk. */
async function compareWithQemu(path: string, len: number): Promise<void> {
  const out = t.path(`conv${n++}.raw`);
  qemuImg('convert', '-U', '-f', 'qcow2', '-O', 'raw', path, out);
  const node = await openImage(path, { readOnly: true, format: 'qcow2', warn: () => {} });
  try {
    assert.deepEqual(await node.read(0, len), readFileSync(out).subarray(0, len));
  } finally {
    await node.close();
  }
}

test('CVE-2014-0147 (qcow2 L2 entry pointing into the refcount table): read as QEMU reads it (qemu-img convert), bounded, file unchanged', { skip: SKIP_NO_QEMU }, async () => {
  // A data cluster overlapping metadata is corrupt (qemu-img check says so) but readable: QEMU
  // returns the metadata bytes as guest data, and so must Platter, with no out-of-bounds read.
  const path = img('qcow2', { data: true });
  patchFile(path, (b) => b.writeBigUInt64BE(Q2_COPIED | b.readBigUInt64BE(Q2.refcountOffset), qcow2FirstL2(b)));
  const out = await probeHostile(path, { format: 'qcow2' });
  if (out.error) assert.match(out.error.message, /overlap|refcount|metadata/i); // check may object; reading may not crash
  await compareWithQemu(path, 128 << 10);
});

test('CVE-2014-0147 (qcow2 L1 entry pointing at offset 0, the header): unallocated as in QEMU (qemu-img convert), bounded', { skip: SKIP_NO_QEMU }, async () => {
  // Offset 0 in an L1 entry means "no L2 table" (qcow2.txt), COPIED bit or not: reads fall through.
  const path = img('qcow2', { data: true });
  patchFile(path, (b) => b.writeBigUInt64BE(Q2_COPIED, l1Entry0(b)));
  const out = await probeHostile(path, { format: 'qcow2' });
  assert.equal(out.error, undefined, out.error?.message);
  await compareWithQemu(path, 64 << 10);
});

// ---- CVE-2015-5162: images that make `qemu-img info` spin or allocate without bound.

/** The biggest snapshot count qcow2 allows (QEMU QCOW_MAX_SNAPSHOTS). */
const MAX_SNAPSHOTS = 65536;

test('CVE-2015-5162 (qcow2 65536 snapshots whose names claim 8 GiB of table): refused fast, bounded', { skip: SKIP_NO_QEMU }, async () => {
  const path = img('qcow2');
  patchFile(path, (b) => withSnapshotTable(b, MAX_SNAPSHOTS, (e) => (e.writeUInt16BE(0xffff, SN.idSize), e.writeUInt16BE(0xffff, SN.nameSize))));
  const out = await probeHostile(path, { format: 'qcow2' });
  // Entry 0 claims 128 KiB of names, so entry 1 is parsed from name bytes and the rest from past
  // the end of the file, which reads as zeros (as in QEMU): the table opens, without reading 8 GiB.
  assert.equal(out.error, undefined, out.error?.message);
  // QEMU 7.2's qemu-img info opens this image after ~15 s of reading names (not run here).
});

test('CVE-2015-5162 (qcow2 65536 valid snapshots, 4.5 MiB table): info and snapshot list stay bounded in time and memory', { skip: SKIP_NO_QEMU }, async () => {
  // qemu-img 7.2 info takes ~17 s on this image here (it prints every snapshot); not run.
  const path = img('qcow2', { data: true });
  patchFile(path, (b) => withSnapshotTable(b, MAX_SNAPSHOTS));
  const out = await probeHostile(path, { format: 'qcow2', depth: 'info' });
  assert.equal(out.error, undefined, out.error?.message);
});

test('CVE-2015-5162 (qcow2 65536 snapshots each claiming a 32 MiB L1 table past the end of the file): opens bounded, refused on use', { skip: SKIP_NO_QEMU }, async () => {
  // QEMU 7.2 info accepts this image (it checks snapshot L1 tables only on use); so does Platter.
  const path = img('qcow2');
  patchFile(path, (b) => withSnapshotTable(b, MAX_SNAPSHOTS, (e) => e.writeUInt32BE(4 << 20, SN.l1Size)));
  await assertRefusedOnSnapshotUse(path, 'qcow2', /Snapshot L1 table offset invalid/);
});

/** A qcow2 with 512-byte clusters whose active L1 claims the 32 MiB maximum (128 GiB virtual),
 *  built from a small qemu-img image (qemu-img itself needs ~20 s to create it). */
function hugeL1Image(): string {
  const path = img('qcow2', { size: '1M', options: 'cluster_size=512' });
  patchFile(path, (b) => {
    const l1 = l1Entry0(b);
    const out = Buffer.alloc(l1 + (32 << 20));
    b.copy(out, 0, 0, l1);
    out.writeBigUInt64BE(128n << 30n, Q2.size);
    out.writeUInt32BE(4 << 20, Q2.l1Size);
    return out;
  });
  return path;
}

test('CVE-2015-5162 (qcow2 active L1 of 4M entries, 32 MiB): info stays bounded in time and memory; compared with qemu-img info', { skip: SKIP_NO_QEMU }, async () => {
  const path = hugeL1Image();
  const out = await probeHostile(path, { format: 'qcow2', depth: 'info' });
  assert.equal(out.error, undefined, out.error?.message);
  assert.ok(qemuImgInfo(path, 'qcow2').ok); // QEMU opens it too (~0.3 s)
});

test('CVE-2015-5162 (qcow2 active L1 claiming 4M entries past the end of the file): refused before reading it; compared with qemu-img info', { skip: SKIP_NO_QEMU }, async () => {
  const path = img('qcow2');
  patchFile(path, (b) => (b.writeBigUInt64BE(128n << 30n, Q2.size), b.writeUInt32BE(4 << 20, Q2.l1Size)));
  assertRefused(await probeHostile(path, { format: 'qcow2' }), /L1 table .* is beyond the end of the file/);
  assert.ok(qemuImgInfo(path, 'qcow2').ok); // QEMU 7.2 info opens it (it reads the L1 lazily)
});

// Walking holes: block status skips L1 entries that have no L2 table, a whole table at a time.
test('CVE-2015-5162 (qcow2 128 GiB of unallocated 512-byte clusters): one block-status answer spans the empty L1 entries', { skip: SKIP_NO_QEMU }, async () => {
  const path = hugeL1Image();
  const node = await openImage(path, { readOnly: true, format: 'qcow2', warn: () => {} });
  try {
    const t0 = performance.now();
    const st = await blockStatusAbove(node, 0, node.size);
    assert.ok(performance.now() - t0 < 1000, `took ${(performance.now() - t0).toFixed(0)} ms`);
    assert.ok(st.length >= 1 << 30, `one answer covered ${st.length} bytes`);
  } finally {
    await node.close();
  }
});

// Snapshots that all share one L1 table (and so its L2 tables): the check reads each distinct L2
// table once, not once per snapshot, so its work grows with the snapshot table, not with
// snapshots x tables. Bounded by the bytes it reads (deterministic) and by the suite's CPU bound.
test('CVE-2015-5162 (qcow2 read-only check with 4096 snapshots sharing their tables): reads each L2 table once, as qemu-img check counts', { skip: SKIP_NO_QEMU }, async () => {
  const path = img('qcow2', { data: true });
  patchFile(path, (b) => withSnapshotTable(b, 4096));
  const node = await openImage(path, { readOnly: true, format: 'qcow2', warn: () => {} });
  try {
    const file = (node.impl as unknown as { img: { file: { read(o: number, n: number): Promise<Buffer> } } }).img.file;
    const read = file.read.bind(file);
    let bytes = 0;
    file.read = (o: number, n: number) => {
      bytes += n;
      return read(o, n);
    };
    const t0 = process.cpuUsage();
    const r = await node.impl.check!(undefined);
    const cpu = process.cpuUsage(t0);
    // 4096 snapshot L1 tables of one entry, one L2 table, the refcount blocks: well under 4 MiB
    // (one read of the 64 KiB L2 table per snapshot would be 256 MiB).
    assert.ok(bytes < 4 << 20, `check read ${bytes} bytes`);
    assert.ok((cpu.user + cpu.system) / 1000 < MAX_CASE_MS, `used ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms of CPU`);
    // The same verdict as qemu-img check on the same bytes.
    const q = run('qemu-img', ['check', '--output=json', path]);
    const qj = JSON.parse(q.stdout) as { corruptions?: number; leaks?: number };
    assert.equal(r.corruptions, qj.corruptions ?? 0);
    assert.equal(r.leaks, qj.leaks ?? 0);
  } finally {
    await node.close();
  }
});

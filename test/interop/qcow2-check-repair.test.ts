// `platter check [-r all]` against `qemu-img check [-r all]` on the same corrupted qcow2 images:
// the findings (their words, order and counts), the summary, the exit status and the repaired
// image must be QEMU's. Each case corrupts two copies of one image the same way, then runs both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, openSync, writeSync, closeSync, readSync, truncateSync } from 'node:fs';
import { SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';
import { platterInProcess, qemuImgRaw, qemuWrite } from './harness.ts';

function poke(file: string, offset: number, bytes: number[]): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, Buffer.from(bytes), 0, bytes.length, offset);
  } finally {
    closeSync(fd);
  }
}

/** Both tools' check output on copies of `image`; stderr first, as a pipe shows qemu-img's. */
async function bothChecks(image: string, args: string[]): Promise<{ qemu: string; platter: string; qemuStatus: number; platterStatus: number; qemuCopy: string; platterCopy: string }> {
  const qemuCopy = `${image}.q`;
  const platterCopy = `${image}.p`;
  copyFileSync(image, qemuCopy);
  copyFileSync(image, platterCopy);
  const q = qemuImgRaw('check', ...args, qemuCopy);
  const p = await platterInProcess(['check', ...args, platterCopy]);
  const norm = (s: string, name: string) => s.split(name).join('IMG').replace(/^[a-z-]+: /gm, 'PROG: ');
  return { qemu: norm(q.stderr + q.stdout, qemuCopy), platter: norm(p.stderr + p.stdout, platterCopy), qemuStatus: q.status, platterStatus: p.status, qemuCopy, platterCopy };
}

/** Reference count block entry (16-bit refcounts, cluster 2 holds the first block). */
const REFBLOCK = 0x20000;

test('a used cluster with refcount 0: -r all rebuilds the refcount structure, -r leaks fails, as QEMU', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('t.qcow2');
    qemuImgRaw('create', '-f', 'qcow2', img, '64M');
    qemuWrite(img, 'qcow2', [[0, 65536, 1]]);
    poke(img, REFBLOCK + 5 * 2, [0, 0]); // the data cluster (5) now has refcount 0
    // -r leaks cannot rebuild: "Check failed", no summary.
    for (const args of [[], ['-r', 'leaks'], ['-r', 'all']]) {
      const r = await bothChecks(img, args);
      assert.equal(r.platter, r.qemu);
      assert.equal(r.platterStatus, r.qemuStatus);
    }
    const after = await bothChecks(t.path('t.qcow2.p'), []);
    assert.match(after.platter, /No errors were found/);
  } finally {
    t.cleanup();
  }
});

test('a leaked, shared data cluster: -r all fixes the refcount and the COPIED flags as QEMU does', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('t.qcow2');
    qemuImgRaw('create', '-f', 'qcow2', img, '64M');
    qemuWrite(img, 'qcow2', [[0, 65536, 1]]);
    poke(img, REFBLOCK + 5 * 2, [0, 2]); // refcount 2 for one reference
    poke(img, REFBLOCK + 0, [0, 2]); // and the header cluster leaks too
    for (const args of [[], ['-r', 'leaks'], ['-r', 'all']]) {
      const r = await bothChecks(img, args);
      assert.equal(r.platter, r.qemu, `check ${args.join(' ')}`);
      assert.equal(r.platterStatus, r.qemuStatus);
    }
  } finally {
    t.cleanup();
  }
});

test('an unaligned extended L2 entry: data is reported, an entry without data is made zero', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    for (const zeroed of [false, true]) {
      const base = t.path('b.raw');
      const img = t.path(`t${zeroed ? 'z' : 'd'}.qcow2`);
      qemuImgRaw('create', '-f', 'raw', base, '128k');
      qemuWrite(base, 'raw', [[0, 131072, 0xff]]);
      qemuImgRaw('create', '-f', 'qcow2', '-o', 'extended_l2=on', '-F', 'raw', '-b', base, img);
      qemuWrite(img, 'qcow2', zeroed ? [[4096, 2048, 1], [4096, 2048, -1]] : [[4096, 2048, 1]]);
      poke(img, 0x40006, [2]); // L2 entry 0: offset 0x50200
      const r = await bothChecks(img, ['-r', 'all']);
      assert.equal(r.platter, r.qemu);
      assert.equal(r.platterStatus, r.qemuStatus);
    }
  } finally {
    t.cleanup();
  }
});

test('a snapshot whose L1 table is not cluster aligned is reported by check, the image stays usable', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('t.qcow2');
    qemuImgRaw('create', '-f', 'qcow2', img, '64M');
    qemuWrite(img, 'qcow2', [[0, 512, 1]]);
    qemuImgRaw('snapshot', '-c', 'test', img);
    poke(img, 0x70000, [0, 0, 0, 0, 0, 0x40, 0x02, 0]); // l1_table_offset 0x400200
    const r = await bothChecks(img, []);
    assert.equal(r.platter, r.qemu);
    assert.equal(r.platterStatus, r.qemuStatus);
  } finally {
    t.cleanup();
  }
});

// Broken snapshot tables (QEMU's iotest 261): the open for check must tolerate them; check names
// the problem and stops ("Check failed: File too large"); -r all cuts off what QEMU cuts off, and
// the repaired image lists the same snapshots as QEMU's repaired copy.

const CLUSTER = 65536;
const be32 = (n: number) => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
const be64 = (n: number) => [...be32(Math.floor(n / 2 ** 32)), ...be32(n >>> 0)];

function peek64(file: string, offset: number): number {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(8);
    readSync(fd, b, 0, 8, offset);
    return Number(b.readBigUInt64BE(0));
  } finally {
    closeSync(fd);
  }
}

/** Give the clusters of [start, end) refcount 1 in the first refblock (16-bit refcounts). */
function refblock0Allocate(file: string, start: number, end: number): void {
  const refblock = peek64(file, peek64(file, 48));
  for (let c = Math.floor(start / CLUSTER); c < Math.ceil(end / CLUSTER); c++) poke(file, refblock + c * 2, [0, 1]);
}

/** check, check -r all, then the repaired copies' check and snapshot lists, both tools. */
async function compareRepair(img: string): Promise<void> {
  const plain = await bothChecks(img, []);
  assert.equal(plain.platter, plain.qemu, 'check');
  assert.equal(plain.platterStatus, plain.qemuStatus);
  const fixed = await bothChecks(img, ['-r', 'all']);
  assert.equal(fixed.platter, fixed.qemu, 'check -r all');
  assert.equal(fixed.platterStatus, fixed.qemuStatus);
  // Each repaired copy is clean for qemu-img, and both list the same snapshots.
  for (const copy of [fixed.qemuCopy, fixed.platterCopy]) assert.equal(qemuImgRaw('check', copy).status, 0, copy);
  const list = (f: string) => qemuImgRaw('snapshot', '-l', f).stdout.replace(/[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}/g, 'DATE').split(f).join('IMG');
  assert.equal(list(fixed.platterCopy), list(fixed.qemuCopy));
  assert.equal(peek64(fixed.platterCopy, 56) >>> 0, peek64(fixed.qemuCopy, 56) >>> 0, 'header nb_snapshots');
  const cmp = qemuImgRaw('compare', fixed.qemuCopy, fixed.platterCopy);
  assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
}

test('check and check -r all on a snapshot entry with too much extra data equal qemu-img (iotest 261)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('t.qcow2');
    qemuImgRaw('create', '-f', 'qcow2', img, '64M');
    qemuWrite(img, 'qcow2', [[0, 65536, 1]]);
    for (const sn of ['sn0', 'sn1']) assert.equal(qemuImgRaw('snapshot', '-c', sn, img).status, 0);
    // 64 KiB of extra data in the last entry: it spills into the next cluster (a refcount error too).
    const table = peek64(img, 64);
    const fd = openSync(img, 'r');
    const head = Buffer.alloc(40);
    readSync(fd, head, 0, 40, table);
    closeSync(fd);
    const first = Math.ceil((40 + head.readUInt32BE(36) + head.readUInt16BE(12) + head.readUInt16BE(14)) / 8) * 8;
    poke(img, table + first + 36, be32(65536));
    const info = await platterInProcess(['info', img]);
    assert.match(info.stderr, /Too much extra metadata in snapshot table entry 1\nYou can force-remove this extra metadata with qemu-img check -r all/);
    await compareRepair(img);
  } finally {
    t.cleanup();
  }
});

test('check and check -r all on a snapshot table past 64 MiB equal qemu-img (iotest 261)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('t.qcow2');
    qemuImgRaw('create', '-f', 'qcow2', img, '64M');
    poke(img, 64, be64(1 << 20)); // the table at 1 MiB
    // Entries of 1 KiB extra data, a 65535-byte id and name (zeros), until past 64 MiB.
    const entry = Buffer.alloc(40);
    entry.writeUInt16BE(0xffff, 12);
    entry.writeUInt16BE(0xffff, 14);
    entry.writeUInt32BE(1024, 36);
    const size = 40 + 1024 + 65535 + 65535 + 2;
    let offset = 1 << 20;
    let count = 0;
    const fd = openSync(img, 'r+');
    for (let written = 0; written <= 64 << 20; written += size, offset += size, count++) writeSync(fd, entry, 0, 40, offset);
    closeSync(fd);
    truncateSync(img, offset);
    // The last (overhanging) snapshot owns an L1 and an L2 table just below 1 MiB.
    poke(img, offset - size, be64(0xe0000));
    poke(img, offset - size + 8, be32(1));
    poke(img, (1 << 20) - 2 * CLUSTER, [0x80, 0, 0, 0, 0, 0x0f, 0, 0]); // its L1 entry: the L2 table
    refblock0Allocate(img, (1 << 20) - 2 * CLUSTER, offset);
    poke(img, 60, be32(count));
    await compareRepair(img);
  } finally {
    t.cleanup();
  }
});

test('check and check -r all on more than 65536 snapshots equal qemu-img (iotest 261)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('t.qcow2');
    qemuImgRaw('create', '-f', 'qcow2', '-o', 'compat=0.10', img, '64M');
    poke(img, 64, be64(1 << 20));
    poke(img, 60, be32(131072)); // all-zero 40-byte entries: valid v2 snapshots
    truncateSync(img, (1 << 20) + 40 * 131072);
    poke(img, (1 << 20) + 40 * 65536, be64(0xe0000));
    poke(img, (1 << 20) + 40 * 65536 + 8, be32(1));
    poke(img, (1 << 20) - 2 * CLUSTER, [0x80, 0, 0, 0, 0, 0x0f, 0, 0]);
    refblock0Allocate(img, (1 << 20) - 2 * CLUSTER, (1 << 20) + 40 * 131072);
    const info = await platterInProcess(['info', img]);
    assert.match(info.stderr, /Snapshot table too large/);
    await compareRepair(img);
  } finally {
    t.cleanup();
  }
});

test('an L1 entry pointing at the L1 table itself, where the file ends inside it: check equals qemu-img (iotest 060)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('t.qcow2');
    qemuImgRaw('create', '-f', 'qcow2', img, '64M');
    const l1 = peek64(img, 40);
    poke(img, l1, [0x80, 0, 0, 0, 0, 0, 0, 0].map((b, i) => (i === 5 ? (l1 >>> 16) & 0xff : b))); // the L1 as its own L2 table
    const r = await bothChecks(img, []);
    assert.equal(r.platter, r.qemu);
    assert.match(r.platter, /reference=3/); // header's L1, the L1 entry, and the "L2" entry in it
    assert.equal(r.platterStatus, r.qemuStatus);
  } finally {
    t.cleanup();
  }
});

test('an image marked corrupt: check -r all opens it read-write and clears the mark, as qemu-img (iotest 060)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('t.qcow2');
    qemuImgRaw('create', '-f', 'qcow2', img, '64M');
    poke(img, 72 + 7, [2]); // incompatible feature bit 1: corrupt
    const r = await bothChecks(img, ['-r', 'all']);
    assert.equal(r.platter, r.qemu);
    assert.equal(r.platterStatus, r.qemuStatus);
    assert.equal(peek64(r.platterCopy, 72), peek64(r.qemuCopy, 72));
  } finally {
    t.cleanup();
  }
});

test('an L1 entry whose L2 offset is not cluster aligned: check reads the table where it points and counts as qemu-img; check -r all prints the same and repairs nothing inside it', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('t.qcow2');
    qemuImgRaw('create', '-f', 'qcow2', img, '64M');
    qemuWrite(img, 'qcow2', [[0, 8 << 20, 1]]);
    const l1 = peek64(img, 40);
    const l2 = peek64(img, l1) % 2 ** 56;
    poke(img, l1, [0x80, ...be64(l2 + 0x200).slice(1)]); // COPIED, 512 bytes past the real L2 table
    const r = await bothChecks(img, []);
    assert.equal(r.platter, r.qemu);
    assert.match(r.platter, /129 errors were found/); // the misalignment, then two per 0x0101... "entry"
    assert.equal(r.platterStatus, r.qemuStatus);
    const q = t.path('q.qcow2');
    const p = t.path('p.qcow2');
    copyFileSync(img, q);
    copyFileSync(img, p);
    const qr = qemuImgRaw('check', '-r', 'all', q);
    const pr = await platterInProcess(['check', '-r', 'all', p]);
    assert.equal(pr.stdout, qr.stdout);
    assert.equal(pr.status, qr.status);
  } finally {
    t.cleanup();
  }
});

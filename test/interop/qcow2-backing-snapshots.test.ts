// Backing chains and internal snapshots, compared with QEMU: overlays Platter creates over
// qemu-written bases copy partial clusters from the backing file (qemu-img convert -O raw and
// qemu-io read -P see the same bytes), zero writes and discards behave as in QEMU for v2 and v3,
// and snapshots Platter makes are listed/applied/deleted by qemu-img snapshot and vice versa
// (qemu-img check stays clean after every step).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { tempDir, qemuImg, qemuIo, qemuImgJson, run, md5, SKIP_NO_QEMU } from '../helpers/qemu.ts';

const quiet = () => {};
const MiB = 1 << 20;

function assertClean(path: string): void {
  const r = run('qemu-img', ['check', '--output=json', path]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const j = JSON.parse(r.stdout);
  assert.equal(j.corruptions ?? 0, 0);
  assert.equal(j.leaks ?? 0, 0);
}

function rawOf(path: string, dir: string, extra: string[] = []): Buffer {
  const out = `${dir}/out-${Math.random().toString(36).slice(2)}.raw`;
  qemuImg('convert', ...extra, '-O', 'raw', path, out);
  return readFileSync(out);
}

for (const compat of ['1.1', '0.10']) {
  test(`overlay (compat=${compat}) over a qemu-img base: partial writes copy from backing, as qemu-img convert and qemu-io read -P show`, { skip: SKIP_NO_QEMU }, async () => {
    const t = tempDir();
    try {
      const base = t.path('base.qcow2');
      qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', base, '2M');
      qemuIo('-f', 'qcow2', '-c', 'write -P 0xaa 0 2M', base);
      const top = t.path('top.qcow2');
      await createImage({ format: 'qcow2', filename: top, options: { compat, backing_file: 'base.qcow2', backing_fmt: 'qcow2', cluster_size: 65536 }, warn: quiet });
      const info = qemuImgJson('info', top);
      assert.equal(info['backing-filename'], 'base.qcow2');
      assert.equal(info['backing-filename-format'], 'qcow2');
      assert.equal(info['virtual-size'], 2 * MiB);

      const model = Buffer.alloc(2 * MiB, 0xaa);
      const node = await openImage(top, { warn: quiet });
      try {
        assert.equal(node.backing?.format, 'qcow2');
        await node.write(1000, Buffer.alloc(100, 0x11)); // inside cluster 0: head and tail from backing
        model.fill(0x11, 1000, 1100);
        await node.write(65536 * 3 - 10, Buffer.alloc(20, 0x22)); // straddles clusters 2 and 3
        model.fill(0x22, 65536 * 3 - 10, 65536 * 3 + 10);
        await node.writeZeroes(65536 * 5 + 7, 65536 * 2); // partial + whole + partial
        model.fill(0, 65536 * 5 + 7, 65536 * 7 + 7);
        await node.write(65536 * 10, Buffer.alloc(65536 * 2, 0x33));
        model.fill(0x33, 65536 * 10, 65536 * 12);
        await node.discard(65536 * 10, 65536);
        // v3: a discarded cluster reads as zeros even with a backing file; v2: the backing shows.
        model.fill(compat === '1.1' ? 0 : 0xaa, 65536 * 10, 65536 * 11);
        assert.equal(md5(await node.read(0, 2 * MiB)), md5(model));
        const st = await node.blockStatus(65536 * 20, 65536);
        assert.equal(st.allocated, false);
      } finally {
        await node.close();
      }
      assertClean(top);
      assert.equal(md5(rawOf(top, t.dir)), md5(model));
      qemuIo('-f', 'qcow2', '-c', 'read -P 0xaa 0 1000', '-c', 'read -P 0x11 1000 100', '-c', 'read -P 0xaa 1100 64436', '-c', 'read -P 0x22 196598 20', top);
    } finally {
      t.cleanup();
    }
  });
}

test('three-level chain written by Platter reads like qemu-img convert; setBackingFile rewrites the name qemu-img info shows', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const a = t.path('a.qcow2');
    const b = t.path('b.qcow2');
    const c = t.path('c.qcow2');
    await createImage({ format: 'qcow2', filename: a, size: MiB, options: { cluster_size: 512 }, warn: quiet });
    await createImage({ format: 'qcow2', filename: b, options: { backing_file: 'a.qcow2', backing_fmt: 'qcow2', cluster_size: 4096 }, warn: quiet });
    await createImage({ format: 'qcow2', filename: c, options: { backing_file: 'b.qcow2', backing_fmt: 'qcow2' }, warn: quiet });
    const model = Buffer.alloc(MiB);
    for (const [p, v, off, len] of [[a, 1, 0, 300000], [b, 2, 100001, 5000], [c, 3, 200003, 70000]] as const) {
      const n = await openImage(p, { warn: quiet });
      await n.write(off, Buffer.alloc(len, v));
      model.fill(v, off, off + len);
      await n.close();
    }
    for (const p of [a, b, c]) assertClean(p);
    assert.equal(md5(rawOf(c, t.dir)), md5(model));
    const n = await openImage(c, { warn: quiet });
    try {
      assert.equal(md5(await n.read(0, MiB)), md5(model));
      await n.impl.setBackingFile!('a.qcow2', 'qcow2');
    } finally {
      await n.close();
    }
    assert.equal(qemuImgJson('info', c)['backing-filename'], 'a.qcow2');
    assertClean(c);
  } finally {
    t.cleanup();
  }
});

test('snapshots made by Platter are listed, read (convert -l), applied and deleted by qemu-img snapshot, and vice versa', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const p = t.path('s.qcow2');
    await createImage({ format: 'qcow2', filename: p, size: 4 * MiB, options: { cluster_size: 65536 }, warn: quiet });
    const now = { dateSec: 1700000000, dateNsec: 5 };
    let n = await openImage(p, { warn: quiet });
    await n.write(0, Buffer.alloc(200000, 0x41));
    const stateA = await n.read(0, 4 * MiB);
    const snA = await n.impl.snapshots!.create({ name: 'p1', ...now });
    assert.equal(snA.id, '1');
    await n.write(100000, Buffer.alloc(300000, 0x42)); // overwrites shared clusters (copy-on-write)
    const stateB = await n.read(0, 4 * MiB);
    await n.close();
    assertClean(p);

    const listed = qemuImgJson('info', p).snapshots as { id: string; name: string; 'date-sec': number }[];
    assert.deepEqual(listed.map((s) => [s.id, s.name, s['date-sec']]), [['1', 'p1', now.dateSec]]);
    assert.equal(md5(rawOf(p, t.dir, ['-l', 'snapshot.name=p1'])), md5(stateA));
    assert.equal(md5(rawOf(p, t.dir)), md5(stateB));

    // QEMU's turn: snapshot, then write more.
    qemuImg('snapshot', '-c', 'q1', p);
    qemuIo('-f', 'qcow2', '-c', 'write -P 0x43 1M 64k', p);
    const stateC = rawOf(p, t.dir);
    n = await openImage(p, { warn: quiet });
    try {
      assert.deepEqual((await n.impl.snapshots!.list()).map((s) => s.name), ['p1', 'q1']);
      const v = await n.impl.snapshots!.openView('q1');
      assert.equal(md5(await v.read(0, v.size)), md5(stateB));
      assert.equal(md5(await n.read(0, 4 * MiB)), md5(stateC));
      await n.impl.snapshots!.apply('p1');
      assert.equal(md5(await n.read(0, 4 * MiB)), md5(stateA));
      await n.write(0, Buffer.alloc(512, 0x44));
      await n.impl.snapshots!.delete('q1');
    } finally {
      await n.close();
    }
    assertClean(p);
    const expected = Buffer.from(stateA);
    expected.fill(0x44, 0, 512);
    assert.equal(md5(rawOf(p, t.dir)), md5(expected));
    assert.deepEqual((qemuImgJson('info', p).snapshots as { name: string }[]).map((s) => s.name), ['p1']);
    // qemu-img applies and deletes a snapshot Platter made.
    qemuImg('snapshot', '-a', 'p1', p);
    assert.equal(md5(rawOf(p, t.dir)), md5(stateA));
    qemuImg('snapshot', '-d', 'p1', p);
    assertClean(p);
    n = await openImage(p, { readOnly: true, warn: quiet });
    try {
      assert.deepEqual(await n.impl.snapshots!.list(), []);
      assert.equal(md5(await n.read(0, 4 * MiB)), md5(stateA));
    } finally {
      await n.close();
    }
  } finally {
    t.cleanup();
  }
});

test('makeEmpty deallocates every cluster so the overlay reads as its base (qemu-img map shows no allocation, check clean)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const base = t.path('base.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', base, '1M');
    qemuIo('-f', 'qcow2', '-c', 'write -P 0x7 0 1M', base);
    const top = t.path('top.qcow2');
    await createImage({ format: 'qcow2', filename: top, options: { backing_file: 'base.qcow2', backing_fmt: 'qcow2' }, warn: quiet });
    const n = await openImage(top, { warn: quiet });
    try {
      await n.write(1000, Buffer.alloc(70000, 1));
      await n.writeZeroes(300000, 65536 * 2);
      await n.impl.makeEmpty!();
      assert.equal(md5(await n.read(0, MiB)), md5(Buffer.alloc(MiB, 7)));
    } finally {
      await n.close();
    }
    const map = qemuImgJson('map', top) as { depth: number }[];
    assert.ok(map.every((m) => m.depth === 1), JSON.stringify(map));
    assertClean(top);
  } finally {
    t.cleanup();
  }
});

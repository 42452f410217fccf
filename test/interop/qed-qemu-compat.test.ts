// qed through Platter against the real QEMU tools: the fixture reads as `qemu-img convert -O raw`,
// maps as `qemu-img map` and checks as `qemu-img check`; images qemu-io wrote over raw and qed
// backing files read identically; images Platter creates and writes (several cluster and table
// sizes, a backing file) pass `qemu-img check` and `qemu-img compare`; an image left with the
// need-check bit and leaked clusters is repaired on a read-write open, as QEMU does.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, readFileSync, readSync, closeSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { createImage, type CreateImageOptions } from '../../core/drivers/create.ts';
import type { BlockNode } from '../../core/block/node.ts';
import { assertFixtureReadsAsQemu, assertMapMatches, assertQemuCompareRaw, concurrentRandomWrites, qemuRaw as qemuRawAs, withImageNode } from '../helpers/image-compare.ts';
import { fixture, fixtureById, qemuImg, qemuImgJson, qemuIo, run, SKIP_NO_FIXTURES, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';

const KiB = 1024;
const MiB = 1 << 20;
/** Byte offset of the features field and the need-check bit (qed_spec.txt). */
const FEATURES_AT = 16;
const NEED_CHECK = 0x02;

function pattern(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = ((i * 11 + seed * 37) % 249) + 1;
  return b;
}

const qemuRaw = (path: string, dir: string): Buffer => qemuRawAs(path, dir, 'qed');

const withNode = <T>(path: string, fn: (n: BlockNode) => Promise<T>, readOnly = true): Promise<T> => withImageNode(path, 'qed', fn, readOnly);

function featuresByte(path: string): number {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, FEATURES_AT);
    return b[0]!;
  } finally {
    closeSync(fd);
  }
}

test('generated/qed.qed reads as qemu-img convert -O raw, maps as qemu-img map and checks as qemu-img check', { skip: SKIP_NO_FIXTURES }, async () => {
  const f = fixtureById('generated/qed.qed');
  const node = await openImage(fixture(f.open), { readOnly: true });
  try {
    await assertFixtureReadsAsQemu(node, f, 'qed');
    const r = await node.impl.check!(undefined);
    assert.equal(r.corruptions, 0);
    assert.equal(r.leaks, 0);
    assert.equal(r.checkErrors, f.qemu_check['check-errors']);
    assert.equal(r.totalClusters, f.qemu_check['total-clusters']);
    assert.equal(r.allocatedClusters, f.qemu_check['allocated-clusters']);
    assert.equal(r.fragmentedClusters, f.qemu_check['fragmented-clusters']);
  } finally {
    await node.close();
  }
});

test('qed over raw and qed backing files written by qemu-io reads as qemu-img convert -O raw and maps as qemu-img map', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    writeFileSync(t.path('base.raw'), pattern(3 * MiB, 1));
    qemuImg('create', '-q', '-f', 'qed', '-o', 'cluster_size=16k', '-b', 'base.raw', '-F', 'raw', t.path('mid.qed'));
    qemuIo('-f', 'qed', '-c', 'write -P 0x31 1000 3000', '-c', 'write -z 64k 32k', t.path('mid.qed'));
    qemuImg('create', '-q', '-f', 'qed', '-b', 'mid.qed', '-F', 'qed', t.path('top.qed'));
    qemuIo('-f', 'qed', '-c', 'write -P 0x42 70000 100000', '-c', 'write -z 1M 64k', '-c', 'write -P 0x43 2M 512', t.path('top.qed'));
    const info = qemuImgJson('info', '-f', 'qed', t.path('mid.qed'));
    assert.equal(info['backing-filename-format'], 'raw');
    await withNode(t.path('mid.qed'), async (node) => {
      assert.deepEqual(node.impl.backingFile, { filename: 'base.raw', format: 'raw' });
    });
    await withNode(t.path('top.qed'), async (node) => {
      assert.deepEqual(node.impl.backingFile, { filename: 'mid.qed' }, 'no NO_PROBE bit: the backing format is probed');
      assert.equal(node.backing?.format, 'qed');
      assert.deepEqual(await node.read(0, node.size), qemuRaw(t.path('top.qed'), t.dir));
      await assertMapMatches(node, qemuImgJson('map', '-f', 'qed', t.path('top.qed')));
    });
  } finally {
    t.cleanup();
  }
});

test('qed images Platter creates and writes (cluster/table sizes, backing file) pass qemu-img check and qemu-img compare', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const baseData = pattern(4 * MiB, 9);
    writeFileSync(t.path('base.raw'), baseData);
    // (table_size=1 is left out: qemu-img 7.2 creates such images but cannot open them, its
    // table offset check rejects one-cluster tables.)
    const layouts = [
      { cluster_size: 4 * KiB, table_size: 2 },
      { cluster_size: 16 * KiB, table_size: 16 },
      { cluster_size: 64 * KiB, table_size: 4 },
      { cluster_size: 128 * KiB, table_size: 2, backing: true },
    ];
    for (const l of layouts) {
      const img = t.path(`p-${l.cluster_size}.qed`);
      const options: Record<string, string | number> = { cluster_size: l.cluster_size, table_size: l.table_size };
      if (l.backing) Object.assign(options, { backing_file: 'base.raw', backing_fmt: 'raw' });
      await createImage({ format: 'qed', filename: img, ...(l.backing ? {} : { size: 4 * MiB }), options, warn: () => {} });
      const expected = l.backing ? Buffer.from(baseData) : Buffer.alloc(4 * MiB);
      await withNode(img, async (node) => {
        const writes: [number, Buffer][] = [
          [100, pattern(5000, 1)],
          [200 * KiB - 300, pattern(700, 2)],
          [MiB, pattern(300 * KiB, 3)],
          [2 * MiB + 3 * KiB, pattern(9 * KiB, 4)],
          [3 * MiB + 512, pattern(512, 5)],
          [3 * MiB + 100 * KiB, pattern(4 * KiB, 6)],
        ];
        await Promise.all(writes.map(([o, d]) => node.write(o, d)));
        for (const [o, d] of writes) d.copy(expected, o);
        await node.writeZeroes(MiB + 1000, 30 * KiB);
        expected.fill(0, MiB + 1000, MiB + 1000 + 30 * KiB);
        await node.writeZeroes(3 * MiB + 512 * KiB, 256 * KiB);
        expected.fill(0, 3 * MiB + 512 * KiB, 3 * MiB + 768 * KiB);
        assert.deepEqual(await node.read(0, node.size), expected);
        assert.equal((await node.info()).dirtyFlag, true, 'need-check is set while allocations may be in flight');
      }, false);
      assert.equal(featuresByte(img) & NEED_CHECK, 0, 'need-check is cleared on close');
      const check = run('qemu-img', ['check', '-f', 'qed', img]);
      assert.equal(check.status, 0, check.stdout + check.stderr);
      assert.match(check.stdout, /No errors were found on the image/);
      assertQemuCompareRaw('qed', img, t.path('expected.raw'), expected);
      const info = qemuImgJson('info', '-f', 'qed', img);
      assert.equal(info['virtual-size'], 4 * MiB);
      assert.equal(info['cluster-size'], l.cluster_size);
      if (l.backing) assert.equal(info['backing-filename-format'], 'raw');
      if (l.backing) {
        // Whole zeroed clusters over a backing file become zero clusters (present, zero, no data).
        const m = qemuImgJson<any[]>('map', '-f', 'qed', img).find((e) => e.start <= 3 * MiB + 640 * KiB && 3 * MiB + 640 * KiB < e.start + e.length);
        assert.equal(m.zero, true);
        assert.equal(m.depth, 0);
      }
    }
  } finally {
    t.cleanup();
  }
});

test('a qed image left with need-check and leaked clusters: qemu-img check sees the leaks, a read-write open repairs it', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('crash.qed');
    qemuImg('create', '-q', '-f', 'qed', img, '8M');
    qemuIo('-f', 'qed', '-c', 'write -P 0x61 0 64k', img);
    // As if the process died after appending two data clusters but before the L2 update.
    const fd = openSync(img, 'r+');
    const size = statSync(img).size;
    writeSync(fd, Buffer.alloc(128 * KiB, 0x77), 0, 128 * KiB, size);
    writeSync(fd, Buffer.from([NEED_CHECK]), 0, 1, FEATURES_AT);
    closeSync(fd);
    const qr = run('qemu-img', ['check', '-f', 'qed', '--output=json', img]);
    assert.equal(qr.status, 3, 'qemu-img check exits 3 for leaks');
    const q = JSON.parse(qr.stdout);
    assert.equal(q['leaks'], 2);
    await withNode(img, async (node) => {
      assert.equal((await node.info()).dirtyFlag, true);
      const r = await node.impl.check!(undefined);
      assert.equal(r.leaks, q['leaks']);
      assert.equal(r.corruptions, q['corruptions'] ?? 0);
    });
    await withNode(img, async () => {}, false); // read-write open: check + repair, then clean close
    assert.equal(featuresByte(img) & NEED_CHECK, 0);
    assert.equal(statSync(img).size, size, 'trailing leaked clusters are cut off');
    const after = run('qemu-img', ['check', '-f', 'qed', img]);
    assert.equal(after.status, 0, after.stdout + after.stderr);
    const raw = qemuRaw(img, t.dir);
    assert.deepEqual(raw.subarray(0, 64 * KiB), Buffer.alloc(64 * KiB, 0x61));
  } finally {
    t.cleanup();
  }
});

test('qed resize grows like qemu-img resize and refuses to shrink', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('r.qed');
    await createImage({ format: 'qed', filename: img, size: 3 * MiB });
    await withNode(img, async (node) => {
      await node.write(3 * MiB - 512, Buffer.alloc(512, 9));
      await node.truncate(5 * MiB);
      await assert.rejects(node.truncate(4 * MiB, { shrink: true }), /Shrinking images is currently not supported/);
      assert.equal(node.size, 5 * MiB);
    }, false);
    assert.equal(qemuImgJson('info', '-f', 'qed', img)['virtual-size'], 5 * MiB);
    assert.equal(run('qemu-img', ['check', '-f', 'qed', img]).status, 0);
  } finally {
    t.cleanup();
  }
});

test('qed under 8 concurrent random writes (as convert -m 8 issues them) matches a raw model and passes qemu-img check and compare', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('stress.qed');
    const size = 6 * MiB;
    writeFileSync(t.path('base.raw'), pattern(size, 21));
    await createImage({ format: 'qed', filename: img, options: { cluster_size: 16 * KiB, table_size: 2, backing_file: 'base.raw', backing_fmt: 'raw' }, warn: () => {} });
    const model = pattern(size, 21);
    await withNode(img, async (node) => {
      // Eight requests in flight, never overlapping one another (their order would be undefined).
      await concurrentRandomWrites(node, model, { seed: 12345, pattern, zeroes: true });
      assert.ok((await node.read(0, size)).equals(model));
    }, false);
    const check = run('qemu-img', ['check', '-f', 'qed', img]);
    assert.equal(check.status, 0, check.stdout + check.stderr);
    assertQemuCompareRaw('qed', img, t.path('model.raw'), model);
  } finally {
    t.cleanup();
  }
});

test('qed create writes the same bytes as qemu-img create -f qed (sizes, cluster/table sizes, backing files)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    writeFileSync(t.path('base.raw'), Buffer.alloc(MiB));
    qemuImg('create', '-q', '-f', 'qed', t.path('base.qed'), '2M');
    const cases: [string, string[], Omit<CreateImageOptions, 'format' | 'filename'>][] = [
      ['default', ['4M'], { size: 4 * MiB }],
      ['odd', ['1000'], { size: 1000 }],
      ['small', ['-o', 'cluster_size=4k,table_size=8', '3M'], { size: 3 * MiB, options: { cluster_size: 4096, table_size: 8 } }],
      ['raw-backing', ['-b', 'base.raw', '-F', 'raw'], { options: { backing_file: 'base.raw', backing_fmt: 'raw' } }],
      ['qed-backing', ['-b', 'base.qed', '-F', 'qed'], { options: { backing_file: 'base.qed', backing_fmt: 'qed' } }],
    ];
    for (const [name, args, opts] of cases) {
      const q = t.path(`q-${name}.qed`);
      const sizeLast = !args.includes('-b');
      qemuImg('create', '-q', '-f', 'qed', ...(sizeLast ? [...args.slice(0, -1), q, args[args.length - 1]!] : [...args, q]));
      await createImage({ format: 'qed', filename: t.path(`p-${name}.qed`), ...opts, warn: () => {} });
      assert.deepEqual(readFileSync(t.path(`p-${name}.qed`)), readFileSync(q), name);
    }
  } finally {
    t.cleanup();
  }
});

test('Platter check and qemu-img check agree on a corrupted qed (bad L1 and L2 entries, a leak); after the repair qemu-img check is clean', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('bad.qed');
    qemuImg('create', '-q', '-f', 'qed', '-o', 'cluster_size=4k,table_size=2', img, '16M');
    // 4 KiB clusters, 2-cluster tables: 1024 entries, 4 MiB per L2 table.
    qemuIo('-f', 'qed', '-c', 'write -P 0x51 0 8k', '-c', 'write -P 0x52 4M 4k', '-c', 'write -P 0x53 8M 4k', img);
    const bytes = readFileSync(img);
    const l1 = 4096;
    const l2a = Number(bytes.readBigUInt64LE(l1));
    bytes.writeBigUInt64LE(1n << 33n, l2a + 8); // L2 entry for cluster 1 -> past EOF
    bytes.writeBigUInt64LE(12345n, l1 + 8 * 2); // L1 entry for 8M..12M -> unaligned
    writeFileSync(img, bytes);
    const q = JSON.parse(run('qemu-img', ['check', '-f', 'qed', '--output=json', img]).stdout);
    const node = await openImage(img, { format: 'qed', readOnly: true });
    try {
      const r = await node.impl.check!(undefined);
      assert.equal(r.corruptions, q['corruptions']);
      assert.equal(r.leaks, q['leaks'] ?? 0);
      assert.equal(r.checkErrors, q['check-errors']);
      assert.equal(r.allocatedClusters, q['allocated-clusters']);
      assert.equal(r.totalClusters, q['total-clusters']);
      assert.equal(r.fragmentedClusters, q['fragmented-clusters']);
      assert.equal(q['corruptions'], 2);
    } finally {
      await node.close();
    }
    const rw = await openImage(img, { format: 'qed' });
    try {
      const r = await rw.impl.check!('all');
      assert.equal(r.corruptionsFixed, 2);
      assert.equal(r.corruptions, 0);
    } finally {
      await rw.close();
    }
    const after = JSON.parse(run('qemu-img', ['check', '-f', 'qed', '--output=json', img]).stdout);
    assert.equal(after['corruptions'] ?? 0, 0);
    const raw = qemuRaw(img, t.dir);
    assert.deepEqual(raw.subarray(0, 4096), Buffer.alloc(4096, 0x51), 'intact clusters keep their data');
    assert.deepEqual(raw.subarray(4096, 8192), Buffer.alloc(4096), 'the cleared entry reads as unallocated');
    assert.deepEqual(raw.subarray(4 * MiB, 4 * MiB + 4096), Buffer.alloc(4096, 0x52));
  } finally {
    t.cleanup();
  }
});

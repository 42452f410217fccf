// qcow2 maintenance operations compared with QEMU: check finds the leaks and corruptions
// `qemu-img check` finds and its repairs leave `qemu-img check` clean; a dirty lazy-refcounts
// image is repaired on read-write open; amend (compat 1.1 <-> 0.10, lazy_refcounts) gives what
// `qemu-img info` expects; resize grows and refuses to drop data; measure gives the figures of
// `qemu-img measure`; compressed writes are counted by `qemu-img check` and read back by
// `qemu-img convert`; external data files (raw and not) are written as QEMU reads them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, statSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { findFormat } from '../../core/drivers/registry.ts';
import { SecretStore } from '../../core/block/secrets.ts';
import { sharedWorkerPool } from '../../core/workers/pool.ts';
import { tempDir, qemuImg, qemuIo, qemuImgJson, run, md5, SKIP_NO_QEMU, fixture, HAVE_FIXTURES } from '../helpers/qemu.ts';

const quiet = () => {};
const KiB = 1024;
const MiB = 1 << 20;

function qemuCheck(path: string, cwd?: string): { status: number | null; json: any } {
  // cwd: QEMU 7.2's check resolves a relative data file name against the working directory.
  const r = run('qemu-img', ['check', '--output=json', path], cwd ? { cwd } : {});
  return { status: r.status, json: JSON.parse(r.stdout) };
}

function rawMd5(path: string, dir: string, shared = false): string {
  const out = `${dir}/conv.raw`;
  const r = run('qemu-img', ['convert', ...(shared ? ['-U'] : []), '-O', 'raw', path, out], { cwd: dir });
  assert.equal(r.status, 0, r.stderr);
  return md5(readFileSync(out));
}

/** Set the 16-bit refcount of host cluster `c` in the first refcount block. */
function setRefcount16(path: string, c: number, v: number): void {
  const b = readFileSync(path);
  const reftable = Number(b.readBigUInt64BE(48));
  const block = Number(b.readBigUInt64BE(reftable));
  b.writeUInt16BE(v, block + c * 2);
  writeFileSync(path, b);
}

test('check reports a leak like qemu-img check, and check -r leaks repairs it', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const p = t.path('l.qcow2');
    await createImage({ format: 'qcow2', filename: p, size: MiB, warn: quiet });
    let n = await openImage(p, { warn: quiet });
    await n.write(0, Buffer.alloc(70 * KiB, 1));
    await n.close();
    // One more cluster at the end of the file with a refcount but no user.
    const size = statSync(p).size;
    const end = Math.ceil(size / 65536) * 65536;
    writeFileSync(p, Buffer.concat([readFileSync(p), Buffer.alloc(end + 65536 - size)]));
    setRefcount16(p, end / 65536, 1);
    const q = qemuCheck(p);
    assert.equal(q.status, 3);
    assert.equal(q.json.leaks, 1);
    n = await openImage(p, { warn: quiet });
    try {
      const r = await n.impl.check!(undefined);
      assert.equal(r.leaks, 1);
      assert.equal(r.corruptions, 0);
      assert.equal(r.imageEndOffset, q.json['image-end-offset']);
      assert.ok(r.messages.includes(`Leaked cluster ${end / 65536} refcount=1 reference=0`), r.messages.join('\n'));
      const fixed = await n.impl.check!('leaks');
      assert.equal(fixed.leaksFixed, 1);
      assert.equal(fixed.leaks, 0);
    } finally {
      await n.close();
    }
    const after = qemuCheck(p);
    assert.equal(after.status, 0);
    assert.equal(after.json.leaks ?? 0, 0);
  } finally {
    t.cleanup();
  }
});

test('check reports a refcount corruption like qemu-img check, and check -r all repairs it', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const p = t.path('c.qcow2');
    await createImage({ format: 'qcow2', filename: p, size: MiB, warn: quiet });
    let n = await openImage(p, { warn: quiet });
    await n.write(0, Buffer.alloc(200 * KiB, 7));
    const st = await n.blockStatus(65536, 65536);
    await n.close();
    const sum = rawMd5(p, t.dir);
    setRefcount16(p, st.hostOffset! / 65536, 0);
    const q = qemuCheck(p);
    assert.equal(q.status, 2);
    n = await openImage(p, { warn: quiet });
    try {
      const r = await n.impl.check!(undefined);
      assert.equal(r.corruptions, q.json.corruptions);
      const fixed = await n.impl.check!('all');
      assert.equal(fixed.corruptions, 0);
      assert.ok(fixed.corruptionsFixed >= 1);
    } finally {
      await n.close();
    }
    assert.equal(qemuCheck(p).status, 0);
    assert.equal(rawMd5(p, t.dir), sum);
  } finally {
    t.cleanup();
  }
});

test('lazy refcounts: the dirty bit is set while open read-write, and a dirty image is repaired when opened read-write (qemu-img info dirty-flag, check)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const p = t.path('lazy.qcow2');
    await createImage({ format: 'qcow2', filename: p, size: MiB, options: { lazy_refcounts: true }, warn: quiet });
    const n = await openImage(p, { warn: quiet });
    await n.write(0, Buffer.alloc(100 * KiB, 9));
    assert.equal(qemuImgJson('info', '-U', p)['dirty-flag'], true);
    // Crash: the file goes away without the qcow2 layer closing.
    await n.file!.close();
    assert.equal(qemuImgJson('info', p)['dirty-flag'], true);
    // Damage refcounts as a crash with lazy refcounts may: one leaked cluster.
    setRefcount16(p, 10, 1);
    const m = await openImage(p, { warn: quiet });
    await m.close();
    assert.equal(qemuImgJson('info', p)['dirty-flag'], false);
    const q = qemuCheck(p);
    assert.equal(q.status, 0);
    assert.equal(q.json.leaks ?? 0, 0);
    qemuIo('-c', 'read -P 9 0 100k', p);
  } finally {
    t.cleanup();
  }
});

test('amend compat 1.1 -> 0.10 expands zero clusters, and back with lazy_refcounts (qemu-img info format-specific, check, convert)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const p = t.path('a.qcow2');
    await createImage({ format: 'qcow2', filename: p, size: 2 * MiB, warn: quiet });
    const n = await openImage(p, { warn: quiet });
    const actx = { secrets: new SecretStore(), workers: sharedWorkerPool(), warn: quiet, force: false };
    try {
      await n.write(0, Buffer.alloc(300 * KiB, 5));
      await n.writeZeroes(64 * KiB, 128 * KiB);
      const before = md5(await n.read(0, 2 * MiB));
      await assert.rejects(n.impl.amend!({ compat: '0.10', lazy_refcounts: true }, actx), /Lazy refcounts only supported with compatibility level 1.1/);
      await n.impl.amend!({ compat: '0.10' }, actx);
      assert.equal(md5(await n.read(0, 2 * MiB)), before);
      await n.flush();
      assert.equal(qemuImgJson('info', '-U', p)['format-specific'].data.compat, '0.10');
      assert.equal(rawMd5(p, t.dir, true), before);
      await n.impl.amend!({ compat: '1.1', lazy_refcounts: true }, actx);
    } finally {
      await n.close();
    }
    const d = qemuImgJson('info', p)['format-specific'].data;
    assert.equal(d.compat, '1.1');
    assert.equal(d['lazy-refcounts'], true);
    assert.equal(qemuCheck(p).status, 0);
  } finally {
    t.cleanup();
  }
});

test('resize grows the image, and a shrink frees the clusters past the new end as qemu-img does (qemu-img info, check)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const p = t.path('r.qcow2');
    await createImage({ format: 'qcow2', filename: p, size: MiB, options: { cluster_size: 4096 }, warn: quiet });
    const n = await openImage(p, { warn: quiet });
    try {
      await n.truncate(40 * MiB); // L1 grows from 1 to 20 entries: it moves
      await n.write(39 * MiB, Buffer.alloc(4096, 3));
      await n.truncate(20 * MiB, { shrink: true });
      // The data past the new end is gone: growing again shows zeros there.
      await n.truncate(40 * MiB);
      assert.equal((await n.read(39 * MiB, 4096)).every((b) => b === 0), true);
      await n.truncate(20 * MiB, { shrink: true });
    } finally {
      await n.close();
    }
    assert.equal(qemuImgJson('info', p)['virtual-size'], 20 * MiB);
    const shrunk = qemuCheck(p);
    assert.equal(shrunk.status, 0);
    assert.equal(shrunk.json['allocated-clusters'] ?? 0, 0);
    // Growing with preallocation=metadata maps every new cluster (qemu-img check counts them).
    const m = await openImage(p, { warn: quiet });
    try {
      await m.truncate(21 * MiB, { preallocation: 'metadata' });
      assert.equal((await m.read(20 * MiB, MiB)).every((b) => b === 0), true);
    } finally {
      await m.close();
    }
    const q = qemuCheck(p);
    assert.equal(q.status, 0);
    assert.equal(q.json['allocated-clusters'], MiB / 4096);
  } finally {
    t.cleanup();
  }
});

test('measure gives the figures of qemu-img measure for sizes, options and a source image', { skip: SKIP_NO_QEMU }, async () => {
  const drv = findFormat('qcow2')!;
  const cases: [number, Record<string, string | number | boolean>][] = [
    [1 << 30, {}],
    [10 * MiB + 512, { cluster_size: 512 }],
    [100 << 30, { cluster_size: 2 * MiB, refcount_bits: 1 }],
    [5 << 30, { extended_l2: true, preallocation: 'full' }],
    [3 * MiB, { compat: '0.10', preallocation: 'metadata' }],
  ];
  for (const [size, o] of cases) {
    const opts = Object.entries(o).map(([k, v]) => `${k}=${v}`).join(',');
    const q = qemuImgJson('measure', '-O', 'qcow2', '--size', String(size), ...(opts ? ['-o', opts] : []));
    const mine = await drv.measure!(size, o);
    assert.deepEqual([mine.required, mine.fullyAllocated], [q.required, q['fully-allocated']], `size ${size} ${opts}`);
  }
  if (HAVE_FIXTURES) {
    const src = fixture('generated/qcow2-bitmaps.qcow2');
    const q = qemuImgJson('measure', '-O', 'qcow2', src);
    const node = await openImage(src, { readOnly: true, warn: quiet });
    try {
      const mine = await drv.measure!(0, {}, node);
      assert.deepEqual(mine, { required: q.required, fullyAllocated: q['fully-allocated'], bitmaps: q.bitmaps });
    } finally {
      await node.close();
    }
  }
});

test('compressed writes are counted by qemu-img check and read back by qemu-img convert; overwriting one copies it', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const p = t.path('z.qcow2');
    const cs = 65536;
    await createImage({ format: 'qcow2', filename: p, size: MiB, warn: quiet });
    const model = Buffer.alloc(MiB);
    const n = await openImage(p, { warn: quiet });
    try {
      const writes: Promise<void>[] = [];
      for (let c = 0; c < 8; c++) {
        const d = Buffer.from(`cluster ${c} `.repeat(cs / 8).slice(0, cs));
        d.copy(model, c * cs);
        writes.push(n.impl.writeCompressed!(c * cs, d));
      }
      await Promise.all(writes);
      const st = await n.blockStatus(0, cs);
      assert.equal(st.compressed, true);
      await n.write(3 * cs + 100, Buffer.alloc(10, 0xee));
      model.fill(0xee, 3 * cs + 100, 3 * cs + 110);
      assert.equal(md5(await n.read(0, MiB)), md5(model));
    } finally {
      await n.close();
    }
    const q = qemuCheck(p);
    assert.equal(q.status, 0);
    assert.equal(q.json['compressed-clusters'], 7);
    assert.equal(rawMd5(p, t.dir), md5(model));
    const z = t.path('zstd.qcow2');
    await createImage({ format: 'qcow2', filename: z, size: MiB, options: { compression_type: 'zstd' }, warn: quiet });
    // compression_type=zstd: a run-length cluster is stored as a zstd frame QEMU decodes.
    const m = await openImage(z, { warn: quiet });
    const zmodel = Buffer.alloc(MiB);
    zmodel.fill(1, 0, cs);
    await m.impl.writeCompressed!(0, zmodel.subarray(0, cs));
    await m.close();
    const qz = qemuCheck(z);
    assert.equal(qz.status, 0);
    assert.equal(qz.json['compressed-clusters'], 1);
    assert.equal(rawMd5(z, t.dir), md5(zmodel));
  } finally {
    t.cleanup();
  }
});

for (const raw of [true, false]) {
  test(`external data file (data_file_raw=${raw}) written by Platter reads back through qemu-img convert and passes check`, { skip: SKIP_NO_QEMU }, async () => {
    const t = tempDir();
    try {
      const p = t.path('d.qcow2');
      await createImage({ format: 'qcow2', filename: p, size: MiB, options: { data_file: 'd.data', data_file_raw: raw }, warn: quiet });
      const model = Buffer.alloc(MiB);
      const n = await openImage(p, { warn: quiet });
      try {
        await n.write(1000, Buffer.alloc(70000, 0x5a));
        model.fill(0x5a, 1000, 71000);
        await n.writeZeroes(2000, 100);
        model.fill(0, 2000, 2100);
      } finally {
        await n.close();
      }
      const info = qemuImgJson('info', p)['format-specific'].data;
      assert.equal(info['data-file'], 'd.data');
      assert.equal(info['data-file-raw'], raw);
      const q = qemuCheck(p, t.dir);
      assert.equal(q.status, 0, JSON.stringify(q.json));
      assert.equal(rawMd5(p, t.dir), md5(model));
      if (raw) assert.equal(md5(readFileSync(t.path('d.data'))), md5(model));
    } finally {
      t.cleanup();
    }
  });
}

test('the refcount table grows (512-byte clusters, 64-bit refcounts) and qemu-img check stays clean', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const p = t.path('g.qcow2');
    const size = 4 * MiB;
    // One table cluster holds 64 blocks of 64 clusters: 2 MiB of file; writing 3 MiB outgrows it.
    await createImage({ format: 'qcow2', filename: p, size, options: { cluster_size: 512, refcount_bits: 64 }, warn: quiet });
    const before = readFileSync(p).readUInt32BE(56);
    const n = await openImage(p, { warn: quiet });
    try {
      const writes: Promise<void>[] = [];
      for (let off = 0; off < 3 * MiB; off += 256 * KiB) writes.push(n.write(off, Buffer.alloc(256 * KiB, 1 + off / (256 * KiB))));
      await Promise.all(writes);
    } finally {
      await n.close();
    }
    assert.ok(readFileSync(p).readUInt32BE(56) > before, 'refcount_table_clusters grew');
    assert.equal(qemuCheck(p).status, 0);
    qemuIo('-c', 'read -P 1 0 256k', '-c', 'read -P 12 2816k 256k', '-c', 'read -P 0 3M 1M', p);
  } finally {
    t.cleanup();
  }
});

test('amend refcount_bits rewrites the refcount structures (qemu-img info refcount-bits, check) and refuses a width too narrow', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const p = t.path('rb.qcow2');
    await createImage({ format: 'qcow2', filename: p, size: 4 * MiB, options: { cluster_size: 4096 }, warn: quiet });
    const actx = { secrets: new SecretStore(), workers: sharedWorkerPool(), warn: quiet, force: false };
    const n = await openImage(p, { warn: quiet });
    try {
      await n.write(0, Buffer.alloc(MiB, 0x61));
      await n.impl.snapshots!.create({ name: 's', dateSec: 1, dateNsec: 0 });
      await n.impl.amend!({ refcount_bits: 64 }, actx);
      await n.write(2 * MiB, Buffer.alloc(100 * KiB, 0x62)); // allocation through the new structures
      await assert.rejects(n.impl.amend!({ refcount_bits: 1 }, actx), /Cannot decrease refcount entry width to 1 bits/);
      await n.impl.amend!({ refcount_bits: 2 }, actx);
    } finally {
      await n.close();
    }
    assert.equal(qemuImgJson('info', p)['format-specific'].data['refcount-bits'], 2);
    const q = qemuCheck(p);
    assert.equal(q.status, 0, JSON.stringify(q.json));
    qemuIo('-c', 'read -P 0x61 0 1M', '-c', 'read -P 0x62 2M 100k', p);
  } finally {
    t.cleanup();
  }
});

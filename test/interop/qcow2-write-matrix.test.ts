// Images Platter creates and writes pass `qemu-img check` with no errors or leaks and read back
// through `qemu-img convert -O raw` exactly as a byte model of the guest says, across a matrix of
// cluster sizes (512 B .. 2 MiB), compat 0.10/1.1, preallocation, lazy_refcounts and
// refcount_bits 1/16/64 (representative, not the full product). Writes are random, partial
// cluster, concurrent (8 in flight, as convert -m 8 issues them), mixed with write-zeroes and
// discards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { copyFileSync, chmodSync } from 'node:fs';
import { tempDir, run, qemuImg, qemuImgJson, md5, SKIP_NO_QEMU, SKIP_NO_FIXTURES, fixture } from '../helpers/qemu.ts';

const quiet = () => {};

/** Deterministic pseudo-random numbers (a test must fail the same way twice). */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

function pattern(r: () => number, len: number): Buffer {
  const b = Buffer.alloc(len);
  const v = Math.floor(r() * 255) + 1;
  for (let i = 0; i < len; i++) b[i] = (v + i * 7) & 0xff;
  return b;
}

interface Case {
  opts: Record<string, string | number | boolean>;
  size: number;
  ops: number;
  maxLen: number;
}

const CASES: Case[] = [
  { opts: { cluster_size: 512, compat: '1.1', refcount_bits: 1 }, size: 2 << 20, ops: 32, maxLen: 9000 },
  { opts: { cluster_size: 4096, compat: '0.10' }, size: 4 << 20, ops: 32, maxLen: 40000 },
  { opts: { cluster_size: 65536, compat: '1.1', lazy_refcounts: true, refcount_bits: 64 }, size: 8 << 20, ops: 32, maxLen: 200000 },
  { opts: { cluster_size: 2 << 20, compat: '1.1', preallocation: 'metadata' }, size: 6 << 20, ops: 16, maxLen: 3 << 20 },
  { opts: { cluster_size: 65536, compat: '0.10', preallocation: 'falloc' }, size: 4 << 20, ops: 30, maxLen: 150000 },
  { opts: { cluster_size: 4096, compat: '1.1', refcount_bits: 8, preallocation: 'full' }, size: 1 << 20, ops: 30, maxLen: 20000 },
  { opts: { cluster_size: 65536, compat: '1.1', extended_l2: true }, size: 4 << 20, ops: 30, maxLen: 150000 },
];

for (const c of CASES) {
  const label = Object.entries(c.opts).map(([k, v]) => `${k}=${v}`).join(',');
  test(`written image with ${label} passes qemu-img check and reads back via qemu-img convert -O raw`, { skip: SKIP_NO_QEMU }, async () => {
    const t = tempDir();
    try {
      const path = t.path('w.qcow2');
      await createImage({ format: 'qcow2', filename: path, size: c.size, options: c.opts, warn: quiet });
      const fresh = qemuImgJson('check', path);
      assert.equal(fresh['check-errors'], 0);
      assert.equal(fresh.corruptions ?? 0, 0);
      assert.equal(fresh.leaks ?? 0, 0);
      const info = qemuImgJson('info', path);
      assert.equal(info['virtual-size'], c.size);
      assert.equal(info['cluster-size'], c.opts.cluster_size);

      const model = Buffer.alloc(c.size);
      const cs = Number(c.opts.cluster_size);
      const r = prng(cs + c.ops);
      const node = await openImage(path, { format: 'qcow2', warn: quiet });
      try {
        let batch: Promise<void>[] = [];
        const busy: [number, number][] = [];
        for (let k = 0; k < c.ops; k++) {
          const len = 1 + Math.floor(r() * c.maxLen);
          const off = Math.floor(r() * (c.size - len));
          // Requests in one batch never overlap (a guest would not issue overlapping writes).
          if (busy.some(([s, e]) => off < e && s < off + len)) continue;
          busy.push([off, off + len]);
          const kind = r();
          if (kind < 0.65) {
            const d = pattern(r, len);
            d.copy(model, off);
            batch.push(node.write(off, d));
          } else if (kind < 0.85) {
            model.fill(0, off, off + len);
            batch.push(node.writeZeroes(off, len, { mayUnmap: r() < 0.5 }));
          } else {
            // qcow2 discards whole clusters only; without a backing file they read as zeros.
            const s = Math.ceil(off / cs) * cs;
            const e = Math.floor((off + len) / cs) * cs;
            if (e > s) model.fill(0, s, e);
            batch.push(node.discard(off, len));
          }
          if (batch.length === 8) {
            await Promise.all(batch);
            batch = [];
            busy.length = 0;
          }
        }
        await Promise.all(batch);
        assert.equal(md5(await node.read(0, c.size)), md5(model), 'Platter reads back what it wrote');
      } finally {
        await node.close();
      }
      const chk = run('qemu-img', ['check', '--output=json', path]);
      assert.equal(chk.status, 0, chk.stderr + chk.stdout);
      const j = JSON.parse(chk.stdout);
      assert.equal(j['check-errors'], 0);
      assert.equal(j.corruptions ?? 0, 0);
      assert.equal(j.leaks ?? 0, 0);
      const raw = t.path('w.raw');
      qemuImg('convert', '-f', 'qcow2', '-O', 'raw', path, raw);
      assert.equal(md5(readFileSync(raw)), md5(model), 'qemu-img convert reads what Platter wrote');
      // Platter's own check agrees with qemu-img's figures.
      const again = await openImage(path, { readOnly: true, warn: quiet });
      try {
        const mine = await again.impl.check!(undefined);
        assert.equal(mine.corruptions, 0);
        assert.equal(mine.leaks, 0);
        assert.equal(mine.imageEndOffset, j['image-end-offset']);
        assert.equal(mine.allocatedClusters, j['allocated-clusters']);
        assert.equal(mine.fragmentedClusters, j['fragmented-clusters'] ?? 0);
      } finally {
        await again.close();
      }
    } finally {
      t.cleanup();
    }
  });
}

for (const id of ['generated/qcow2-extl2.qcow2', 'generated/qcow2-compressed-zlib.qcow2', 'generated/qcow2-snapshots.qcow2', 'generated/qcow2-c4k-refcount1.qcow2']) {
  test(`writes into qemu-made ${id} (partial writes, write-zeroes) keep qemu-img check clean and qemu-img convert equal`, { skip: SKIP_NO_QEMU || SKIP_NO_FIXTURES }, async () => {
    const t = tempDir();
    try {
      const path = t.path('q.qcow2');
      copyFileSync(fixture(id), path);
      chmodSync(path, 0o644);
      const node = await openImage(path, { format: 'qcow2', warn: quiet });
      let model: Buffer;
      try {
        model = await node.read(0, node.size);
        const cs = node.clusterSize!;
        const r = prng(cs);
        for (let k = 0; k < 12; k++) {
          const len = 1 + Math.floor(r() * 3 * cs);
          const off = Math.floor(r() * (node.size - len));
          if (k % 3 === 0) {
            model.fill(0, off, off + len);
            await node.writeZeroes(off, len);
          } else {
            const d = pattern(r, len);
            d.copy(model, off);
            await node.write(off, d);
          }
        }
        assert.equal(md5(await node.read(0, node.size)), md5(model));
      } finally {
        await node.close();
      }
      const chk = run('qemu-img', ['check', '--output=json', path]);
      assert.equal(chk.status, 0, chk.stderr + chk.stdout);
      const raw = t.path('q.raw');
      qemuImg('convert', '-O', 'raw', path, raw);
      assert.equal(md5(readFileSync(raw)), md5(model));
    } finally {
      t.cleanup();
    }
  });
}

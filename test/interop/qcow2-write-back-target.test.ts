// Interop: the qcow2 write-back mode (metadata held in the L2/refcount caches while the file
// never flushes, cache=unsafe: convert's target) and convert's in-order reservation of target
// clusters. Checked with qemu-img check (no errors, no leaks), qemu-img compare against the
// source, and qemu-img map (host offsets follow guest order, as qemu-img convert lays them out).

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, writeSync, closeSync, ftruncateSync } from 'node:fs';
import { SKIP_NO_QEMU, tempDir, qemuImg, qemuImgJson, run } from '../helpers/qemu.ts';
import { platterInProcess } from './harness.ts';
import { openImage } from '../../core/drivers/open.ts';

const KiB = 1024;
const MiB = 1 << 20;

/** A raw source whose data extents start and end inside 64 KiB clusters: 20 KiB at 60 KiB,
 *  1.5 MiB of random bytes at 3 MiB + 4 KiB, a byte pattern from 7 MiB - 12 KiB to 9 MiB,
 *  written zeros inside the random run, and holes elsewhere (24 MiB virtual). */
function makeSource(path: string): void {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, 24 * MiB);
  writeSync(fd, Buffer.alloc(20 * KiB, 0x11), 0, 20 * KiB, 60 * KiB);
  const rnd = Buffer.alloc(1536 * KiB);
  for (let i = 0; i < rnd.length; i += 4) rnd.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
  rnd.fill(0, 512 * KiB, 640 * KiB);
  writeSync(fd, rnd, 0, rnd.length, 3 * MiB + 4 * KiB);
  const pat = Buffer.alloc(2 * MiB + 12 * KiB, 0x5a);
  writeSync(fd, pat, 0, pat.length, 7 * MiB - 12 * KiB);
  closeSync(fd);
}

interface MapEntry {
  start: number;
  length: number;
  data: boolean;
  offset?: number;
}

/** Host offsets of the data extents of a qcow2 image, in guest order. */
function hostOffsets(image: string): number[] {
  const map = qemuImgJson<MapEntry[]>('map', '-f', 'qcow2', image);
  return map.filter((e) => e.data && e.offset !== undefined).map((e) => e.offset!);
}

describe('qcow2 write-back metadata and in-order reservation (convert targets)', { skip: SKIP_NO_QEMU }, () => {
  for (const cluster of ['512', '64k', '2M']) {
    test(`convert raw -> qcow2 (cluster_size=${cluster}): qemu-img check clean, compare identical, host clusters in guest order`, async () => {
      const t = tempDir();
      try {
        const src = t.path('src.raw');
        makeSource(src);
        const out = t.path('out.qcow2');
        const r = await platterInProcess(['convert', '-f', 'raw', '-O', 'qcow2', '-o', `cluster_size=${cluster}`, src, out]);
        assert.equal(r.status, 0, r.stderr);
        const check = run('qemu-img', ['check', out]);
        assert.equal(check.status, 0, check.stdout + check.stderr);
        assert.match(check.stdout, /No errors were found on the image/);
        assert.equal(run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', src, out]).status, 0);
        const offsets = hostOffsets(out);
        assert.ok(offsets.length > 0);
        for (let i = 1; i < offsets.length; i++) assert.ok(offsets[i]! > offsets[i - 1]!, `host offsets out of guest order: ${offsets.join(', ')}`);
        // Nothing allocated for the holes or the zero run: the same allocation as qemu-img's.
        const q = t.path('q.qcow2');
        qemuImg('convert', '-f', 'raw', '-O', 'qcow2', '-o', `cluster_size=${cluster}`, src, q);
        const dataBytes = (p: string) => qemuImgJson<MapEntry[]>('map', '-f', 'qcow2', p).filter((e) => e.data).reduce((a, e) => a + e.length, 0);
        assert.equal(dataBytes(out), dataBytes(q));
      } finally {
        t.cleanup();
      }
    });
  }

  test('convert -t writeback (metadata written through, no reservation): writes stay in order, host clusters in guest order, check clean', async () => {
    const t = tempDir();
    try {
      const src = t.path('src.raw');
      makeSource(src);
      const out = t.path('wt.qcow2');
      const r = await platterInProcess(['convert', '-t', 'writeback', '-f', 'raw', '-O', 'qcow2', src, out]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(run('qemu-img', ['check', out]).status, 0);
      assert.equal(run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', src, out]).status, 0);
      const offsets = hostOffsets(out);
      for (let i = 1; i < offsets.length; i++) assert.ok(offsets[i]! > offsets[i - 1]!, `host offsets out of guest order: ${offsets.join(', ')}`);
    } finally {
      t.cleanup();
    }
  });

  test('cache=unsafe node: writes, discards that free clusters, rewrites and a snapshot in between; after close qemu-img check is clean and qemu-io reads every byte', async () => {
    const t = tempDir();
    try {
      const img = t.path('wb.qcow2');
      qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', img, '8M');
      const node = await openImage(img, { format: 'qcow2', readOnly: false, fileOptions: { cache: 'unsafe' }, warn: () => {} });
      try {
        await node.write(0, Buffer.alloc(256 * KiB, 0x21));
        await node.write(1 * MiB + 512, Buffer.alloc(100 * KiB, 0x22)); // partial clusters at both ends
        await node.discard(64 * KiB, 64 * KiB); // frees clusters whose L2 change is still held
        await node.write(64 * KiB, Buffer.alloc(8 * KiB, 0x23)); // reuses a freed cluster
        await node.impl.snapshots!.create({ name: 'mid', dateSec: 1, dateNsec: 0 }); // whole-image operation: written back first
        await node.write(0, Buffer.alloc(4 * KiB, 0x24)); // copy-on-write away from the snapshot
        await node.writeZeroes(4 * MiB, 1 * MiB, { mayUnmap: true });
        await node.write(6 * MiB, Buffer.alloc(512 * KiB, 0x25));
      } finally {
        await node.close();
      }
      const check = run('qemu-img', ['check', img]);
      assert.equal(check.status, 0, check.stdout + check.stderr);
      const io = (cmd: string) => run('qemu-io', ['-f', 'qcow2', '-c', cmd, img]);
      for (const cmd of ['read -P 0x24 0 4k', 'read -P 0x21 4k 60k', 'read -P 0x23 64k 8k', 'read -P 0 72k 56k', 'read -P 0x21 128k 128k', 'read -P 0x22 1049088 100k', 'read -P 0 4M 1M', 'read -P 0x25 6M 512k']) {
        const r = io(cmd);
        assert.equal(r.status, 0, `${cmd}: ${r.stdout}${r.stderr}`);
        assert.doesNotMatch(r.stdout, /Pattern verification failed/, cmd);
      }
      // The snapshot kept what the image held when it was taken.
      const snap = run('qemu-io', ['-f', 'qcow2', '-c', 'read -P 0x21 0 4k', '-U', `json:{"driver":"qcow2","file":{"driver":"file","filename":"${img}"},"snapshot.name":"mid"}`]);
      assert.doesNotMatch(snap.stdout + snap.stderr, /Pattern verification failed/);
    } finally {
      t.cleanup();
    }
  });
});

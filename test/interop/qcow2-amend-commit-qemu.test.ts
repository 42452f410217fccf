// qemu-img amend -p and qemu-img commit, compared with QEMU on the same images: the progress a
// refcount width change reports (its walks over the refcount table, iotest 112), and a commit of
// zero clusters, which deallocates the base's clusters as QEMU's mirror-based commit does
// (iotest 313).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';
import { platterInProcess, qemuImgRaw, qemuWrite } from './harness.ts';

test('amend -o refcount_bits=64 -p prints what qemu-img amend -p prints, walks and all', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('t.qcow2');
    qemuImgRaw('create', '-f', 'qcow2', '-o', 'refcount_bits=1,cluster_size=512', img, '64k');
    qemuWrite(img, 'qcow2', [[0, 58 * 512, 1]]);
    const copy = t.path('u.qcow2');
    copyFileSync(img, copy);
    const q = qemuImgRaw('amend', '-o', 'refcount_bits=64', '-p', img);
    const p = await platterInProcess(['amend', '-o', 'refcount_bits=64', '-p', copy]);
    assert.equal(p.status, q.status);
    assert.equal(p.stdout, q.stdout);
    assert.match(p.stdout, /\(66\.67\/100%\)\r {4}\(50\.00\/100%\)\r/); // the regressing progress
    assert.equal(qemuImgRaw('check', copy).status, 0);
    // Without status reports (lazy_refcounts): 0% before, 100% after, once each.
    const q2 = qemuImgRaw('amend', '-o', 'lazy_refcounts=on', '-p', img);
    const p2 = await platterInProcess(['amend', '-o', 'lazy_refcounts=on', '-p', copy]);
    assert.equal(p2.stdout, q2.stdout);
  } finally {
    t.cleanup();
  }
});

test('commit of zero clusters leaves the base as qemu-img commit does (deallocated, same check)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const size = (510 * 4 + 1 - 3) * 4096;
    const results: string[] = [];
    for (const tool of ['qemu', 'platter']) {
      const base = t.path(`${tool}-base.qcow2`);
      const top = t.path(`${tool}-top.qcow2`);
      qemuImgRaw('create', '-f', 'qcow2', '-o', 'cluster_size=4096,refcount_bits=64', base, String(size));
      qemuWrite(base, 'qcow2', [[0, size, 1]]);
      qemuImgRaw('create', '-f', 'qcow2', '-o', 'cluster_size=4096,refcount_bits=64', '-F', 'qcow2', '-b', base, top);
      qemuWrite(top, 'qcow2', [[0, size, -1]]);
      if (tool === 'qemu') assert.equal(qemuImgRaw('commit', top).status, 0);
      else assert.equal((await platterInProcess(['commit', top])).status, 0);
      const c = qemuImgRaw('check', '--output=json', base);
      results.push(c.stdout.split(base).join('BASE'));
    }
    assert.equal(results[1], results[0]);
    assert.equal(qemuImgRaw('compare', t.path('qemu-base.qcow2'), t.path('platter-base.qcow2')).status, 0);
    assert.doesNotMatch(results[1]!, /allocated-clusters/);
  } finally {
    t.cleanup();
  }
});

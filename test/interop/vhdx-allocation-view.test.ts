// QEMU 7.2's vhdx driver has no block-status callback: `qemu-img map` shows a vhdx image as one
// data extent with no host offset, and `qemu-img measure` counts every byte as allocated. Platter
// answers the same there (FormatDriver.qemuHidesAllocation), while convert still skips the blocks
// the BAT leaves unallocated: its target has the allocation of qemu-img convert's (qemu-img map of
// both targets) and the same contents (qemu-img compare).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openImage } from '../../core/drivers/open.ts';
import { qemuImg, qemuIo, run, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';
import { platterInProcess } from './harness.ts';

const MiB = 1 << 20;

/** A 200 MiB vhdx made by qemu-img from a raw image with data at 1 MiB and 150 MiB only. */
function sparseVhdx(t: ReturnType<typeof tempDir>): string {
  const raw = t.path('src.raw');
  qemuImg('create', '-f', 'raw', raw, '200M');
  qemuIo('-f', 'raw', '-c', 'write -P 0x11 1M 1M', '-c', 'write -P 0x22 150M 512k', raw);
  const vhdx = t.path('src.vhdx');
  qemuImg('convert', '-f', 'raw', '-O', 'vhdx', raw, vhdx);
  return vhdx;
}

test('map, measure and compare -s of a sparse vhdx print what qemu-img map, measure and compare -s print', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const vhdx = sparseVhdx(t);
    const qm = qemuImg('map', '-f', 'vhdx', '--output=json', vhdx);
    assert.match(qm, /^\[\{ "start": 0, "length": 209715200, [^\n]*"data": true\}\]\n$/, 'qemu-img 7.2 shows one data extent');
    const pm = await platterInProcess(['map', '-f', 'vhdx', '--output=json', vhdx]);
    assert.equal(pm.status, 0, pm.stderr);
    assert.equal(pm.stdout, qm);
    // compare -s compares whole status words: QEMU's vhdx reports no host offsets, a raw file
    // does (its first block is allocated), so the two differ at offset 0.
    const raw = t.path('src.raw');
    const qc = run('qemu-img', ['compare', '-s', '-f', 'vhdx', '-F', 'raw', vhdx, raw]);
    assert.equal(qc.status, 1);
    const pc = await platterInProcess(['compare', '-s', '-f', 'vhdx', '-F', 'raw', vhdx, raw]);
    assert.equal(pc.status, qc.status);
    assert.equal(pc.stdout, qc.stdout);
    const qs = qemuImg('measure', '-O', 'qcow2', '-f', 'vhdx', vhdx);
    const ps = await platterInProcess(['measure', '-O', 'qcow2', '-f', 'vhdx', vhdx]);
    assert.equal(ps.status, 0, ps.stderr);
    assert.equal(ps.stdout, qs);
  } finally {
    t.cleanup();
  }
});

test('convert from a sparse vhdx skips its unallocated blocks and allocates what qemu-img convert allocates (qemu-img map, qemu-img compare)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const vhdx = sparseVhdx(t);
    // The driver's own view still knows the holes (what convert uses).
    const node = await openImage(vhdx, { format: 'vhdx', readOnly: true });
    try {
      const precise = await node.blockStatus(64 * MiB, 8 * MiB, { precise: true });
      assert.equal(precise.data, false, 'an unallocated block reads as a hole to convert');
      assert.equal(precise.zero, true);
      const visible = await node.blockStatus(64 * MiB, 8 * MiB);
      assert.equal(visible.data, true, 'and as data, the way QEMU reports it');
      assert.equal(visible.hostOffset, undefined);
    } finally {
      await node.close();
    }
    const q = t.path('q.qcow2');
    const p = t.path('p.qcow2');
    qemuImg('convert', '-f', 'vhdx', '-O', 'qcow2', vhdx, q);
    const r = await platterInProcess(['convert', '-f', 'vhdx', '-O', 'qcow2', vhdx, p]);
    assert.equal(r.status, 0, r.stderr);
    qemuImg('compare', '-f', 'vhdx', '-F', 'qcow2', vhdx, p);
    qemuImg('check', '-f', 'qcow2', p);
    const layout = (f: string) => JSON.parse(qemuImg('map', '-f', 'qcow2', '--output=json', f)).map((e: { start: number; length: number; data: boolean }) => [e.start, e.length, e.data]);
    assert.deepEqual(layout(p), layout(q));
  } finally {
    t.cleanup();
  }
});

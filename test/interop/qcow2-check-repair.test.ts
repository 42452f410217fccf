// `platter check [-r all]` against `qemu-img check [-r all]` on the same corrupted qcow2 images:
// the findings (their words, order and counts), the summary, the exit status and the repaired
// image must be QEMU's. Each case corrupts two copies of one image the same way, then runs both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, openSync, writeSync, closeSync } from 'node:fs';
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

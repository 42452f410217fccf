// Interop: growing a qcow2 image whose backing file is longer than it (qemu-iotest 271's case):
// the old guest bytes still read from the backing file, the new area reads as zeros, for every
// preallocation mode, with and without extended L2 entries (qemu-io read -P, qemu-img check).
// A merge once mapped the whole cluster the old end cuts through, hiding the backing data there.

import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { SKIP_NO_QEMU, tempDir, run } from '../helpers/qemu.ts';
import { platterInProcess, qemuImg, qemuWrite } from './harness.ts';

const K = 1024;

describe('qcow2 resize over a longer backing file (qemu-io read -P, qemu-img check)', { skip: SKIP_NO_QEMU }, () => {
  const t = tempDir('platter-resize-backing-');
  after(() => t.cleanup());
  const base = t.path('base.raw');
  qemuImg('create', '-q', '-f', 'raw', base, '1013k');
  qemuWrite(base, 'raw', [[0, 1013 * K, 0xff]]);

  for (const mode of ['off', 'metadata', 'falloc', 'full']) {
    for (const extendedL2 of ['on', 'off']) {
      test(`resize --preallocation=${mode} (extended_l2=${extendedL2}): old bytes from the backing file, new ones zero`, async () => {
        const img = t.path(`r-${mode}-${extendedL2}.qcow2`);
        qemuImg('create', '-q', '-f', 'qcow2', '-o', `extended_l2=${extendedL2}`, '-F', 'raw', '-b', base, img, '503k');
        const r = await platterInProcess(['resize', `--preallocation=${mode}`, img, '1013k']);
        assert.equal(r.status, 0, r.stderr);
        for (const [cmd, what] of [[`read -P 0xff 0 ${503 * K}`, 'the old area'], [`read -P 0x00 ${503 * K} ${510 * K}`, 'the new area']] as const) {
          const io = run('qemu-io', ['-c', cmd, img]);
          assert.equal(io.status, 0, io.stderr);
          assert.doesNotMatch(io.stdout, /Pattern verification failed/, `${what}: ${io.stdout}`);
        }
        assert.equal(run('qemu-img', ['check', img]).status, 0);
      });
    }
  }
});

// `platter compare -s` (strict: sizes and block status must match too) and `platter map` answer as
// `qemu-img compare -s` and `qemu-img map` do, for every pair of formats qemu-img makes from one
// sparse raw image. qemu-img compares whole block-status words: allocated, data, zero, compressed,
// whether a host offset is known, and EOF, which QEMU's drivers set on the answer that reaches the
// end of the image in units of their own (an L2 table, a grain, a block: qemuLastStatusUnit).
// The images are 768 MiB so that qcow2's last L2 table (512 MiB of guest data each) is not its
// first.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { qemuImg, qemuIo, run, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';
import { platterInProcess } from './harness.ts';

const TARGETS: [name: string, format: string, options: string[]][] = [
  ['qcow2', 'qcow2', []],
  ['qcow2-4k', 'qcow2', ['-o', 'cluster_size=4k']],
  ['qcow2-extended-l2', 'qcow2', ['-o', 'extended_l2=on']],
  ['qcow2-compressed', 'qcow2', ['-c']],
  ['vmdk', 'vmdk', []],
  ['vmdk-2g-sparse', 'vmdk', ['-o', 'subformat=twoGbMaxExtentSparse']],
  ['vmdk-2g-flat', 'vmdk', ['-o', 'subformat=twoGbMaxExtentFlat']],
  ['vhdx', 'vhdx', []],
  ['vdi', 'vdi', []],
  ['qed', 'qed', []],
  ['qcow', 'qcow', []],
  ['vpc', 'vpc', []],
];

/** qemu-img compare -s walks qcow's 4 KiB clusters one by one (seconds at 768 MiB): qcow takes
 *  part in the small image only. */
const SCENARIOS: { size: string; writes: string[]; targets: typeof TARGETS }[] = [
  { size: '768M', writes: ['write -P 0x11 0 64k', 'write -P 0x22 500M 1M'], targets: TARGETS.filter(([n]) => n !== 'qcow') },
  { size: '768M', writes: ['write -P 0x11 1M 64k', 'write -P 0x22 767M 1M'], targets: TARGETS.filter(([n]) => n !== 'qcow') },
  { size: '100M', writes: ['write -P 0x33 99M 1M'], targets: TARGETS },
];

for (const { size, writes, targets } of SCENARIOS) {
  test(`compare -s of every pair, and map, match qemu-img (${size}, ${writes.join(', ')})`, { skip: SKIP_NO_QEMU, timeout: 180_000 }, async () => {
    const t = tempDir();
    try {
      const raw = t.path('a.raw');
      qemuImg('create', '-f', 'raw', raw, size);
      qemuIo('-f', 'raw', ...writes.flatMap((w) => ['-c', w]), raw);
      const img: Record<string, [path: string, format: string]> = { raw: [raw, 'raw'] };
      for (const [name, fmt, opts] of targets) {
        const p = t.path(`${name}.${fmt}`);
        qemuImg('convert', ...opts, '-f', 'raw', '-O', fmt, raw, p);
        img[name] = [p, fmt];
      }
      const names = Object.keys(img);
      let differing = 0;
      for (const x of names) {
        const [a, fa] = img[x]!;
        for (const output of [['--output=json'], []]) {
          const q = run('qemu-img', ['map', ...output, '-f', fa, a]);
          const p = await platterInProcess(['map', ...output, '-f', fa, a]);
          assert.equal(p.status, q.status, `map ${output.join('')} of ${x}: exit status`);
          assert.equal(p.stdout, q.stdout, `map ${output.join('')} of ${x}`);
        }
        for (const y of names) {
          const [b, fb] = img[y]!;
          const q = run('qemu-img', ['compare', '-s', '-f', fa, '-F', fb, a, b]);
          const p = await platterInProcess(['compare', '-s', '-f', fa, '-F', fb, a, b]);
          assert.equal(p.status, q.status, `${x} vs ${y}: exit status (qemu-img said ${q.stdout.trim()})`);
          assert.equal(p.stdout, q.stdout, `${x} vs ${y}`);
          if (q.status !== 0) differing++;
        }
      }
      assert.ok(differing > 0 && differing < names.length * names.length, 'some pairs differ in status, some do not');
    } finally {
      t.cleanup();
    }
  });
}

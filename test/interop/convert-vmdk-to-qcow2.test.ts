// The headline job on the command line: `platter convert -f vmdk -O qcow2` from every vmdk
// subformat qemu-img writes (twoGbMaxExtentSparse over 2 GiB and streamOptimized included);
// `qemu-img compare` must find the qcow2 identical to the source and `qemu-img check` clean.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { platter, runOk, run, tempDir, SKIP_NO_QEMU } from '../helpers/qemu.ts';

/** Writes that cross grain, grain-table and (for the 5 GiB case) 2 GiB extent boundaries. */
const PATTERN = ['write -P 0x5a 0 64k', 'write -P 0xa5 1m 3k', 'write -z 2m 64k', 'write -P 0x11 3145216 1536'];
const BIG_PATTERN = [...PATTERN, 'write -P 0x22 2147450880 65536', 'write -P 0x33 4831838208 4096'];

const CASES: { subformat: string; size: string; writes: string[] }[] = [
  { subformat: 'monolithicSparse', size: '8M', writes: PATTERN },
  { subformat: 'monolithicFlat', size: '8M', writes: PATTERN },
  { subformat: 'twoGbMaxExtentSparse', size: '5G', writes: BIG_PATTERN },
  { subformat: 'twoGbMaxExtentFlat', size: '8M', writes: PATTERN },
  { subformat: 'streamOptimized', size: '8M', writes: [] },
];

for (const c of CASES) {
  test(`platter convert -f vmdk -O qcow2 from ${c.subformat} (${c.size}) is identical under qemu-img compare`, { skip: SKIP_NO_QEMU, timeout: 180_000 }, () => {
    const t = tempDir();
    try {
      const src = t.path('src.vmdk');
      if (c.subformat === 'streamOptimized') {
        // qemu-img writes streamOptimized only by converting (it is append-only).
        const raw = t.path('seed.raw');
        runOk('qemu-img', ['create', '-q', '-f', 'raw', raw, c.size]);
        for (const w of PATTERN) runOk('qemu-io', ['-f', 'raw', '-c', w, raw]);
        runOk('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, src]);
      } else {
        runOk('qemu-img', ['create', '-q', '-f', 'vmdk', '-o', `subformat=${c.subformat}`, src, c.size]);
        for (const w of c.writes) runOk('qemu-io', ['-f', 'vmdk', '-c', w, src]);
      }
      const out = t.path('out.qcow2');
      const r = platter(['convert', '-f', 'vmdk', '-O', 'qcow2', src, out], { timeoutMs: 150_000 });
      assert.equal(r.status, 0, `platter convert failed: ${r.stderr}`);
      assert.equal(r.stderr, '', 'no warnings');
      const cmp = run('qemu-img', ['compare', '-f', 'vmdk', '-F', 'qcow2', src, out]);
      assert.equal(cmp.status, 0, `qemu-img compare: ${cmp.stdout}${cmp.stderr}`);
      assert.match(cmp.stdout, /Images are identical/);
      runOk('qemu-img', ['check', '-q', '-f', 'qcow2', out]);
      const info = JSON.parse(runOk('qemu-img', ['info', '--output=json', out]));
      assert.equal(info.format, 'qcow2');
      assert.equal(info['virtual-size'], JSON.parse(runOk('qemu-img', ['info', '--output=json', src]))['virtual-size']);
    } finally {
      t.cleanup();
    }
  });
}

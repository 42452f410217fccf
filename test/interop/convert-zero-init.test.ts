// Interop: convert writes the source's zero ranges wherever the target does not already read as
// zeros (QEMU's bdrv_has_zero_init), so the guest never sees stale bytes or decrypted noise where
// the source had zeros. Each case ends in `qemu-img compare` of source and target; the driver
// answers themselves are checked against QEMU's rules on images qemu-img created.

import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';
import { openImage } from '../../core/drivers/open.ts';
import { SecretStore } from '../../core/block/secrets.ts';
import { platterInProcess, qemuImg, qemuImgRaw, qemuWrite } from './harness.ts';

const MiB = 1 << 20;
const SECRET = ['--object', 'secret,id=s0,data=zero-init-pw'];

/** 24 MiB of zeros with 1 MiB of 0x44 at 4 MiB (the reproduction), made by qemu-img/io. */
function makeSource(path: string): void {
  qemuImg('create', '-q', '-f', 'raw', path, '24M');
  qemuWrite(path, 'raw', [[4 * MiB, MiB, 0x44]]);
}

/** `qemu-img compare` of the raw source with the target opened by image options. */
function compareWithSource(src: string, targetOpts: string): void {
  const r = qemuImgRaw('compare', ...SECRET, '--image-opts', `driver=raw,file.filename=${src}`, targetOpts);
  assert.equal(r.status, 0, `qemu-img compare: ${r.stdout}${r.stderr}`);
}

describe('convert writes zeros where a target does not read as zero (qemu-img compare)', { skip: SKIP_NO_QEMU }, () => {
  const t = tempDir('platter-zero-init-');
  after(() => t.cleanup());

  test('convert -O luks: the payload of the source zero ranges decrypts to zeros (qemu-img compare)', async () => {
    const src = t.path('luks-src.raw');
    makeSource(src);
    const dst = t.path('z.luks');
    const r = await platterInProcess(['convert', ...SECRET, '-O', 'luks', '-o', 'key-secret=s0,iter-time=10', src, dst]);
    assert.equal(r.status, 0, r.stderr);
    compareWithSource(src, `driver=luks,key-secret=s0,file.filename=${dst}`);
  });

  for (const prealloc of ['metadata', 'falloc', 'full']) {
    test(`convert -O qcow2 encrypt.format=luks preallocation=${prealloc}: zeros read back (qemu-img compare, check)`, async () => {
      const src = t.path(`q-${prealloc}-src.raw`);
      makeSource(src);
      const dst = t.path(`z-${prealloc}.qcow2`);
      const r = await platterInProcess(['convert', ...SECRET, '-O', 'qcow2', '-o', `encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10,preallocation=${prealloc}`, src, dst]);
      assert.equal(r.status, 0, r.stderr);
      const opts = `driver=qcow2,encrypt.key-secret=s0,file.filename=${dst}`;
      compareWithSource(src, opts);
      const chk = qemuImgRaw('check', ...SECRET, '--image-opts', opts);
      assert.equal(chk.status, 0, chk.stdout + chk.stderr);
    });
  }

  for (const fmt of ['raw', 'qcow2', 'vmdk', 'vdi']) {
    test(`convert -n onto a ${fmt} image holding old data overwrites it with the source's zeros (qemu-img compare)`, async () => {
      const src = t.path(`n-${fmt}-src.raw`);
      makeSource(src);
      const dst = t.path(`old.${fmt}`);
      qemuImg('create', '-q', '-f', fmt, dst, '24M');
      qemuWrite(dst, fmt, [[0, 24 * MiB, 0xee]]);
      const r = await platterInProcess(['convert', '-n', '-O', fmt, src, dst]);
      assert.equal(r.status, 0, r.stderr);
      compareWithSource(src, `driver=${fmt},file.filename=${dst}`);
    });
  }

  test('convert -n onto a luks image qemu-img made and filled: zeros replace the old data (qemu-img compare)', async () => {
    const src = t.path('nl-src.raw');
    makeSource(src);
    const dst = t.path('old.luks');
    qemuImg('create', '-q', ...SECRET, '-f', 'luks', '-o', 'key-secret=s0,iter-time=10', dst, '24M');
    const fill = t.path('fill.raw');
    qemuImg('create', '-q', '-f', 'raw', fill, '24M');
    qemuWrite(fill, 'raw', [[0, 24 * MiB, 0x5a]]);
    const pre = qemuImgRaw('convert', ...SECRET, '-n', '-f', 'raw', '--target-image-opts', fill, `driver=luks,key-secret=s0,file.filename=${dst}`);
    assert.equal(pre.status, 0, pre.stderr);
    const r = await platterInProcess(['convert', ...SECRET, '-n', '--target-image-opts', '-f', 'raw', src, `driver=luks,key-secret=s0,file.filename=${dst}`]);
    assert.equal(r.status, 0, r.stderr);
    compareWithSource(src, `driver=luks,key-secret=s0,file.filename=${dst}`);
  });

  test('--target-is-zero lets convert -n skip zero ranges, as qemu-img does (the user vouches for the target)', async () => {
    const src = t.path('tz-src.raw');
    makeSource(src);
    const dst = t.path('stale.raw');
    qemuImg('create', '-q', '-f', 'raw', dst, '24M');
    qemuWrite(dst, 'raw', [[0, MiB, 0xee]]);
    const r = await platterInProcess(['convert', '-n', '--target-is-zero', '-O', 'raw', src, dst]);
    assert.equal(r.status, 0, r.stderr);
    // The stale first MiB stays: proof that the zero range was skipped on the user's word.
    const cmp = qemuImgRaw('compare', '-f', 'raw', '-F', 'raw', src, dst);
    assert.equal(cmp.status, 1, cmp.stdout + cmp.stderr);
    assert.match(cmp.stdout, /Content mismatch at offset 0!/);
  });
});

describe('drivers answer whether a new image reads as zeros as QEMU does (bdrv_has_zero_init)', { skip: SKIP_NO_QEMU }, () => {
  const t = tempDir('platter-zero-init-rules-');
  after(() => t.cleanup());
  const cases: { name: string; fmt: string; opts: string; expect: boolean; secret?: boolean; backing?: boolean }[] = [
    { name: 'raw file', fmt: 'raw', opts: '', expect: true },
    { name: 'luks', fmt: 'luks', opts: 'key-secret=s0,iter-time=10', expect: false, secret: true },
    { name: 'qcow2', fmt: 'qcow2', opts: '', expect: true },
    { name: 'qcow2 preallocation=metadata', fmt: 'qcow2', opts: 'preallocation=metadata', expect: true },
    { name: 'qcow2 encrypted, not preallocated', fmt: 'qcow2', opts: 'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10', expect: true, secret: true },
    { name: 'qcow2 encrypted, preallocation=metadata', fmt: 'qcow2', opts: 'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10,preallocation=metadata', expect: false, secret: true },
    { name: 'qcow2 with a backing file', fmt: 'qcow2', opts: '', expect: false, backing: true },
    { name: 'qed', fmt: 'qed', opts: '', expect: true },
    { name: 'qcow', fmt: 'qcow', opts: '', expect: true },
    { name: 'vdi static', fmt: 'vdi', opts: 'static=on', expect: true },
    { name: 'vpc fixed', fmt: 'vpc', opts: 'subformat=fixed', expect: true },
    { name: 'vhdx fixed', fmt: 'vhdx', opts: 'subformat=fixed', expect: true },
    { name: 'vmdk monolithicFlat', fmt: 'vmdk', opts: 'subformat=monolithicFlat', expect: true },
    { name: 'vmdk monolithicSparse', fmt: 'vmdk', opts: '', expect: true },
  ];
  for (const c of cases) {
    test(`${c.name}: hasZeroInit is ${c.expect}`, async () => {
      const f = t.path(`${c.name.replace(/[^a-z0-9]+/gi, '_')}.${c.fmt}`);
      const extra = c.backing ? ['-b', t.path('base.qcow2'), '-F', 'qcow2'] : [];
      if (c.backing) qemuImg('create', '-q', '-f', 'qcow2', t.path('base.qcow2'), '4M');
      qemuImg('create', '-q', ...(c.secret ? SECRET : []), '-f', c.fmt, ...(c.opts ? ['-o', c.opts] : []), ...extra, f, '4M');
      const secrets = new SecretStore();
      secrets.add('s0', 'zero-init-pw');
      const key = c.fmt === 'luks' ? { 'key-secret': 's0' } : c.secret ? { 'encrypt.key-secret': 's0' } : {};
      const node = await openImage({ driver: c.fmt, file: { filename: f }, ...key }, { secrets, readOnly: true });
      try {
        assert.equal(node.hasZeroInit, c.expect);
      } finally {
        await node.close();
      }
    });
  }
});

// The raw format's runtime options `offset` and `size` (QEMU block/raw-format.c): the guest sees a
// window of the file (a partition inside a disk image). Compared with qemu-img 7.2 on the same
// files: info (human and JSON, the json: name in QEMU's key order), map, convert from the window,
// convert -n into it (bytes outside it untouched), resize refused, and every refusal's words.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';
import { assertSameAsQemuImg, platterInProcess, qemuImgRaw } from './harness.ts';

const t = tempDir('platter-raw-window-');
test.after(() => t.cleanup());
const KiB = 1024;
const disk = t.path('disk.raw');
writeFileSync(disk, randomBytes(1024 * KiB));
const opts = (o: string, file = disk) => `driver=raw,${o}${o ? ',' : ''}file.filename=${file}`;


test('info and map of a window (offset, size, both, suffixes) equal qemu-img info and map', { skip: SKIP_NO_QEMU }, async () => {
  for (const o of ['offset=64k', 'size=128k', 'offset=64k,size=128k', 'offset=100,size=512', 'offset=1M']) {
    await assertSameAsQemuImg(['info', '--image-opts', opts(o)]);
    await assertSameAsQemuImg(['info', '--output=json', '--image-opts', opts(o)]);
    await assertSameAsQemuImg(['map', '--output=json', '--image-opts', opts(o)]);
  }
});

test('a window past the file, a size not in sectors, a bad number: refused in qemu-img\'s words', { skip: SKIP_NO_QEMU }, async () => {
  for (const o of ['offset=2M', 'offset=512k,size=768k', 'size=1000', 'offset=abc', 'size=-1']) await assertSameAsQemuImg(['info', '--image-opts', opts(o)]);
  await assertSameAsQemuImg(['resize', '--image-opts', opts('offset=64k,size=128k'), '256k']);
});

test('convert from a window gives its bytes; convert -n into one writes only there, as qemu-img convert', { skip: SKIP_NO_QEMU }, async () => {
  const q = t.path('from-q.raw');
  const p = t.path('from-p.raw');
  assert.equal(qemuImgRaw('convert', '-O', 'raw', '--image-opts', opts('offset=64k,size=128k'), q).status, 0);
  assert.equal((await platterInProcess(['convert', '-O', 'raw', '--image-opts', opts('offset=64k,size=128k'), p])).status, 0);
  assert.deepEqual(readFileSync(p), readFileSync(disk).subarray(64 * KiB, 192 * KiB));
  assert.deepEqual(readFileSync(p), readFileSync(q));

  const src = t.path('src.raw');
  writeFileSync(src, randomBytes(128 * KiB));
  const wq = t.path('into-q.raw');
  const wp = t.path('into-p.raw');
  copyFileSync(disk, wq);
  copyFileSync(disk, wp);
  assert.equal(qemuImgRaw('convert', '-n', src, '--target-image-opts', opts('offset=64k,size=128k', wq)).status, 0);
  const r = await platterInProcess(['convert', '-n', src, '--target-image-opts', opts('offset=64k,size=128k', wp)]);
  assert.equal(r.status, 0, r.stderr);
  const after = readFileSync(wp);
  assert.deepEqual(after.subarray(64 * KiB, 192 * KiB), readFileSync(src));
  assert.deepEqual(after.subarray(0, 64 * KiB), readFileSync(disk).subarray(0, 64 * KiB));
  assert.deepEqual(after.subarray(192 * KiB), readFileSync(disk).subarray(192 * KiB));
  assert.deepEqual(after, readFileSync(wq));
});

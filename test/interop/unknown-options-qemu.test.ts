// An option no driver takes is refused, in qemu-img 7.2's words (bdrv_open_inherit's "Block
// format 'X' does not support the option 'Y'" / "Block protocol 'X' doesn't support the option
// 'Y'"), never silently ignored; QEMU's own tuning options that Platter does not act on (qcow2's
// cache sizes, file's aio) still open, and json: names keep only the options that name an image.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';
import { assertSameAsQemuImg, platterInProcess, qemuImgRaw } from './harness.ts';

const t = tempDir('platter-unknown-options-');
test.after(() => t.cleanup());

/** A 1 MiB qcow2 made by qemu-img and a 64 KiB raw file of `fill` bytes, named after `tag`. */
function images(tag: string, fill: number): { q: string; r: string } {
  const q = t.path(`${tag}.qcow2`);
  const r = t.path(`${tag}.raw`);
  assert.equal(qemuImgRaw('create', '-f', 'qcow2', q, '1M').status, 0);
  writeFileSync(r, Buffer.alloc(65536, fill));
  return { q, r };
}

test('unknown options on a format, on its file, on a protocol at the top and inside json: are refused as qemu-img refuses them', { skip: SKIP_NO_QEMU }, async () => {
  const { q, r } = images('a', 1);
  for (const args of [
    ['info', '--image-opts', `driver=qcow2,bogus=1,file.filename=${q}`],
    ['info', '--image-opts', `driver=qcow2,file.bogus=1,file.filename=${q}`],
    ['info', '--image-opts', `driver=raw,file.filename=${r},file.lokcing=off`],
    ['info', '--image-opts', `driver=file,filename=${r},bogus=2`],
    ['info', `json:{"driver":"raw","sizee":"512","file":{"driver":"file","filename":"${r}"}}`],
    ['map', '--output=json', '--image-opts', `driver=qcow2,l2-cahce-size=1M,file.filename=${q}`],
    ['convert', '-O', 'raw', '--image-opts', `driver=raw,ofset=512,file.filename=${r}`, t.path('never.raw')],
  ]) await assertSameAsQemuImg(args);
});

test('QEMU runtime options Platter does not act on still open, and json: names show only the options that name an image', { skip: SKIP_NO_QEMU }, async () => {
  const { q, r } = images('b', 2);
  for (const args of [
    ['info', '--image-opts', `driver=qcow2,l2-cache-size=1M,cache-clean-interval=0,lazy-refcounts=on,file.filename=${q}`],
    ['info', '--image-opts', `driver=qcow2,detect-zeroes=on,node-name=n1,file.filename=${q},file.locking=off,file.aio=threads`],
    ['info', '--output=json', '--image-opts', `driver=raw,offset=4k,detect-zeroes=on,file.filename=${r}`],
  ]) await assertSameAsQemuImg(args);
});

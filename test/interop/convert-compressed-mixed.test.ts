// Interop: convert -c of data that is half random (stored uncompressed, as QEMU stores clusters
// that do not shrink) and half text (compressed) gives an image qemu-img compare finds identical
// and qemu-img check finds clean, every time (the parallel writers once raced on a new L2 table:
// guest clusters were lost and their host cluster leaked). The layout is compared with
// qemu-img's own convert -c: the same extents compressed (no host offset in qemu-img map).

import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, writeSync, closeSync, readFileSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { join } from 'node:path';
import { SKIP_NO_QEMU, tempDir, REPO_ROOT } from '../helpers/qemu.ts';
import { platterInProcess, qemuImg, qemuImgRaw } from './harness.ts';
import { byteEntropy, looksIncompressible, sampleDoesNotShrink } from '../../core/workers/tasks/compression.ts';

const MiB = 1 << 20;

/** 16 MiB: 1 MiB extents alternately random and source text of this repository. */
function makeMixed(path: string): void {
  const text = Buffer.concat(['core/jobs/convert.ts', 'core/formats/qcow2/node.ts', 'core/drivers/open.ts'].map((f) => readFileSync(join(REPO_ROOT, f))));
  const fd = openSync(path, 'w');
  const extent = Buffer.alloc(MiB);
  for (let i = 0; i < 16; i++) {
    if (i % 2 === 0) randomFillSync(extent);
    else for (let p = 0; p < MiB; p += text.length) text.copy(extent, p, 0, Math.min(text.length, MiB - p));
    writeSync(fd, extent, 0, MiB, i * MiB);
  }
  closeSync(fd);
}

/** Which 1 MiB extents qemu-img map shows without a host offset (stored compressed). */
function compressedExtents(img: string): number[] {
  const map = JSON.parse(qemuImg('map', '--output=json', img)) as { start: number; length: number; offset?: number }[];
  const out = new Set<number>();
  for (const e of map) if (e.offset === undefined) for (let p = e.start; p < e.start + e.length; p += MiB) out.add(Math.floor(p / MiB));
  return [...out].sort((a, b) => a - b);
}

describe('convert -c of half random, half text data (qemu-img compare, check, map)', { skip: SKIP_NO_QEMU }, () => {
  const t = tempDir('platter-convert-c-mixed-');
  after(() => t.cleanup());

  test('five conversions in a row: each identical under qemu-img compare and clean under qemu-img check', async () => {
    const src = t.path('mixed.raw');
    makeMixed(src);
    for (let i = 0; i < 5; i++) {
      const out = t.path(`c${i}.qcow2`);
      const r = await platterInProcess(['convert', '-c', '-f', 'raw', '-O', 'qcow2', src, out]);
      assert.equal(r.status, 0, r.stderr);
      const cmp = qemuImgRaw('compare', '-f', 'raw', '-F', 'qcow2', src, out);
      assert.equal(cmp.status, 0, `run ${i}: ${cmp.stdout}${cmp.stderr}`);
      const chk = qemuImgRaw('check', out);
      assert.equal(chk.status, 0, `run ${i}: ${chk.stdout}${chk.stderr}`);
    }
  });

  test('the text extents are compressed and the random ones are not, as with qemu-img convert -c', async () => {
    const src = t.path('mixed2.raw');
    makeMixed(src);
    const mine = t.path('p.qcow2');
    const theirs = t.path('q.qcow2');
    const r = await platterInProcess(['convert', '-c', '-f', 'raw', '-O', 'qcow2', src, mine]);
    assert.equal(r.status, 0, r.stderr);
    qemuImg('convert', '-c', '-f', 'raw', '-O', 'qcow2', src, theirs);
    assert.deepEqual(compressedExtents(mine), [1, 3, 5, 7, 9, 11, 13, 15]);
    assert.deepEqual(compressedExtents(mine), compressedExtents(theirs));
  });
});

test('looksIncompressible: random clusters yes; text, zeros, short or repetitive data no', () => {
  const random = randomFillSync(Buffer.alloc(65536));
  assert.ok(byteEntropy(random) > 7.99);
  assert.equal(looksIncompressible(random), true);
  assert.equal(looksIncompressible(Buffer.alloc(65536)), false);
  assert.equal(looksIncompressible(Buffer.from('the quick brown fox '.repeat(3300))), false);
  assert.equal(looksIncompressible(random.subarray(0, 1024)), false); // too short to judge
  // Flat histograms that deflate still shrinks: runs of each byte value, and a repeated ramp.
  const runs = Buffer.alloc(65536);
  for (let i = 0; i < runs.length; i++) runs[i] = i >> 8;
  assert.equal(byteEntropy(runs), 8);
  assert.equal(looksIncompressible(runs), false);
  const ramp = Buffer.alloc(65536);
  for (let i = 0; i < ramp.length; i++) ramp[i] = i & 0xff;
  assert.equal(looksIncompressible(ramp), false);
  // Random data repeated within deflate's window: flat histogram, but 4-byte sequences recur.
  const twice = Buffer.concat([random.subarray(0, 2048), random.subarray(0, 2048)]);
  const repeatedRandom = Buffer.concat(Array.from({ length: 16 }, () => twice));
  assert.equal(looksIncompressible(repeatedRandom), false);
  assert.equal(sampleDoesNotShrink(random), true);
});

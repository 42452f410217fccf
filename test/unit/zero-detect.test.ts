// convert -S zero detection (core/jobs/zero-detect.ts) against a byte-by-byte reference on
// buffers with zero runs at every alignment, zeros only in the first/middle/last byte of a block
// (the quick checks), and partial tail blocks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isZero, scanGranularity, splitZeroRuns, type Run } from '../../core/jobs/zero-detect.ts';
import { Rng } from '../fuzz/rng.ts';

function reference(buf: Buffer, minZero: number, granularity: number): Run[] {
  const blocks: boolean[] = [];
  for (let p = 0; p < buf.length; p += granularity) blocks.push(buf.subarray(p, Math.min(buf.length, p + granularity)).every((b) => b === 0));
  const runs: Run[] = [];
  const push = (start: number, length: number, zero: boolean) => {
    if (length <= 0) return;
    const last = runs[runs.length - 1];
    if (last && last.zero === zero) last.length += length;
    else runs.push({ start, length, zero });
  };
  let i = 0;
  while (i < blocks.length) {
    let j = i;
    while (j < blocks.length && blocks[j] === blocks[i]) j++;
    const start = i * granularity;
    const end = Math.min(buf.length, j * granularity);
    push(start, end - start, blocks[i]! && end - start >= minZero);
    i = j;
  }
  return runs;
}

test('splitZeroRuns matches a byte-by-byte reference on random layouts', () => {
  const rng = new Rng(7);
  for (let iter = 0; iter < 300; iter++) {
    const len = 512 + rng.below(300_000);
    const buf = Buffer.alloc(len);
    // Random data regions, some single non-zero bytes at block edges and middles.
    for (let k = rng.below(6); k > 0; k--) {
      const at = rng.below(len);
      const n = Math.min(len - at, 1 + rng.below(40_000));
      for (let i = 0; i < n; i++) buf[at + i] = 1 + rng.below(255);
    }
    for (let k = rng.below(8); k > 0; k--) buf[rng.below(len)] = 0xff;
    const minZero = [512, 4096, 65536, 8192][rng.below(4)]!;
    const g = scanGranularity(minZero);
    assert.deepEqual(splitZeroRuns(buf, minZero, g), reference(buf, minZero, g), `iteration ${iter} (len ${len}, -S ${minZero})`);
  }
});

test('isZero sees a single non-zero byte anywhere, including between the quick-check points', () => {
  const buf = Buffer.alloc(200_000);
  assert.equal(isZero(buf), true);
  for (const at of [0, 1, 4095, 65535, 65536, 100_000, 131_071, 199_999, 32_768 + 7]) {
    buf[at] = 3;
    assert.equal(isZero(buf), false, `non-zero byte at ${at}`);
    buf[at] = 0;
  }
});

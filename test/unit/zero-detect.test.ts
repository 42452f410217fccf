// convert -S zero detection (core/jobs/zero-detect.ts, qemu-img's is_allocated_sectors_min):
// the runs cover the buffer in order, zero runs hold only zeros, and known layouts split as
// qemu-img splits them (interop/cli-qemu-parity compares whole conversions with qemu-img).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isZero, qemuZeroRuns } from '../../core/jobs/zero-detect.ts';
import { Rng } from '../fuzz/rng.ts';

test('qemuZeroRuns covers the buffer in order and marks only zeros as zero, on random layouts', () => {
  const rng = new Rng(7);
  for (let iter = 0; iter < 300; iter++) {
    const len = 512 * (1 + rng.below(600));
    const buf = Buffer.alloc(len);
    for (let k = rng.below(6); k > 0; k--) {
      const at = rng.below(len);
      const n = Math.min(len - at, 1 + rng.below(40_000));
      for (let i = 0; i < n; i++) buf[at + i] = 1 + rng.below(255);
    }
    for (let k = rng.below(8); k > 0; k--) buf[rng.below(len)] = 0xff;
    const min = [1, 8, 16, 128][rng.below(4)]!;
    const runs = qemuZeroRuns(buf, rng.below(64), min, 2 ** Math.floor(Math.log2(min)));
    let at = 0;
    for (const r of runs) {
      assert.equal(r.start, at, `iteration ${iter}: runs are contiguous`);
      assert.ok(r.length > 0);
      if (r.zero) assert.ok(isZero(buf.subarray(r.start, r.start + r.length)), `iteration ${iter}: a zero run holds data`);
      at += r.length;
    }
    assert.equal(at, len, `iteration ${iter}: runs cover the buffer`);
  }
});

test('qemuZeroRuns keeps short zero runs inside data and pulls long ones to alignment boundaries, as qemu-img', () => {
  const K = 1024;
  // data 1k, zeros 7k, data 1k, zeros 8k, data 1k, zeros 46k; -S 8k (16 sectors), alignment 16.
  const buf = Buffer.alloc(64 * K);
  buf.fill(1, 0, K);
  buf.fill(1, 8 * K, 9 * K);
  buf.fill(1, 17 * K, 18 * K);
  assert.deepEqual(qemuZeroRuns(buf, 0, 16, 16), [
    { start: 0, length: 24 * K, zero: false },
    { start: 24 * K, length: 40 * K, zero: true },
  ]);
  // A buffer that starts with zeros is a zero run however short (is_allocated_sectors).
  const head = Buffer.alloc(4 * K);
  head.fill(1, 2 * K);
  assert.deepEqual(qemuZeroRuns(head, 0, 16, 1), [
    { start: 0, length: 2 * K, zero: true },
    { start: 2 * K, length: 2 * K, zero: false },
  ]);
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

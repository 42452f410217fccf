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

/** qemu-img's is_allocated_sectors_min as written there: every sector looked at on its own. */
function sectorBySectorRuns(buf: Buffer, first: number, min: number, alignment: number): { start: number; length: number; zero: boolean }[] {
  const total = Math.ceil(buf.length / 512);
  const zeroAt = (i: number) => buf.subarray(i * 512, Math.min(buf.length, (i + 1) * 512)).every((b) => b === 0);
  const allocated = (at: number, n: number): [boolean, number] => {
    let z = zeroAt(at);
    let i = 1;
    while (i < n && zeroAt(at + i) === z) i++;
    if (i === n) return [!z, i];
    const tail = (first + at + i) & (alignment - 1);
    if (tail) {
      if (z && i <= tail) z = false;
      if (!z) i = Math.min(i + alignment - tail, n);
      else i -= tail;
    }
    return [!z, i];
  };
  const runs: { start: number; length: number; zero: boolean }[] = [];
  for (let at = 0; at < total; ) {
    const n = total - at;
    let [a, count] = allocated(at, n);
    if (a) {
      let used = count;
      let checked = count;
      while (checked < n) {
        const [a2, c] = allocated(at + checked, n - checked);
        checked += c;
        if (a2) used = checked;
        else if (c >= Math.min(min, n)) break;
      }
      count = used;
    }
    const start = at * 512;
    const length = Math.min(buf.length, (at + count) * 512) - start;
    const last = runs[runs.length - 1];
    if (last && last.zero === !a && last.start + last.length === start) last.length += length;
    else runs.push({ start, length, zero: !a });
    at += count;
  }
  return runs;
}

test('qemuZeroRuns measures long zero runs 64 KiB or a whole buffer at a time, looks at three bytes of each data sector, and still splits exactly as a sector-by-sector scan', () => {
  const MiB = 1 << 20;
  const shaped: Buffer[] = [Buffer.alloc(MiB), Buffer.alloc(MiB, 0x11), Buffer.alloc(MiB + 700)];
  shaped[2]!.fill(0x22, 4096, 4096 + 512 * 9 + 3);
  const tailData = Buffer.alloc(MiB);
  tailData.fill(0x33, MiB - 513);
  const headData = Buffer.alloc(MiB);
  headData.fill(0x44, 0, 700_001);
  shaped.push(tailData, headData);
  for (const [i, buf] of shaped.entries()) {
    for (const [min, alignment] of [[1, 1], [8, 8], [128, 128]] as const) {
      assert.deepEqual(qemuZeroRuns(buf, 3, min, alignment), sectorBySectorRuns(buf, 3, min, alignment), `shaped buffer ${i}, -S ${min * 512}`);
    }
  }
  const rng = new Rng(11);
  for (let iter = 0; iter < 300; iter++) {
    // Up to 2 MiB, not always whole sectors, mostly zeros with data islands (long zero runs).
    const len = 512 * (1 + rng.below(4096)) - (rng.below(4) === 0 ? rng.below(511) : 0);
    const buf = Buffer.alloc(len);
    for (let k = rng.below(5); k > 0; k--) {
      const at = rng.below(len);
      const end = Math.min(len, at + 1 + rng.below(70_000));
      if (rng.below(2) === 0) buf.fill(1 + rng.below(255), at, end);
      else {
        // Data with zero bytes and zero runs of every length inside it, at any offset.
        for (let p = at; p < end; ) {
          const run = 1 + rng.below(rng.below(4) === 0 ? 1500 : 40);
          if (rng.below(3) === 0) buf.fill(0, p, Math.min(end, p + run));
          else for (let q = p; q < Math.min(end, p + run); q++) buf[q] = rng.below(4) === 0 ? 0 : 1 + rng.below(255);
          p += run;
        }
      }
    }
    for (let k = rng.below(6); k > 0; k--) buf[rng.below(len)] = 0x5a;
    const min = [1, 8, 16, 128][rng.below(4)]!;
    const first = rng.below(256);
    const alignment = 2 ** Math.floor(Math.log2(min));
    assert.deepEqual(qemuZeroRuns(buf, first, min, alignment), sectorBySectorRuns(buf, first, min, alignment), `iteration ${iter}`);
  }
});

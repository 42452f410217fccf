// The rate limit of convert -r / commit -r (core/util/leaky-bucket.ts): QEMU's leaky bucket with
// a tenth of a second of burst; a wait is cancellable.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LeakyBucket } from '../../core/util/leaky-bucket.ts';
import { BlockError } from '../../core/errors.ts';

test('a burst up to the bucket passes at once; what follows waits until the bucket drained to a tenth of a second', async () => {
  const b = new LeakyBucket(10_000);
  let t0 = performance.now();
  await b.take(10_000); // an empty bucket lets any one request through
  assert.ok(performance.now() - t0 < 50);
  t0 = performance.now();
  await b.take(1); // 10,000 bytes in: wait until 1,000 remain, 0.9 s at 10,000 B/s
  assert.ok(performance.now() - t0 >= 850, `waited ${(performance.now() - t0).toFixed(0)} ms`);
});

test('an abort during the wait rejects at once with a cancellation', async () => {
  const b = new LeakyBucket(1000);
  await b.take(100_000); // 100 s of bytes ahead
  const ac = new AbortController();
  const t0 = performance.now();
  setTimeout(() => ac.abort(), 50);
  await assert.rejects(b.take(1, ac.signal), (e: BlockError) => e.kind === 'Cancelled');
  assert.ok(performance.now() - t0 < 1000);
});

test('a rate must be positive', () => {
  assert.throws(() => new LeakyBucket(0), RangeError);
  assert.throws(() => new LeakyBucket(Number.NaN), RangeError);
});

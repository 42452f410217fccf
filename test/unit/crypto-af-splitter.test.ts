// The LUKS1 anti-forensic splitter: merge(split(key)) gives the key back for every hash and key
// length LUKS uses, and damaging any one stripe loses the key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afMerge, afSplit } from '../../core/crypto/af-splitter.ts';
import type { HashAlg } from '../../core/crypto/algorithms.ts';

for (const [hash, keyLen] of [['sha256', 64], ['sha1', 32], ['sha512', 16], ['ripemd160', 24]] as [HashAlg, number][]) {
  test(`AF split/merge round-trips a ${keyLen}-byte key with ${hash} (4000 stripes)`, () => {
    const key = randomBytes(keyLen);
    const split = afSplit(key, 4000, hash);
    assert.equal(split.length, keyLen * 4000);
    assert.notDeepEqual(split.subarray(split.length - keyLen), key, 'the key is never stored as is');
    assert.deepEqual(afMerge(split, keyLen, 4000, hash), key);
  });
}

test('AF merge with one damaged stripe does not give the key back', () => {
  const key = randomBytes(32);
  const split = afSplit(key, 4000, 'sha256');
  split[1234 * 32 + 5]! ^= 1;
  assert.notDeepEqual(afMerge(split, 32, 4000, 'sha256'), key);
});

test('AF merge refuses material shorter than key length x stripes', () => {
  assert.throws(() => afMerge(Buffer.alloc(100), 32, 4000, 'sha256'), /expected 128000/);
  assert.throws(() => afSplit(Buffer.alloc(32), 0, 'sha256'), /stripes 0/);
});

// The fuzz harness's per-case timeout: a LUKS header that declares millions of PBKDF2 iterations
// is slow by its own declaration, so its case gets that much more time; other images (and
// iteration counts Platter refuses before deriving anything) get the base timeout.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { caseTimeoutMs, declaredPbkdf2Iterations } from '../fuzz/budget.ts';
import { MAX_PBKDF2_ITERATIONS } from '../../core/crypto/validate.ts';

function luksHeader(digestIterations: number, slots: [active: boolean, iterations: number][]): Buffer {
  const h = Buffer.alloc(592);
  Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]).copy(h, 0);
  h.writeUInt16BE(1, 6);
  h.writeUInt32BE(digestIterations, 164);
  slots.forEach(([active, iterations], i) => {
    h.writeUInt32BE(active ? 0x00ac71f3 : 0x0000dead, 208 + i * 48);
    h.writeUInt32BE(iterations, 208 + i * 48 + 4);
  });
  return h;
}

test('a LUKS case gets the base timeout plus its declared key derivations', () => {
  const small = luksHeader(1000, [[true, 2000], [false, 4_000_000]]);
  assert.equal(declaredPbkdf2Iterations(small), 3000, 'inactive slots cost nothing');
  const big = luksHeader(1000, [[true, 4_166_144], [true, 2000]]);
  assert.equal(declaredPbkdf2Iterations(big), 4_166_144 + 1000 + 2000 + 1000);
  assert.ok(caseTimeoutMs(big, 10_000) > 30_000, 'millions of iterations are not a hang');
  assert.ok(caseTimeoutMs(small, 10_000) < 10_100);
});

test('counts Platter refuses up front, and images that are not LUKS, add nothing', () => {
  assert.equal(declaredPbkdf2Iterations(luksHeader(1000, [[true, MAX_PBKDF2_ITERATIONS + 1]])), 1000);
  assert.equal(declaredPbkdf2Iterations(luksHeader(MAX_PBKDF2_ITERATIONS + 1, [[true, 5]])), 5);
  assert.equal(caseTimeoutMs(Buffer.alloc(4096), 10_000), 10_000);
  assert.equal(caseTimeoutMs(Buffer.alloc(10), 10_000), 10_000);
});

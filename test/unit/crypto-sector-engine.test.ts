// The bulk sector engine gives the same bytes as OpenSSL's own XTS/CBC/CTR run one sector at a
// time with dm-crypt IVs (plain64 = 64-bit little-endian sector number), and round-trips.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { cryptSectors, type SectorCipherSpec } from '../../core/crypto/sector-engine.ts';

/** One OpenSSL cipher object per 512-byte sector: slow, obviously right. */
function perSector(mode: 'xts' | 'cbc' | 'ctr', key: Buffer, start: number, data: Buffer, encrypt: boolean, iv: (s: number) => Buffer): Buffer {
  const out = Buffer.alloc(data.length);
  const bits = (mode === 'xts' ? key.length / 2 : key.length) * 8;
  for (let s = 0; s < data.length / 512; s++) {
    const c = encrypt ? createCipheriv(`aes-${bits}-${mode}`, key, iv(start + s)) : createDecipheriv(`aes-${bits}-${mode}`, key, iv(start + s));
    c.setAutoPadding(false);
    Buffer.concat([c.update(data.subarray(s * 512, s * 512 + 512)), c.final()]).copy(out, s * 512);
  }
  return out;
}

const plain64 = (s: number) => {
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64LE(BigInt(s));
  return iv;
};

const cases: { mode: 'xts' | 'cbc' | 'ctr'; keyLen: number }[] = [
  { mode: 'xts', keyLen: 64 },
  { mode: 'xts', keyLen: 32 },
  { mode: 'cbc', keyLen: 32 },
  { mode: 'cbc', keyLen: 16 },
  { mode: 'ctr', keyLen: 24 },
];

for (const { mode, keyLen } of cases) {
  test(`aes ${mode} (${keyLen}-byte key) plain64 matches OpenSSL per-sector and round-trips`, () => {
    const key = randomBytes(keyLen);
    const data = randomBytes(512 * 300); // more than one 128-sector chunk
    const start = 2 ** 32 - 5; // crosses the 32-bit boundary of the sector number
    const spec: SectorCipherSpec = { family: 'aes', mode, ivgen: 'plain64' };
    const enc = Buffer.from(cryptSectors(spec, key, start, data, true));
    assert.deepEqual(enc, perSector(mode, key, start, data, true, plain64));
    assert.deepEqual(Buffer.from(cryptSectors(spec, key, start, enc, false)), data);
  });
}

test('plain truncates the sector number to 32 bits, plain64 does not', () => {
  const key = randomBytes(32);
  const data = randomBytes(512);
  const a = cryptSectors({ family: 'aes', mode: 'xts', ivgen: 'plain' }, key, 2 ** 32 + 7, data, true);
  const b = cryptSectors({ family: 'aes', mode: 'xts', ivgen: 'plain64' }, key, 7, data, true);
  const c = cryptSectors({ family: 'aes', mode: 'xts', ivgen: 'plain64' }, key, 2 ** 32 + 7, data, true);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

test('essiv encrypts the plain64 IV with AES keyed by the hash of the key', () => {
  const key = randomBytes(16);
  const data = randomBytes(512 * 3);
  const salt = createHash('sha256').update(key).digest();
  const essiv = (s: number) => {
    const c = createCipheriv('aes-256-ecb', salt, null);
    c.setAutoPadding(false);
    return c.update(plain64(s));
  };
  const spec: SectorCipherSpec = { family: 'aes', mode: 'cbc', ivgen: 'essiv', ivgenHash: 'sha256' };
  const enc = Buffer.from(cryptSectors(spec, key, 10, data, true));
  assert.deepEqual(enc, perSector('cbc', key, 10, data, true, essiv));
  assert.deepEqual(Buffer.from(cryptSectors(spec, key, 10, enc, false)), data);
});

test('ecb encrypts every block alike, whatever the sector', () => {
  const key = randomBytes(32);
  const block = randomBytes(16);
  const data = Buffer.concat(Array.from({ length: 64 }, () => block));
  const enc = Buffer.from(cryptSectors({ family: 'aes', mode: 'ecb', ivgen: 'plain64' }, key, 99, data, true));
  assert.deepEqual(enc.subarray(0, 16), enc.subarray(512, 528));
  assert.deepEqual(Buffer.from(cryptSectors({ family: 'aes', mode: 'ecb', ivgen: 'plain64' }, key, 3, enc, false)), data);
});

test('a length that is not whole sectors is refused, not padded', () => {
  assert.throws(() => cryptSectors({ family: 'aes', mode: 'xts', ivgen: 'plain64' }, randomBytes(64), 0, Buffer.alloc(100), true), /multiple of 512/);
});

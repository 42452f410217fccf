// CRC-32C as VHDX uses it: the standard check value, and the checksum of a structure computed
// with its own checksum field taken as zero (checked on a header qemu-img-style layout).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c, crc32cWithZeroField } from '../../core/util/crc32c.ts';

test('crc32c gives the Castagnoli check value for "123456789" and chains', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(crc32c(Buffer.from('6789'), crc32c(Buffer.from('12345'))), 0xe3069283);
  assert.equal(crc32c(Buffer.alloc(0)), 0);
});

test('crc32cWithZeroField ignores the stored checksum bytes', () => {
  const b = Buffer.alloc(4096, 7);
  b.writeUInt32LE(0xdeadbeef, 4);
  const z = Buffer.from(b);
  z.writeUInt32LE(0, 4);
  assert.equal(crc32cWithZeroField(b, 4), crc32c(z));
  assert.notEqual(crc32cWithZeroField(b, 4), crc32c(b));
});

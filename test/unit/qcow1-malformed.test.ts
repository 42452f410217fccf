// Malformed QCOW v1 headers are refused with qemu-img's messages (the CVE-2014-0222/0223 class:
// cluster and L2 sizes out of range, L1 size overflow), without a crash, a hang, a huge allocation
// or a write to the file.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { BlockError } from '../../core/errors.ts';
import { assertPatchedImageRefused } from '../helpers/malformed.ts';
import { tempDir } from '../helpers/qemu.ts';

/** Byte offsets in the QCOW v1 header (block/qcow.c QCowHeader). */
const VERSION_AT = 4;
const BACKING_OFFSET_AT = 8;
const BACKING_SIZE_AT = 16;
const SIZE_AT = 24;
const CLUSTER_BITS_AT = 32;
const L2_BITS_AT = 33;
const CRYPT_AT = 36;
const L1_OFFSET_AT = 40;

const refuses = (patch: (b: Buffer) => void, kind: BlockError['kind'], message: RegExp): Promise<void> =>
  assertPatchedImageRefused({ name: 'm.qcow', format: 'qcow', size: 4 << 20, patch, kind, message });

test('rejects qcow cluster_bits outside 9..16 with qemu-img\'s message', async () => {
  for (const bits of [0, 8, 17, 63, 255]) await refuses((b) => b.writeUInt8(bits, CLUSTER_BITS_AT), 'InvalidImage', /Cluster size must be between 512 and 64k/);
});

test('rejects qcow l2_bits outside 6..13 with qemu-img\'s message', async () => {
  for (const bits of [5, 14, 200]) await refuses((b) => b.writeUInt8(bits, L2_BITS_AT), 'InvalidImage', /L2 table size must be between 512 and 64k/);
});

test('rejects a qcow L1 size overflow (huge virtual size) before allocating anything', async () => {
  // 2^62 bytes with 512-byte clusters and 64-entry L2 tables: 2^47 L1 entries.
  await refuses(
    (b) => {
      b.writeBigUInt64BE(1n << 62n, SIZE_AT);
      b.writeUInt8(9, CLUSTER_BITS_AT);
      b.writeUInt8(6, L2_BITS_AT);
    },
    'InvalidImage',
    /Image too large/,
  );
  await refuses((b) => b.writeBigUInt64BE(0xffffffffffffff00n, SIZE_AT), 'InvalidImage', /Image too large/);
});

test('rejects a qcow L1 table that extends beyond the end of the file', async () => {
  // 2^40 bytes at 4 KiB x 512: 512 Ki L1 entries (4 MiB of table) in a 560-byte file.
  await refuses((b) => b.writeBigUInt64BE(1n << 40n, SIZE_AT), 'InvalidImage', /L1 table \(524288 entries at offset 48\) extends beyond the end of the file \(560 bytes\)/);
  await refuses((b) => b.writeBigUInt64BE(1n << 50n, L1_OFFSET_AT), 'InvalidImage', /extends beyond the end of the file/);
});

test('rejects qcow versions other than 1 pointing at qcow2, and tiny sizes, as qemu-img does', async () => {
  await refuses((b) => b.writeUInt32BE(2, VERSION_AT), 'Unsupported', /qcow \(v1\) does not support qcow version 2/);
  await refuses((b) => b.writeBigUInt64BE(1n, SIZE_AT), 'InvalidImage', /Image size is too small \(must be at least 2 bytes\)/);
});

test('refuses unknown crypt methods as invalid (AES, method 1, is supported: test/interop/qcow1-aes-*)', async () => {
  await refuses((b) => b.writeUInt32BE(2, CRYPT_AT), 'InvalidImage', /invalid encryption method in qcow header/);
  await refuses((b) => b.writeUInt32BE(7, CRYPT_AT), 'InvalidImage', /invalid encryption method in qcow header/);
});

test('rejects a qcow backing file name longer than QEMU allows or outside the file', async () => {
  await refuses(
    (b) => {
      b.writeBigUInt64BE(48n, BACKING_OFFSET_AT);
      b.writeUInt32BE(2000, BACKING_SIZE_AT);
    },
    'InvalidImage',
    /Backing file name too long/,
  );
  await refuses(
    (b) => {
      b.writeBigUInt64BE(1n << 30n, BACKING_OFFSET_AT);
      b.writeUInt32BE(10, BACKING_SIZE_AT);
    },
    'InvalidImage',
    /Backing file name .* extends beyond the end of the file/,
  );
});

test('a qcow L2 entry with an unaligned offset is a Corrupt error on read', async () => {
  const t = tempDir();
  try {
    const img = t.path('c.qcow');
    await createImage({ format: 'qcow', filename: img, size: 4 << 20 });
    let node = await openImage(img, { format: 'qcow' });
    await node.write(0, Buffer.alloc(4096, 3));
    await node.close();
    const bytes = readFileSync(img);
    const l2 = Number(bytes.readBigUInt64BE(48)); // L1 entry 0
    bytes.writeBigUInt64BE(12345n, l2 + 8); // cluster 1 -> unaligned offset
    writeFileSync(img, bytes);
    node = await openImage(img, { format: 'qcow', readOnly: true });
    try {
      assert.deepEqual(await node.read(0, 4096), Buffer.alloc(4096, 3));
      await assert.rejects(node.read(4096, 512), (e: unknown) => e instanceof BlockError && e.kind === 'Corrupt');
    } finally {
      await node.close();
    }
  } finally {
    t.cleanup();
  }
});

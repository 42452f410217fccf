// Malformed VDI headers are refused with a clear BlockError (qemu-img's words where it has them),
// without a crash, a hang, a huge allocation or a write to the file.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { BlockError } from '../../core/errors.ts';
import { assertPatchedImageRefused } from '../helpers/malformed.ts';
import { tempDir } from '../helpers/qemu.ts';

/** Byte offsets in the VDI v1.1 header. */
const BLOCK_SIZE_AT = 0x178;
const BLOCKS_IN_IMAGE_AT = 0x180;
const DISK_SIZE_AT = 0x170;
const OFFSET_DATA_AT = 0x158;

const refuses = (patch: (b: Buffer) => void, kind: BlockError['kind'], message: RegExp): Promise<void> =>
  assertPatchedImageRefused({ name: 'm.vdi', format: 'vdi', size: 2 << 20, patch, kind, message });

test('rejects a VDI block size other than 1 MiB with qemu-img\'s message', async () => {
  await refuses((b) => b.writeUInt32LE(2 << 20, BLOCK_SIZE_AT), 'Unsupported', /unsupported VDI image \(block size 2097152 is not 1048576\)/);
});

test('rejects a VDI block count past QEMU\'s limit (block map larger than one request)', async () => {
  await refuses((b) => b.writeUInt32LE(0x40000000, BLOCKS_IN_IMAGE_AT), 'Unsupported', /unsupported VDI image \(too many blocks 1073741824, max is 536870784\)/);
});

test('rejects a VDI disk size the block count cannot cover (blocks x block size overflow)', async () => {
  await refuses((b) => b.writeBigUInt64LE(4n << 30n, DISK_SIZE_AT), 'Unsupported', /disk size 4294967296, image bitmap has room for 2097152/);
});

test('rejects a VDI disk size above 2^53 without losing precision', async () => {
  await refuses((b) => b.writeBigUInt64LE(0xffffffffffffff00n, DISK_SIZE_AT), 'Unsupported', /Unsupported VDI image size \(size is 0xffffffffffffff00/);
});

test('opens a VDI whose block map reaches past the end of the file, as QEMU does, without a huge allocation, and takes no writes', async () => {
  // 500M entries would be a 2 GB map; the file is 1 KiB. qemu-img info opens it (its read of the
  // map is padded with zeros); Platter keeps the stored entries only.
  const t = tempDir();
  try {
    const img = t.path('big.vdi');
    await createImage({ format: 'vdi', filename: img, size: 2 << 20 });
    const bytes = readFileSync(img);
    bytes.writeUInt32LE(500_000_000, BLOCKS_IN_IMAGE_AT);
    writeFileSync(img, bytes);
    const before = process.memoryUsage().arrayBuffers;
    const node = await openImage(img, { format: 'vdi' });
    try {
      assert.ok(process.memoryUsage().arrayBuffers - before < 64 << 20, 'no map of the full size in memory');
      assert.deepEqual(await node.read(0, 512), Buffer.alloc(512));
      await assert.rejects(node.write(0, Buffer.alloc(512, 1)), (e: unknown) => e instanceof BlockError && e.kind === 'Unsupported' && /reaches past the end of the file/.test(e.message));
    } finally {
      await node.close();
    }
    assert.deepEqual(readFileSync(img), bytes, 'the file is unchanged');
  } finally {
    t.cleanup();
  }
});

test('rejects VDI data that overlaps the block map', async () => {
  await refuses((b) => b.writeUInt32LE(0x200, OFFSET_DATA_AT), 'InvalidImage', /data offset 512 overlaps the block map/);
});

test('rejects a file without the VDI signature', async () => {
  await refuses((b) => b.writeUInt32LE(0x12345678, 0x40), 'InvalidImage', /Image not in VDI format \(bad signature 12345678\)/);
});

test('a VDI block map entry pointing past the image is a Corrupt error on read, not a wild read', async () => {
  const t = tempDir();
  try {
    const img = t.path('e.vdi');
    await createImage({ format: 'vdi', filename: img, size: 2 << 20 });
    const bytes = readFileSync(img);
    bytes.writeUInt32LE(7, 0x200 + 4); // block 1 -> data block 7 of 2
    writeFileSync(img, bytes);
    const node = await openImage(img, { format: 'vdi', readOnly: true });
    try {
      assert.deepEqual(await node.read(0, 512), Buffer.alloc(512));
      await assert.rejects(node.read(1 << 20, 512), (e: unknown) => e instanceof BlockError && e.kind === 'Corrupt' && /points to data block 7/.test(e.message));
      const r = await node.impl.check!(undefined);
      assert.equal(r.corruptions, 1, r.messages.join("\n"));
      assert.match(r.messages[0]!, /block index 1 too large, is 7/);
    } finally {
      await node.close();
    }
  } finally {
    t.cleanup();
  }
});

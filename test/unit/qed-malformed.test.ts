// Malformed QED headers and tables are refused with a clear BlockError (qemu-img's words first),
// without a crash, a hang, a huge allocation or a write to the file, even when opened read-write
// (where a valid image with need-check set would be repaired).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { BlockError } from '../../core/errors.ts';
import { assertPatchedImageRefused } from '../helpers/malformed.ts';
import { tempDir } from '../helpers/qemu.ts';

/** Byte offsets in the QED header (qed_spec.txt). */
const CLUSTER_SIZE_AT = 4;
const TABLE_SIZE_AT = 8;
const HEADER_SIZE_AT = 12;
const FEATURES_AT = 16;
const L1_OFFSET_AT = 40;
const IMAGE_SIZE_AT = 48;
const BACKING_OFFSET_AT = 56;
const BACKING_SIZE_AT = 60;
const NEED_CHECK = 2n;
const CLUSTER = 64 * 1024;

/** The image is patched, then marked need-check (so a read-write open would try to repair it). */
const refuses = (patch: (b: Buffer) => void, kind: BlockError['kind'], message: RegExp): Promise<void> =>
  assertPatchedImageRefused({
    name: 'm.qed',
    format: 'qed',
    size: 4 << 20,
    patch: (bytes) => {
      patch(bytes);
      bytes.writeBigUInt64LE(bytes.readBigUInt64LE(FEATURES_AT) | NEED_CHECK, FEATURES_AT);
    },
    kind,
    message,
  });

test('rejects a QED table size out of range (0, 32) or not a power of two (3)', async () => {
  for (const v of [0, 32, 3]) await refuses((b) => b.writeUInt32LE(v, TABLE_SIZE_AT), 'InvalidImage', new RegExp(`QED table size is invalid \\(${v};`));
});

test('rejects a QED cluster size that is not a power of two, or out of range', async () => {
  for (const v of [65537, 3 * 4096, 2048, 128 << 20]) await refuses((b) => b.writeUInt32LE(v, CLUSTER_SIZE_AT), 'InvalidImage', new RegExp(`QED cluster size is invalid \\(${v};`));
});

test('rejects a QED L1 table offset past the end of the file (or unaligned, or inside the header)', async () => {
  for (const v of [1n << 40n, 10n * BigInt(CLUSTER), 4096n, 0n, 0xffffffffffff0000n]) {
    await refuses((b) => b.writeBigUInt64LE(v, L1_OFFSET_AT), 'InvalidImage', /QED table offset is invalid/);
  }
});

test('rejects unknown QED feature bits by value, as qemu-img does', async () => {
  await refuses((b) => b.writeBigUInt64LE(0x10n, FEATURES_AT), 'Unsupported', /Unsupported QED features: 10/);
});

test('rejects a QED image size that is not whole sectors or more than the tables can map', async () => {
  await refuses((b) => b.writeBigUInt64LE(1000n, IMAGE_SIZE_AT), 'InvalidImage', /QED image size is invalid/);
  await refuses((b) => b.writeBigUInt64LE(1n << 60n, IMAGE_SIZE_AT), 'InvalidImage', /QED image size is invalid/);
});

test('rejects a QED header size that overflows, and a backing file name outside the header', async () => {
  await refuses((b) => b.writeUInt32LE(0x10000, HEADER_SIZE_AT), 'InvalidImage', /header size of 65536 clusters is invalid/);
  await refuses(
    (b) => {
      b.writeBigUInt64LE(1n, FEATURES_AT);
      b.writeUInt32LE(CLUSTER - 4, BACKING_OFFSET_AT);
      b.writeUInt32LE(100, BACKING_SIZE_AT);
    },
    'InvalidImage',
    /backing file name \(100 bytes at offset 65532\) is outside the 65536-byte header/,
  );
});

test('a QED L2 entry pointing past the end of the file is a Corrupt error on read; check counts it, repair clears it', async () => {
  const t = tempDir();
  try {
    const img = t.path('c.qed');
    await createImage({ format: 'qed', filename: img, size: 4 << 20 });
    let node = await openImage(img, { format: 'qed' });
    await node.write(0, Buffer.alloc(CLUSTER, 5));
    await node.write(CLUSTER, Buffer.alloc(CLUSTER, 6));
    await node.close();
    // Layout: header, L1 (4 clusters), data cluster 0, L2 table (4 clusters), data cluster 1.
    const bytes = readFileSync(img);
    const l2 = Number(bytes.readBigUInt64LE(CLUSTER)); // L1 entry 0
    bytes.writeBigUInt64LE(1n << 40n, l2 + 8); // L2 entry 1 -> far past EOF
    writeFileSync(img, bytes);
    node = await openImage(img, { format: 'qed', readOnly: true });
    try {
      assert.deepEqual(await node.read(0, 512), Buffer.alloc(512, 5));
      await assert.rejects(node.read(CLUSTER, 512), (e: unknown) => e instanceof BlockError && e.kind === 'Corrupt' && /invalid cluster offset 1099511627776/.test(e.message));
      const r = await node.impl.check!(undefined);
      assert.equal(r.corruptions, 1);
      assert.equal(r.leaks, 1, 'the data cluster the broken entry used to name');
    } finally {
      await node.close();
    }
    node = await openImage(img, { format: 'qed' });
    try {
      const r = await node.impl.check!('all');
      assert.equal(r.corruptionsFixed, 1);
      assert.equal(r.corruptions, 0);
      assert.equal(r.leaksFixed, 1, 'the orphaned last data cluster is cut off');
      assert.deepEqual(await node.read(CLUSTER, 512), Buffer.alloc(512), 'the cleared entry reads as unallocated');
    } finally {
      await node.close();
    }
  } finally {
    t.cleanup();
  }
});

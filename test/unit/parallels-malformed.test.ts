// Malformed parallels images are refused with a clear BlockError (QEMU's words where QEMU has
// them: iotest 076's "Catalog too large" and "Zero sectors per track", the format extension's
// checks), without a crash, a hang, a huge allocation or a write to the file; where QEMU opens a
// damaged image (BAT entries past the file, a BAT longer than the file), Platter opens it too
// and refuses only what would corrupt it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { BlockError } from '../../core/errors.ts';
import { parallelsDriver } from '../../core/formats/parallels/index.ts';
import { assertPatchedImageRefused, sha256File } from '../helpers/malformed.ts';
import { tempDir } from '../helpers/qemu.ts';

const TRACKS_AT = 0x1c;
const BAT_ENTRIES_AT = 0x20;
const NB_SECTORS_AT = 0x24;
const INUSE_AT = 0x2c;
const DATA_OFF_AT = 0x30;
const EXT_OFF_AT = 0x38;
const BAT_AT = 0x40;

const refuses = (patch: (b: Buffer) => void, kind: BlockError['kind'], message: RegExp, options?: string): Promise<void> =>
  assertPatchedImageRefused({ name: 'm.prl', format: 'parallels', size: 4 << 20, patch, kind, message, ...(options ? { options } : {}) });

test('probe scores 100 for either magic with version 2 (also from a file shorter than the header), 0 otherwise', () => {
  const h = (magic: string, version: number, len = 64) => {
    const b = Buffer.alloc(len);
    b.write(magic, 0, 'latin1');
    if (len >= 20) b.writeUInt32LE(version, 16);
    return b;
  };
  assert.equal(parallelsDriver.probe!(h('WithoutFreeSpace', 2), 'x'), 100);
  assert.equal(parallelsDriver.probe!(h('WithouFreSpacExt', 2), 'x'), 100);
  assert.equal(parallelsDriver.probe!(h('WithouFreSpacExt', 2, 20), 'x'), 100);
  assert.equal(parallelsDriver.probe!(h('WithouFreSpacExt', 1), 'x'), 0);
  assert.equal(parallelsDriver.probe!(h('WithoutFreeSpacf', 2), 'x'), 0);
  assert.equal(parallelsDriver.probe!(Buffer.alloc(0), 'x'), 0);
});

test('a wrong magic or version: "Image not in Parallels format"', async () => {
  await refuses((b) => b.write('WithoutFreeSpacX', 0, 'latin1'), 'InvalidImage', /Image not in Parallels format/);
  await refuses((b) => b.writeUInt32LE(3, 16), 'InvalidImage', /Image not in Parallels format/);
});

test('zero and too-big clusters (iotest 076): QEMU\'s messages', async () => {
  await refuses((b) => b.writeUInt32LE(0, TRACKS_AT), 'InvalidImage', /Invalid image: Zero sectors per track/);
  await refuses((b) => b.writeUInt32LE(0x7fffffff, TRACKS_AT), 'Unsupported', /Invalid image: Too big cluster/);
});

test('catalog size overflow (iotest 076, CVE-2014-0142 family): "Catalog too large", no allocation', async () => {
  await refuses((b) => b.writeUInt32LE(0xffffffff, BAT_ENTRIES_AT), 'Unsupported', /Catalog too large/);
  await refuses((b) => {
    b.writeUInt32LE(0xffffffff, NB_SECTORS_AT);
    b.writeUInt32LE(0x40000001, BAT_ENTRIES_AT);
  }, 'Unsupported', /Catalog too large/);
});

test('a virtual size past INT64_MAX or past what Platter addresses exactly is refused in words', async () => {
  await refuses((b) => b.writeBigUInt64LE(1n << 60n, NB_SECTORS_AT), 'Unsupported', /File too large/);
  await refuses((b) => b.writeBigUInt64LE((1n << 53n) + 1n, NB_SECTORS_AT), 'InvalidImage', /Virtual size is too large/);
});

test('a BAT longer than the file opens as QEMU opens it (entries past the end read as unallocated) without a table of its size in memory', async () => {
  const t = tempDir();
  try {
    const img = t.path('long-bat.prl');
    await createImage({ format: 'parallels', filename: img, size: 4 << 20, options: { cluster_size: 65536 } });
    const bytes = readFileSync(img);
    bytes.writeUInt32LE(0x1ffff000, BAT_ENTRIES_AT); // 2 GiB of BAT, the file holds 64 KiB
    bytes.writeBigUInt64LE(0x1ffff000n * 128n, NB_SECTORS_AT);
    writeFileSync(img, bytes);
    const before = process.memoryUsage().arrayBuffers;
    const node = await openImage(img, { format: 'parallels', readOnly: true });
    try {
      assert.ok(process.memoryUsage().arrayBuffers - before < 64 << 20, 'no BAT of the full size in memory');
      assert.deepEqual(await node.read(0, 4096), Buffer.alloc(4096));
      const st = await node.blockStatus(0, node.size > 2 ** 52 ? 2 ** 52 : node.size);
      assert.equal(st.allocated, false);
      assert.equal(st.length, Math.min(node.size, 2 ** 52), 'one answer for the whole unallocated run, without walking every cluster');
    } finally {
      await node.close();
    }
  } finally {
    t.cleanup();
  }
});

test('a virtual size larger than the BAT covers: reads there are zeros, writes are refused (QEMU asserts), the file is unchanged', async () => {
  const t = tempDir();
  try {
    const img = t.path('short-bat.prl');
    await createImage({ format: 'parallels', filename: img, size: 4 << 20, options: { cluster_size: 1 << 20 } });
    const bytes = readFileSync(img);
    bytes.writeBigUInt64LE(BigInt((16 << 20) / 512), NB_SECTORS_AT);
    writeFileSync(img, bytes);
    const sum = sha256File(img);
    const node = await openImage(img, { format: 'parallels' });
    try {
      assert.equal(node.size, 16 << 20);
      assert.deepEqual(await node.read(8 << 20, 512), Buffer.alloc(512));
      await assert.rejects(node.write(8 << 20, Buffer.alloc(512, 1)), (e: unknown) => e instanceof BlockError && e.kind === 'Corrupt' && /BAT has 4 entries/.test(e.message));
    } finally {
      await node.close();
    }
    assert.equal(sha256File(img), sum);
  } finally {
    t.cleanup();
  }
});

test('BAT entries far past the end of the file read as zeros (QEMU reads them so); an entry past 2^53 is a clean error', async () => {
  const t = tempDir();
  try {
    const img = t.path('far.prl');
    await createImage({ format: 'parallels', filename: img, size: 4 << 20, options: { cluster_size: 65536 } });
    const bytes = readFileSync(img);
    const tracks = 0x3f0000; // clusters of almost 2 GiB: entry 0xffffffff lies past 2^53 bytes
    bytes.writeUInt32LE(tracks, TRACKS_AT);
    bytes.writeBigUInt64LE(BigInt(2 * tracks), NB_SECTORS_AT);
    bytes.writeUInt32LE(1000, BAT_AT); // 2 PB into a 64 KiB file
    bytes.writeUInt32LE(0xffffffff, BAT_AT + 4);
    writeFileSync(img, bytes);
    const node = await openImage(img, { format: 'parallels', readOnly: true });
    try {
      assert.deepEqual(await node.read(0, 512), Buffer.alloc(512));
      await assert.rejects(node.read(tracks * 512, 512), (e: unknown) => e instanceof BlockError && e.kind === 'Corrupt' && /BAT entry 1 \(4294967295\) points past what Platter addresses/.test(e.message));
    } finally {
      await node.close();
    }
  } finally {
    t.cleanup();
  }
});

test('a BAT entry that places a cluster over the header and BAT: read as QEMU reads it, writes refused, the file unchanged', async () => {
  const t = tempDir();
  try {
    const img = t.path('self.prl');
    // 1024 clusters of 4 KiB: the BAT takes 4160 bytes.
    await createImage({ format: 'parallels', filename: img, size: 4 << 20, options: { cluster_size: 4096 } });
    const bytes = readFileSync(img);
    bytes.writeUInt32LE(0, BAT_AT + 4 * 2); // cluster 2 unallocated
    // v1 magic: entries are sectors; cluster 0 at sector 0 would be "unallocated", so sector 1.
    bytes.write('WithoutFreeSpace', 0, 'latin1');
    bytes.writeUInt32LE(1, BAT_AT);
    writeFileSync(img, bytes);
    const sum = sha256File(img);
    const node = await openImage(img, { format: 'parallels' });
    try {
      assert.deepEqual(await node.read(0, 512), Buffer.from(bytes.subarray(512, 1024)));
      await assert.rejects(node.write(0, Buffer.alloc(512, 7)), (e: unknown) => e instanceof BlockError && e.kind === 'Corrupt' && /inside the image's header and BAT/.test(e.message));
    } finally {
      await node.close();
    }
    assert.equal(sha256File(img), sum);
  } finally {
    t.cleanup();
  }
});

test('an image left in use is refused read-write in QEMU\'s words and opens read-only', async () => {
  const t = tempDir();
  try {
    const img = t.path('inuse.prl');
    await createImage({ format: 'parallels', filename: img, size: 4 << 20 });
    const bytes = readFileSync(img);
    bytes.write('Ynot', INUSE_AT, 'latin1');
    writeFileSync(img, bytes);
    const sum = sha256File(img);
    await assert.rejects(openImage(img, { format: 'parallels' }), (e: unknown) => e instanceof BlockError && e.kind === 'Permission' && /Image was not closed correctly; cannot be opened read\/write/.test(e.message));
    const ro = await openImage(img, { format: 'parallels', readOnly: true });
    await ro.close();
    assert.equal(sha256File(img), sum);
  } finally {
    t.cleanup();
  }
});

/** A format extension cluster (64 KiB clusters) with the given features after the header. */
function extension(features: Buffer, opts: { magic?: bigint; badSum?: boolean } = {}): Buffer {
  const c = Buffer.alloc(65536);
  c.writeBigUInt64LE(opts.magic ?? 0xab234cef23dcea87n, 0);
  features.copy(c, 24);
  createHash('md5').update(c.subarray(24)).digest().copy(c, 8);
  if (opts.badSum) c[100]! ^= 1;
  return c;
}

function feature(magic: bigint, data: Buffer, flags = 0n): Buffer {
  const h = Buffer.alloc(24);
  h.writeBigUInt64LE(magic, 0);
  h.writeBigUInt64LE(flags, 8);
  h.writeUInt32LE(data.length, 16);
  return Buffer.concat([h, data, Buffer.alloc((8 - (data.length % 8)) % 8)]);
}

const END = feature(0n, Buffer.alloc(0));
const BITMAP = 0x20385fae252cb34an;

function bitmapFeature(sectors: bigint, granSectors: number, l1: bigint[]): Buffer {
  const d = Buffer.alloc(32 + 8 * l1.length);
  d.writeBigUInt64LE(sectors, 0);
  Buffer.from('00112233445566778899aabbccddeeff', 'hex').copy(d, 8);
  d.writeUInt32LE(granSectors, 24);
  d.writeUInt32LE(l1.length, 28);
  l1.forEach((e, i) => d.writeBigUInt64LE(e, 32 + 8 * i));
  return feature(BITMAP, d);
}

async function withExtension(ext: Buffer, check: (img: string) => Promise<void>): Promise<void> {
  const t = tempDir();
  try {
    const img = t.path('ext.prl');
    await createImage({ format: 'parallels', filename: img, size: 4 << 20, options: { cluster_size: 65536 } });
    const bytes = readFileSync(img);
    bytes.writeBigUInt64LE(BigInt(bytes.length / 512), EXT_OFF_AT);
    writeFileSync(img, Buffer.concat([bytes, ext]));
    await check(img);
  } finally {
    t.cleanup();
  }
}

const extRefused = (ext: Buffer, message: RegExp) =>
  withExtension(ext, async (img) => {
    const sum = sha256File(img);
    await assert.rejects(openImage(img, { format: 'parallels', readOnly: true }), (e: unknown) => e instanceof BlockError && message.test(e.message));
    assert.equal(sha256File(img), sum);
  });

test('format extension: QEMU\'s checks and words (magic, checksum, flags, sizes, unknown features)', async () => {
  await extRefused(extension(END, { magic: 1n }), /Wrong parallels Format Extension magic: 0x1, expected: 0xab234cef23dcea87/);
  await extRefused(extension(END, { badSum: true }), /Wrong checksum in Format Extension header\. Format extension is corrupted\./);
  await extRefused(extension(feature(0n, Buffer.alloc(0), 1n)), /Flags for extension feature are unsupported/);
  await extRefused(extension(feature(0x1234n, Buffer.alloc(8))), /Unknown feature: 0x1234/);
  const tooBig = Buffer.alloc(24);
  tooBig.writeBigUInt64LE(BITMAP, 0);
  tooBig.writeUInt32LE(70000, 16);
  await extRefused(extension(tooBig), /Feature data_size exceedes Format Extension cluster/);
  await extRefused(extension(feature(BITMAP, Buffer.alloc(16))), /Too small Bitmap Feature area in Parallels Format Extension: 16 bytes, expected at least 32 bytes/);
  await extRefused(extension(Buffer.concat([bitmapFeature(4n, 128, [0n]), END])), /Bitmap size \(in sectors\) 4 differs from disk size in sectors 8192/);
  await extRefused(extension(Buffer.concat([bitmapFeature(8192n, 128, [0n, 0n]), END])), /Bitmap table size 2 does not correspond to bitmap size and cluster size\. Expected 1/);
  await extRefused(extension(Buffer.concat([bitmapFeature(8192n, 3, [0n]), END])), /granularity of 3 sectors is not a power of two/);
  const l1Past = bitmapFeature(8192n, 128, [0n]);
  l1Past.writeUInt32LE(1000, 24 + 28); // l1_size 1000 in a 40-byte feature
  await extRefused(extension(Buffer.concat([l1Past, END])), /Bitmaps feature corrupted: l1 table exceeds extension data_size/);
  // No end marker: a bitmap feature whose data fills the cluster but for 8 bytes.
  const filling = bitmapFeature(8192n, 128, [0n]);
  filling.writeUInt32LE(65536 - 24 - 24 - 8, 16);
  await extRefused(extension(Buffer.concat([filling, Buffer.alloc(65536 - 24 - 8 - filling.length)])), /Can not read feature header, as remaining bytes \(8\) in Format Extension is less than Feature header size \(24\)/);
});

test('format extension: an all-ones L1 entry sets every bit; read-write opens ignore the extension with QEMU\'s warning', async () => {
  await withExtension(extension(Buffer.concat([bitmapFeature(8192n, 128, [1n]), END])), async (img) => {
    const node = await openImage(img, { format: 'parallels', readOnly: true });
    try {
      const [b] = (node.impl as unknown as { bitmapsLoaded: { name: string; granularity: number; bits: { bits: number; count(): number } }[] }).bitmapsLoaded;
      assert.equal(b!.name, '00112233-4455-6677-8899-aabbccddeeff');
      assert.equal(b!.granularity, 65536);
      assert.equal(b!.bits.bits, 64);
      assert.equal(b!.bits.count(), 64);
    } finally {
      await node.close();
    }
    const warnings: string[] = [];
    const rw = await openImage(img, { format: 'parallels', warn: (m) => warnings.push(m) });
    await rw.close();
    assert.deepEqual(warnings, ['warning: Format Extension ignored in RW mode']);
  });
});

test('create refuses what QEMU refuses, in its words', async () => {
  const t = tempDir();
  try {
    const img = t.path('c.prl');
    await assert.rejects(createImage({ format: 'parallels', filename: img, size: 4 << 20, options: { cluster_size: 0 } }), /Image size is too large for this cluster size/);
    await assert.rejects(createImage({ format: 'parallels', filename: img, size: 4 << 20, options: 'cluster_size=2G' }), /Cluster size is too large/);
    await assert.rejects(createImage({ format: 'parallels', filename: img, size: 2 ** 42, options: 'cluster_size=512' }), /Image size is too large for this cluster size/);
    await assert.rejects(createImage({ format: 'parallels', filename: img, size: 4 << 20, options: 'preallocation=metadata' }), /Unsupported preallocation mode: metadata/);
  } finally {
    t.cleanup();
  }
});

test('a v1 ("WithoutFreeSpace") header counts only the low 32 bits of nb_sectors, and its BAT holds sector offsets', async () => {
  const t = tempDir();
  try {
    const img = t.path('v1.prl');
    await createImage({ format: 'parallels', filename: img, size: 4 << 20, options: { cluster_size: 65536 } });
    const bytes = readFileSync(img);
    bytes.write('WithoutFreeSpace', 0, 'latin1');
    bytes.writeBigUInt64LE((1n << 32n) + 2048n, NB_SECTORS_AT);
    bytes.writeUInt32LE(128, BAT_AT + 4); // cluster 1 at sector 128 (byte 65536)
    const data = Buffer.alloc(65536, 0x42);
    writeFileSync(img, Buffer.concat([bytes, data]));
    const node = await openImage(img, { readOnly: true });
    try {
      assert.equal(node.format, 'parallels');
      assert.equal(node.size, 2048 * 512);
      assert.deepEqual(await node.read(65536, 65536), data);
      assert.deepEqual(await node.read(0, 65536), Buffer.alloc(65536));
    } finally {
      await node.close();
    }
  } finally {
    t.cleanup();
  }
});

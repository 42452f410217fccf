// Malformed bochs images get a clear BlockError in QEMU 7.2's words (block/bochs.c), never a
// crash, a hang or a huge allocation: truncated files, catalogs too large or too small for the
// disk, bad extent sizes, catalog entries and data pointing past the end of the file. Images are
// built byte by byte (test/helpers/bochs-cloop.ts), laid out as bximage lays them out.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { openImage } from '../../core/block/open.ts';
import { BlockError } from '../../core/errors.ts';
import { tempDir } from '../helpers/qemu.ts';
import { BOCHS, buildBochs, patterned } from '../helpers/bochs-cloop.ts';
import { bochsDriver } from '../../core/formats/bochs/index.ts';

const data = patterned(256 * 1024, 5);

async function withImage(bytes: Buffer, f: (path: string) => Promise<void>): Promise<void> {
  const t = tempDir();
  try {
    const p = t.path('m.bochs');
    writeFileSync(p, bytes);
    await f(p);
  } finally {
    t.cleanup();
  }
}

async function readAll(path: string): Promise<Buffer> {
  const node = await openImage(path, { readOnly: true, format: 'bochs' });
  try {
    return await node.read(0, node.size);
  } finally {
    await node.close();
  }
}

function refuses(edit: (b: Buffer) => unknown, message: string): Promise<void> {
  const b = buildBochs({ data });
  const r = edit(b);
  const bytes = Buffer.isBuffer(r) ? r : b;
  return withImage(bytes, async (p) => {
    await assert.rejects(openImage(p, { readOnly: true, format: 'bochs' }), (e: unknown) => {
      assert.ok(e instanceof BlockError, `a BlockError, got ${String(e)}`);
      assert.ok(e.message.endsWith(message), `'${e.message}' should end with '${message}'`);
      return true;
    });
  });
}

test('a built bochs image reads back its data (the layout the malformed cases start from)', async () => {
  await withImage(buildBochs({ data }), async (p) => assert.ok((await readAll(p)).equals(data)));
});

test('probe: 100 for a growing redolog header (v1 or v2), 0 for other types, versions and a short head', () => {
  const b = buildBochs({ data });
  assert.equal(bochsDriver.probe!(b.subarray(0, 512), 'x'), 100);
  assert.equal(bochsDriver.probe!(b.subarray(0, 100), 'x'), 100, 'zero-padded to 512 bytes as QEMU pads its probe buffer');
  const v1 = buildBochs({ data, version: 1 });
  assert.equal(bochsDriver.probe!(v1.subarray(0, 512), 'x'), 100);
  const undoable = Buffer.from(b.subarray(0, 512));
  undoable.write('Undoable', 48, 'latin1');
  assert.equal(bochsDriver.probe!(undoable, 'x'), 0);
  const v3 = Buffer.from(b.subarray(0, 512));
  v3.writeUInt32LE(0x30000, BOCHS.version);
  assert.equal(bochsDriver.probe!(v3, 'x'), 0);
  const noNul = Buffer.from(b.subarray(0, 512));
  noNul.write('Redolog!', 32, 'latin1');
  assert.equal(bochsDriver.probe!(noNul, 'x'), 0, 'the type is compared as a C string');
});

test('a truncated file: shorter than the magic is not Bochs; a cut catalog or cut extents read as zeros there (QEMU pads short reads)', async () => {
  await refuses((b) => b.subarray(0, 10), 'Image not in Bochs format');
  const full = buildBochs({ data });
  // Header whole, catalog cut: entries past the end read as 0, i.e. slot 0 for every extent.
  await withImage(full.subarray(0, 700), async (p) => {
    const got = await readAll(p);
    assert.equal(got.length, data.length);
  });
  // Slots cut in the middle: what is missing reads as zeros, what is there reads as data.
  const cut = 512 + 32 * 4 + 3 * 17 * 512 + 9 * 512;
  await withImage(full.subarray(0, cut), async (p) => {
    const got = await readAll(p);
    assert.ok(got.subarray(0, 8192).equals(data.subarray(0, 8192)), 'the first whole extent reads');
    assert.ok(got.subarray(20 * 8192).equals(Buffer.alloc(data.length - 20 * 8192)), 'extents past the end read as zeros');
  });
});

test('a huge catalog is refused before any allocation: "Catalog size is too large"', async () => {
  await refuses((b) => void b.writeUInt32LE(0xffffffff, BOCHS.catalog), 'Catalog size is too large');
  await refuses((b) => void b.writeUInt32LE(0x40000000, BOCHS.catalog), 'Catalog size is too large');
  await refuses((b) => void b.writeUInt32LE(0x100001, BOCHS.catalog), 'Catalog size is too large');
});

test('a catalog too small for the disk is refused: "Catalog size is too small for this disk size"', async () => {
  await refuses((b) => void b.writeUInt32LE(4, BOCHS.catalog), 'Catalog size is too small for this disk size');
  await refuses((b) => void b.writeBigUInt64LE(0xffffffffffffffffn, BOCHS.diskV2), 'Catalog size is too small for this disk size');
});

test('bad extent sizes are refused in QEMU\'s words (below 512, not a power of two, above 8 MiB)', async () => {
  await refuses((b) => void b.writeUInt32LE(0, BOCHS.extent), 'Extent size must be at least 512');
  await refuses((b) => void b.writeUInt32LE(511, BOCHS.extent), 'Extent size must be at least 512');
  await refuses((b) => void b.writeUInt32LE(3000, BOCHS.extent), 'Extent size 3000 is not a power of two');
  await refuses((b) => void b.writeUInt32LE(0x80000000, BOCHS.extent), 'Extent size 2147483648 is too large');
});

test('a wrong magic, type, subtype or version: "Image not in Bochs format"', async () => {
  await refuses((b) => void b.write('bochs', 0, 'latin1'), 'Image not in Bochs format');
  await refuses((b) => void b.write('Undoable', 48, 'latin1'), 'Image not in Bochs format');
  await refuses((b) => void b.writeUInt32LE(0x20001, BOCHS.version), 'Image not in Bochs format');
});

test('catalog entries naming slots far past the end of the file read as unallocated zeros, as in QEMU, without a huge read', async () => {
  const b = buildBochs({ data });
  b.writeUInt32LE(0xfffffffe, 512);
  b.writeUInt32LE(0x7fffffff, 516);
  await withImage(b, async (p) => {
    const got = await readAll(p);
    assert.ok(got.subarray(0, 2 * 8192).equals(Buffer.alloc(2 * 8192)));
    assert.ok(got.subarray(2 * 8192).equals(data.subarray(2 * 8192)));
  });
});

test('writes are refused: a read-write open says "Image is read-only"', async () => {
  await withImage(buildBochs({ data }), async (p) => {
    await assert.rejects(openImage(p, { readOnly: false, format: 'bochs' }), (e: unknown) => e instanceof BlockError && e.kind === 'Permission' && /Image is read-only$/.test(e.message));
  });
});

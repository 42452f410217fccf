// Malformed VHD images are refused with a clear BlockError (QEMU's words where it has them),
// without a crash, hang or huge allocation, and the file is left unchanged, even when opened
// read-write.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createImage, openImage } from '../../core/block/open.ts';
import { BlockError } from '../../core/errors.ts';
import { tempDir } from '../helpers/qemu.ts';

const DYN = 512; // the dynamic header of a new image
const digest = (p: string) => createHash('md5').update(readFileSync(p)).digest('hex');

async function expectRefusal(path: string, message: string): Promise<void> {
  const before = digest(path);
  for (const readOnly of [true, false]) {
    await assert.rejects(openImage(path, { readOnly, format: 'vpc' }), (e: unknown) => {
      assert.ok(e instanceof BlockError, 'a BlockError');
      assert.ok(e.message.includes(message), `'${e.message}' should include '${message}'`);
      return true;
    });
  }
  assert.equal(digest(path), before, 'file unchanged');
}

async function mutated(t: ReturnType<typeof tempDir>, name: string, edit: (b: Buffer) => void): Promise<string> {
  const p = t.path(name);
  await createImage({ format: 'vpc', filename: p, size: 4 << 20 });
  const b = readFileSync(p);
  edit(b);
  writeFileSync(p, b);
  return p;
}

test('rejects a VHD block size of 0 and one that is not a power of two', async () => {
  const t = tempDir();
  try {
    await expectRefusal(await mutated(t, 'a.vhd', (b) => b.writeUInt32BE(0, DYN + 32)), 'Invalid block size 0');
    await expectRefusal(await mutated(t, 'b.vhd', (b) => b.writeUInt32BE(3 << 20, DYN + 32)), `Invalid block size ${3 << 20}`);
  } finally {
    t.cleanup();
  }
});

test('rejects a Block Allocation Table past the end of the file', async () => {
  const t = tempDir();
  try {
    await expectRefusal(await mutated(t, 'a.vhd', (b) => b.writeBigUInt64BE(1n << 40n, DYN + 16)), 'The image has been truncated');
    // An allocated block past the end of the file, too.
    await expectRefusal(await mutated(t, 'b.vhd', (b) => b.writeUInt32BE(0x100000, 1536)), 'The image has been truncated');
  } finally {
    t.cleanup();
  }
});

test('rejects an overflowing Max Table Entries without allocating the table', async () => {
  const t = tempDir();
  try {
    await expectRefusal(await mutated(t, 'a.vhd', (b) => b.writeUInt32BE(0xffffffff, DYN + 28)), 'Max Table Entries too large (4294967295)');
    await expectRefusal(await mutated(t, 'b.vhd', (b) => b.writeUInt32BE(1, DYN + 28)), 'Page table too small');
  } finally {
    t.cleanup();
  }
});

test('rejects a footer with a wrong checksum, and a missing dynamic header', async () => {
  const t = tempDir();
  try {
    await expectRefusal(await mutated(t, 'a.vhd', (b) => (b[40] = 0x7f)), 'Incorrect header checksum');
    await expectRefusal(await mutated(t, 'b.vhd', (b) => b.fill(0, DYN, DYN + 8)), 'Invalid header magic');
  } finally {
    t.cleanup();
  }
});

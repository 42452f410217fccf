// Malformed VHD images are refused with a clear BlockError (QEMU's words where it has them),
// without a crash, hang or huge allocation, and the file is left unchanged, even when opened
// read-write.

import { test } from 'node:test';
import { assertRefusedUnchanged, createPatched } from '../helpers/malformed.ts';
import { tempDir } from '../helpers/qemu.ts';

const DYN = 512; // the dynamic header of a new image

const expectRefusal = (path: string, message: string): Promise<void> => assertRefusedUnchanged({ path, format: 'vpc', message });

const mutated = (t: ReturnType<typeof tempDir>, name: string, edit: (b: Buffer) => void): Promise<string> =>
  createPatched({ path: t.path(name), format: 'vpc', size: 4 << 20, patch: edit });

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

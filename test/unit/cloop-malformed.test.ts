// Malformed cloop images get a clear BlockError in QEMU 7.2's words (block/cloop.c), never a
// crash, a hang or a huge allocation: truncated files, bad block sizes, n_blocks overflowing the
// offsets table, non-monotonic offsets, compressed blocks too large, offsets past the end of the
// file, streams that do not inflate to one block. Images are built byte by byte
// (test/helpers/bochs-cloop.ts) as create_compressed_fs lays them out.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { openImage } from '../../core/block/open.ts';
import { BlockError } from '../../core/errors.ts';
import { tempDir } from '../helpers/qemu.ts';
import { buildCloop, CLOOP, patterned } from '../helpers/bochs-cloop.ts';
import { cloopDriver } from '../../core/formats/cloop/index.ts';

const data = patterned(128 * 1024, 3);
const BS = 4096;
const N = data.length / BS;

async function withImage(bytes: Buffer, f: (path: string) => Promise<void>): Promise<void> {
  const t = tempDir();
  try {
    const p = t.path('m.cloop');
    writeFileSync(p, bytes);
    await f(p);
  } finally {
    t.cleanup();
  }
}

async function readAll(path: string): Promise<Buffer> {
  const node = await openImage(path, { readOnly: true, format: 'cloop' });
  try {
    return await node.read(0, node.size);
  } finally {
    await node.close();
  }
}

function refuses(edit: (b: Buffer) => unknown, message: string): Promise<void> {
  const b = buildCloop(data, BS);
  const r = edit(b);
  const bytes = Buffer.isBuffer(r) ? r : b;
  return withImage(bytes, async (p) => {
    await assert.rejects(openImage(p, { readOnly: true, format: 'cloop' }), (e: unknown) => {
      assert.ok(e instanceof BlockError, `a BlockError, got ${String(e)}`);
      assert.ok(e.message.endsWith(message), `'${e.message}' should end with '${message}'`);
      return true;
    });
  });
}

const setOffset = (b: Buffer, i: number, v: bigint) => b.writeBigUInt64BE(v, CLOOP.offsets + 8 * i);
const getOffset = (b: Buffer, i: number) => b.readBigUInt64BE(CLOOP.offsets + 8 * i);

/** Reading fails as QEMU's does: EIO, "Input/output error". */
async function readFails(bytes: Buffer): Promise<void> {
  await withImage(bytes, async (p) => {
    await assert.rejects(readAll(p), (e: unknown) => e instanceof BlockError && e.kind === 'Io' && e.message === 'Input/output error');
  });
}

test('a built cloop image reads back its data (the layout the malformed cases start from); reads across blocks and of one sector agree', async () => {
  await withImage(buildCloop(data, BS), async (p) => {
    assert.ok((await readAll(p)).equals(data));
    const node = await openImage(p, { readOnly: true });
    try {
      assert.equal(node.format, 'cloop');
      for (const [off, len] of [[BS - 512, 1024], [5 * BS + 512, 3 * BS], [7 * BS, 512], [7 * BS + 1024, 512]]) {
        assert.ok((await node.read(off, len)).equals(data.subarray(off, off + len)), `read at ${off}`);
      }
    } finally {
      await node.close();
    }
  });
});

test('probe: 2 for the V2.0 preamble (QEMU\'s score), 0 otherwise, 0 for a file shorter than the preamble', () => {
  const b = buildCloop(data, BS);
  assert.equal(cloopDriver.probe!(b.subarray(0, 512), 'x'), 2);
  assert.equal(cloopDriver.probe!(b.subarray(0, 40), 'x'), 0, 'the zero padding breaks the comparison, as in QEMU');
  const v1 = Buffer.from(b.subarray(0, 512));
  v1.write('#V1.0', 10, 'latin1');
  assert.equal(cloopDriver.probe!(v1, 'x'), 0);
});

test('a truncated file: the header fields read as zeros past the end ("block_size cannot be zero"), a cut table or cut blocks fail to read', async () => {
  await refuses((b) => b.subarray(0, 100), 'block_size cannot be zero');
  await refuses((b) => b.subarray(0, 130), 'block_size cannot be zero');
  // n_blocks cut: zero blocks, an empty disk.
  await withImage(buildCloop(data, BS).subarray(0, 133), async (p) => assert.equal((await readAll(p)).length, 0));
  // The table cut after its first entries: the zeros past the end are not monotonic.
  await refuses((b) => b.subarray(0, CLOOP.offsets + 8 * 3), 'offsets not monotonically increasing at index 3, image file is corrupt');
  // Blocks cut: the missing ones fail to inflate.
  const b = buildCloop(data, BS);
  await readFails(b.subarray(0, Number(getOffset(b, N / 2))));
});

test('bad block sizes are refused in QEMU\'s words (not a multiple of 512, zero, above 64 MiB)', async () => {
  await refuses((b) => void b.writeUInt32BE(513, CLOOP.blockSize), 'block_size 513 must be a multiple of 512');
  await refuses((b) => void b.writeUInt32BE(0, CLOOP.blockSize), 'block_size cannot be zero');
  await refuses((b) => void b.writeUInt32BE(0xfffffe00, CLOOP.blockSize), 'block_size 4294966784 must be 64 MB or less');
  await refuses((b) => void b.writeUInt32BE(64 * 1024 * 1024 + 512, CLOOP.blockSize), 'block_size 67109376 must be 64 MB or less');
});

test('n_blocks that overflow the offsets table or ask for more than 512 MiB of it are refused before any allocation', async () => {
  await refuses((b) => void b.writeUInt32BE(0xffffffff, CLOOP.nBlocks), 'n_blocks 4294967295 must be 536870911 or less');
  await refuses((b) => void b.writeUInt32BE(0x4000001, CLOOP.nBlocks), 'image requires too many offsets, try increasing block size');
  // Just under the limit, the file ending with the stored table: the table past the end reads as
  // zeros, which the last stored (non-zero) offset makes non-monotonic; no 512 MiB table is
  // allocated.
  const before = process.memoryUsage().arrayBuffers;
  await refuses((b) => (b.writeUInt32BE(0x3ffffff, CLOOP.nBlocks), b.subarray(0, CLOOP.offsets + 8 * (N + 1))), `offsets not monotonically increasing at index ${N + 1}, image file is corrupt`);
  assert.ok(process.memoryUsage().arrayBuffers - before < 64 << 20, 'no table of the claimed size in memory');
});

test('non-monotonic offsets and compressed blocks above 128 MiB are refused with the index QEMU names', async () => {
  await refuses((b) => setOffset(b, 5, getOffset(b, 4) - 1n), 'offsets not monotonically increasing at index 5, image file is corrupt');
  await refuses((b) => (setOffset(b, 0, 0xffffffffn), setOffset(b, 1, 0xfffe0000n)), 'offsets not monotonically increasing at index 1, image file is corrupt');
  await refuses((b) => (setOffset(b, 0, 0n), setOffset(b, 1, 0xffffffffffffffffn)), 'invalid compressed block size at index 1, image file is corrupt');
  await refuses((b) => setOffset(b, 2, getOffset(b, 1) + 128n * 1024n * 1024n + 1n), 'invalid compressed block size at index 2, image file is corrupt');
});

test('offsets past the end of the file open (QEMU checks only their order) and reading those blocks fails with EIO', async () => {
  const b = buildCloop(data, BS);
  const end = BigInt(b.length);
  for (let i = N - 2; i <= N; i++) setOffset(b, i, end + 4096n * BigInt(i - N + 3));
  await withImage(b, async (p) => {
    const node = await openImage(p, { readOnly: true, format: 'cloop' });
    try {
      assert.ok((await node.read(0, BS)).equals(data.subarray(0, BS)), 'blocks in the file read');
      await assert.rejects(node.read((N - 1) * BS, BS), (e: unknown) => e instanceof BlockError && e.message === 'Input/output error');
    } finally {
      await node.close();
    }
  });
});

test('a block that does not inflate to exactly one block (garbage, a shorter block size, a cut stream) fails with EIO', async () => {
  const garbage = buildCloop(data, BS);
  garbage.fill(0x5a, Number(getOffset(garbage, 2)), Number(getOffset(garbage, 2)) + 8);
  await readFails(garbage);
  const smaller = buildCloop(data, BS);
  smaller.writeUInt32BE(BS / 2, CLOOP.blockSize);
  await readFails(smaller);
  const cut = buildCloop(data, BS);
  setOffset(cut, N, getOffset(cut, N) - 4n);
  await readFails(cut);
});

test('writes are refused: a read-write open says "Image is read-only"', async () => {
  await withImage(buildCloop(data, BS), async (p) => {
    await assert.rejects(openImage(p, { readOnly: false, format: 'cloop' }), (e: unknown) => e instanceof BlockError && e.kind === 'Permission' && /Image is read-only$/.test(e.message));
  });
});

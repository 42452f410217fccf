// Malformed qcow2 images, each made by mutating one field of a valid image: every one is refused
// with a clear BlockError naming what is wrong, without a crash, a hang, a huge allocation, or
// a single byte written to the file (sha256 before/after).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { BlockError } from '../../core/errors.ts';
import { tempDir } from '../helpers/qemu.ts';

const quiet = () => {};
const CS = 65536;
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

let validBytes: Buffer | undefined;

/** A valid 1 MiB image with data in clusters 0 and 8 (so L1/L2 entries exist), made once. */
async function validImage(path: string): Promise<void> {
  if (!validBytes) {
    await createImage({ format: 'qcow2', filename: path, size: 1 << 20, options: { cluster_size: CS }, warn: quiet });
    const n = await openImage(path, { warn: quiet });
    await n.write(0, Buffer.alloc(CS, 0x11));
    await n.write(8 * CS, Buffer.alloc(100, 0x22));
    await n.close();
    validBytes = readFileSync(path);
  }
  writeFileSync(path, validBytes);
}

function l2Offset(buf: Buffer): number {
  const l1 = Number(buf.readBigUInt64BE(40));
  return Number(buf.readBigUInt64BE(l1) & 0x00fffffffffffe00n);
}

interface Case {
  name: string;
  mutate(buf: Buffer): Buffer;
  error: RegExp;
  /** The error shows when reading rather than opening. */
  onRead?: boolean;
  readOnly?: boolean;
}

const CASES: Case[] = [
  { name: 'rejects an L1 table offset past the end of the file', mutate: (b) => (b.writeBigUInt64BE(0x7fff0000n, 40), b), error: /L1 table .*beyond the end of the file/ },
  { name: 'rejects an L1 table size over the 32 MiB limit', mutate: (b) => (b.writeUInt32BE(0x10000000, 36), b), error: /Active L1 table too large/ },
  { name: 'rejects an L1 table overlapping the header', mutate: (b) => (b.writeBigUInt64BE(0n, 40), b), error: /Invalid L1 table offset/ },
  { name: 'rejects an L1 table too small for the image size', mutate: (b) => (b.writeBigUInt64BE(1n << 40n, 24), b), error: /L1 table is too small/ },
  { name: 'rejects a refcount table beyond the end of the file', mutate: (b) => (b.writeBigUInt64BE(BigInt(CS * 1000), 48), b), error: /Reference count table .*beyond the end of the file/ },
  { name: 'rejects a refcount table over the 8 MiB limit', mutate: (b) => (b.writeUInt32BE(1 << 20, 56), b), error: /Reference count table too large/ },
  { name: 'rejects cluster_bits below 9', mutate: (b) => (b.writeUInt32BE(8, 20), b), error: /Unsupported cluster size: 2\^8/ },
  { name: 'rejects cluster_bits above 21', mutate: (b) => (b.writeUInt32BE(22, 20), b), error: /Unsupported cluster size: 2\^22/ },
  { name: 'rejects a snapshot count over 65536', mutate: (b) => (b.writeUInt32BE(70000, 60), b.writeBigUInt64BE(BigInt(CS), 64), b), error: /Snapshot table too large/ },
  // (A table past the end of the file reads as zero entries, as in QEMU: iotest 080.)
  { name: 'rejects an unaligned snapshot table offset', mutate: (b) => (b.writeUInt32BE(1, 60), b.writeBigUInt64BE((1n << 40n) + 8n, 64), b), error: /Invalid snapshot table offset/ },
  { name: 'rejects a snapshot table entry running past the end of the file', mutate: (b) => (b.writeUInt32BE(3, 60), b.writeBigUInt64BE(BigInt(b.length - CS), 64), b.fill(0xff, b.length - CS, b.length), b), error: /snapshot table/i },
  { name: 'rejects a backing file name longer than 1023 bytes', mutate: (b) => (b.writeBigUInt64BE(1024n, 8), b.writeUInt32BE(2000, 16), b), error: /Backing file name too long/ },
  { name: 'rejects a size that overflows when rounded up to clusters', mutate: (b) => (b.writeBigUInt64BE(0xffffffffffffffffn, 24), b), error: /Image size is too large/ },
  { name: 'rejects a size just under 2^53 that overflows once rounded to clusters', mutate: (b) => (b.writeBigUInt64BE(BigInt(Number.MAX_SAFE_INTEGER), 24), b), error: /L1 table is too small|overflows/ },
  { name: 'rejects an unknown incompatible feature bit by name', mutate: (b) => (b.writeBigUInt64BE(1n << 40n, 72), b), error: /Unsupported qcow2 feature\(s\): Unknown incompatible feature: 10000000000/ },
  { name: 'rejects refcount_order above 6', mutate: (b) => (b.writeUInt32BE(7, 96), b), error: /Reference count entry width too large/ },
  { name: 'rejects a v3 header_length below 104', mutate: (b) => (b.writeUInt32BE(72, 100), b), error: /qcow2 header too short/ },
  { name: 'rejects a header extension longer than the header cluster', mutate: (b) => (b.writeUInt32BE(0xffffff00, 112 + 4), b), error: /ext_len too large|Failed to read header extension/ },
  { name: 'rejects an unknown qcow2 version', mutate: (b) => (b.writeUInt32BE(4, 4), b), error: /Unsupported qcow2 version 4/ },
  {
    name: 'rejects reading through an L2 entry past the end of the file',
    mutate: (b) => (b.writeBigUInt64BE((1n << 63n) | (1n << 40n), l2Offset(b)), b),
    error: /points past the end of the file/,
    onRead: true,
  },
  {
    name: 'rejects reading a compressed descriptor with a huge size and offset',
    mutate: (b) => (b.writeBigUInt64BE((1n << 62n) | 0x3fffffffffffffffn, l2Offset(b)), b),
    error: /Compressed cluster .* outside the image/,
    onRead: true,
  },
  {
    name: 'rejects decompressing a compressed descriptor whose bytes are not deflate data',
    mutate: (b) => (b.writeBigUInt64BE((1n << 62n) | (0xffn << 54n) | BigInt(3 * CS + 4096), l2Offset(b)), b),
    error: /Could not decompress|decompressed to/,
    onRead: true,
  },
  {
    name: 'rejects an L2 table offset that is not cluster aligned',
    mutate: (b) => {
      const l1 = Number(b.readBigUInt64BE(40));
      b.writeBigUInt64BE((1n << 63n) | BigInt(CS + 512), l1);
      return b;
    },
    error: /L2 table offset 0x10200 is not cluster aligned/,
    onRead: true,
  },
];

for (const c of CASES) {
  test(c.name, async () => {
    const t = tempDir();
    try {
      const path = t.path('bad.qcow2');
      await validImage(path);
      writeFileSync(path, c.mutate(readFileSync(path)));
      const before = sha(path);
      const attempt = async () => {
        const n = await openImage(path, { format: 'qcow2', readOnly: c.readOnly ?? false, warn: quiet });
        try {
          if (c.onRead) await n.read(0, CS);
        } finally {
          await n.close();
        }
      };
      await assert.rejects(attempt, (e: unknown) => {
        assert.ok(e instanceof BlockError, `expected a BlockError, got ${String(e)}`);
        assert.match(e.message, c.error);
        return true;
      });
      assert.equal(sha(path), before, 'the file is unchanged');
    } finally {
      t.cleanup();
    }
  });
}

test('a snapshot table past the end of the file reads as zeros, as in QEMU: the image opens read-only and check reports the incomplete entry', async () => {
  const t = tempDir();
  try {
    const path = t.path('snap-past-eof.qcow2');
    await validImage(path);
    const b = readFileSync(path);
    b.writeUInt32BE(1, 60);
    b.writeBigUInt64BE(1n << 40n, 64);
    writeFileSync(path, b);
    const before = sha(path);
    const n = await openImage(path, { format: 'qcow2', readOnly: true, warn: quiet });
    try {
      const r = await n.impl.check!(undefined);
      assert.ok(r.corruptions > 0);
      assert.ok(r.messages.some((m) => /snapshot table entry 0 is incomplete/.test(m)), r.messages.join('\n'));
    } finally {
      await n.close();
    }
    assert.equal(sha(path), before, 'the file is unchanged');
  } finally {
    t.cleanup();
  }
});

test('opens an image with the corrupt bit read-only, refuses it read-write', async () => {
  const t = tempDir();
  try {
    const path = t.path('c.qcow2');
    await validImage(path);
    const b = readFileSync(path);
    b.writeBigUInt64BE(b.readBigUInt64BE(72) | 2n, 72);
    writeFileSync(path, b);
    const before = sha(path);
    await assert.rejects(openImage(path, { warn: quiet }), /Image is corrupt; cannot be opened read\/write/);
    const n = await openImage(path, { readOnly: true, warn: quiet });
    assert.equal((await n.read(0, 1))[0], 0x11);
    assert.equal((await n.info()).formatSpecific?.data['corrupt'], true);
    await n.close();
    assert.equal(sha(path), before);
  } finally {
    t.cleanup();
  }
});

test('probe scores qcow2 magic with version 2/3 as 100 and anything else as 0', async () => {
  const { qcow2Driver } = await import('../../core/formats/qcow2/index.ts');
  const head = Buffer.alloc(512);
  head.writeUInt32BE(0x514649fb, 0);
  head.writeUInt32BE(3, 4);
  assert.equal(qcow2Driver.probe!(head, 'x'), 100);
  head.writeUInt32BE(2, 4);
  assert.equal(qcow2Driver.probe!(head, 'x'), 100);
  head.writeUInt32BE(1, 4);
  assert.equal(qcow2Driver.probe!(head, 'x'), 0);
  assert.equal(qcow2Driver.probe!(Buffer.alloc(4), 'x'), 0);
});

// Malformed VMDK images: each broken rule gives a clear BlockError (no crash, hang or huge
// allocation) and the file is left exactly as it was. The images start as valid ones made by
// Platter's own create and are then damaged field by field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { BlockError } from '../../core/errors.ts';
import { assertRefusedUnchanged } from '../helpers/malformed.ts';
import { md5, tempDir } from '../helpers/qemu.ts';

const MiB = 1 << 20;

/** Header field offsets (hosted sparse extent header). */
const CAPACITY = 12;
const GRAIN_SIZE = 20;
const GD_OFFSET = 56;

async function sparseImage(dir: string, name = 'img.vmdk', options = ''): Promise<string> {
  const p = `${dir}/${name}`;
  await createImage({ format: 'vmdk', filename: p, size: 4 * MiB, options });
  return p;
}

function patch(path: string, f: (b: Buffer) => void): void {
  const b = readFileSync(path);
  f(b);
  writeFileSync(path, b);
}

/** Open read-write (so nothing is excused by read-only), expect `re`, and check the file is unchanged. */
async function expectRefused(path: string, re: RegExp, kind: BlockError['kind'] = 'InvalidImage', use?: (n: Awaited<ReturnType<typeof openImage>>) => Promise<unknown>): Promise<void> {
  await assertRefusedUnchanged({ path, format: 'vmdk', kind, message: re, readOnlyModes: [false], use });
}

test('refuses a grain directory offset past the end of the file', async () => {
  const t = tempDir();
  try {
    const p = await sparseImage(t.dir);
    patch(p, (b) => b.writeBigUInt64LE(0x1000000n, GD_OFFSET));
    await expectRefused(p, /Grain directory at offset \d+ .* is past the end of the file/);
  } finally {
    t.cleanup();
  }
});

test('refuses a grain table offset past the end of the file when it is used', async () => {
  const t = tempDir();
  try {
    const p = await sparseImage(t.dir);
    const gd = Number(readFileSync(p).readBigUInt64LE(GD_OFFSET)) * 512;
    patch(p, (b) => b.writeUInt32LE(0x7fffffff, gd));
    await expectRefused(p, /Grain table at offset \d+ .* is past the end of the file/, 'InvalidImage', (n) => n.read(0, 4096));
    await expectRefused(p, /Grain table at offset \d+ .* is past the end of the file/, 'InvalidImage', (n) => n.write(0, Buffer.alloc(512, 1)));
  } finally {
    t.cleanup();
  }
});

test('refuses to write into a grain whose table entry points at the header (the header stays intact)', async () => {
  const t = tempDir();
  try {
    const p = await sparseImage(t.dir);
    const gd = Number(readFileSync(p).readBigUInt64LE(GD_OFFSET)) * 512;
    const gt = readFileSync(p).readUInt32LE(gd) * 512;
    patch(p, (b) => b.writeUInt32LE(0, gt)); // grain 0 -> sector 0 is "unallocated"...
    patch(p, (b) => b.writeUInt32LE(1, gt + 4)); // ...grain 1 -> sector 1, inside the metadata
    await expectRefused(p, /Grain at host offset 512 overlaps the VMDK metadata/, 'Corrupt', (n) => n.write(65536, Buffer.alloc(512, 0xff)));
  } finally {
    t.cleanup();
  }
});

test('refuses grain size 0, a grain size that is not a power of two, and a huge grain size', async () => {
  const t = tempDir();
  try {
    const cases: [bigint, RegExp][] = [
      [0n, /L1 entry size is invalid/],
      [96n, /Invalid granularity 96 \(expecting a power of two/],
      [1n << 40n, /Invalid granularity, image may be corrupt/],
    ];
    for (const [grain, re] of cases) {
      const p = await sparseImage(t.dir, `g${grain}.vmdk`);
      patch(p, (b) => b.writeBigUInt64LE(grain, GRAIN_SIZE));
      await expectRefused(p, re);
    }
  } finally {
    t.cleanup();
  }
});

test('refuses a capacity whose grain directory would be huge, and one past what a JS number addresses', async () => {
  const t = tempDir();
  try {
    const p = await sparseImage(t.dir, 'cap1.vmdk');
    patch(p, (b) => b.writeBigUInt64LE(0xffffffffffffffffn, CAPACITY));
    await expectRefused(p, /L1 size too big/);
    const q = await sparseImage(t.dir, 'cap2.vmdk');
    patch(q, (b) => {
      b.writeBigUInt64LE(1n << 45n, CAPACITY); // 2^54 bytes
      b.writeBigUInt64LE(0x200000n, GRAIN_SIZE);
    });
    await expectRefused(q, /VMDK capacity is too large/);
  } finally {
    t.cleanup();
  }
});

test('refuses a descriptor listing more than 10,000 extents, quickly and before opening any', async () => {
  const t = tempDir();
  try {
    const p = t.path('many.vmdk');
    const lines = Array.from({ length: 10_001 }, (_, i) => `RW 1 FLAT "x${i}.bin" 0`).join('\n');
    writeFileSync(p, `# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="monolithicFlat"\n${lines}\n`);
    const t0 = Date.now();
    await expectRefused(p, /more than 10000 extents/);
    assert.ok(Date.now() - t0 < 5000);
  } finally {
    t.cleanup();
  }
});

test('refuses extent paths that escape the image directory (.., absolute elsewhere, protocols, json:)', async () => {
  const t = tempDir();
  try {
    for (const [i, name] of ['../escape.vmdk', 'sub/../../escape.vmdk', '/etc/passwd', 'nbd://localhost/x', 'json:{}'].entries()) {
      const p = t.path(`esc${i}.vmdk`);
      writeFileSync(p, `# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 8 FLAT "${name}" 0\n`);
      const before = md5(readFileSync(p));
      await assert.rejects(openImage(p, { format: 'vmdk', readOnly: true }), (e: unknown) => {
        assert.ok(e instanceof BlockError);
        assert.ok(e.kind === 'Permission' || e.kind === 'Unsupported', `${name}: ${e.kind} ${e.message}`);
        assert.match(e.message, /outside the image's directory|names a protocol or json/);
        return true;
      });
      assert.equal(md5(readFileSync(p)), before);
    }
  } finally {
    t.cleanup();
  }
});

test('refuses a stream grain marker with a huge compressed size, and a grain that does not inflate', async () => {
  const t = tempDir();
  try {
    const p = t.path('s.vmdk');
    await createImage({ format: 'vmdk', filename: p, size: 1 * MiB, options: 'subformat=streamOptimized' });
    const n = await openImage(p, { format: 'vmdk' });
    await n.impl.writeCompressed!(0, Buffer.alloc(65536, 0x5a));
    await n.close();
    const grainAt = 65536; // the first grain is appended at the end of the 64 KiB metadata
    assert.equal(readFileSync(p).readBigUInt64LE(grainAt), 0n, 'grain marker LBA 0');
    patch(p, (b) => b.writeUInt32LE(0xfffffff0, grainAt + 8));
    await expectRefused(p, /Compressed grain at offset 65536 has size 4294967280 \(expecting 1 to 131072 bytes\)/, 'InvalidImage', (x) => x.read(0, 512));
    patch(p, (b) => {
      b.writeUInt32LE(64, grainAt + 8);
      b.fill(0xff, grainAt + 12, grainAt + 76);
    });
    await expectRefused(p, /Invalid compressed grain at offset 65536/, 'InvalidImage', (x) => x.read(0, 512));
  } finally {
    t.cleanup();
  }
});

test('refuses an unknown version, a version 3 sparse extent opened read-write, and a truncated file', async () => {
  const t = tempDir();
  try {
    const p = await sparseImage(t.dir, 'v.vmdk');
    patch(p, (b) => b.writeUInt32LE(4, 4));
    await expectRefused(p, /Unsupported VMDK version 4/, 'Unsupported');
    const q = await sparseImage(t.dir, 'v3.vmdk');
    patch(q, (b) => b.writeUInt32LE(3, 4));
    await expectRefused(q, /VMDK version 3 must be read only/);
    const ro = await openImage(q, { format: 'vmdk', readOnly: true });
    await ro.close();
    const r = await sparseImage(t.dir, 'tr.vmdk');
    writeFileSync(r, readFileSync(r).subarray(0, 8192));
    await expectRefused(r, /File truncated, expecting at least 65536 bytes/);
  } finally {
    t.cleanup();
  }
});

test('a child whose parentCID does not match the parent CID fails to read from the parent (QEMU vmdk_is_cid_valid)', async () => {
  const t = tempDir();
  try {
    const base = await sparseImage(t.dir, 'base.vmdk');
    await createImage({ format: 'vmdk', filename: t.path('child.vmdk'), options: 'backing_file=base.vmdk,backing_fmt=vmdk' });
    const b = await openImage(base, { format: 'vmdk' });
    await b.write(0, Buffer.alloc(512, 1)); // changes the parent's CID
    await b.close();
    const child = await openImage(t.path('child.vmdk'), { format: 'vmdk', readOnly: true });
    try {
      await assert.rejects(child.read(0, 512), /Parent CID mismatch/);
    } finally {
      await child.close();
    }
  } finally {
    t.cleanup();
  }
});

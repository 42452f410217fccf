// cloop through Platter against QEMU 7.2 and cloop-utils' create_compressed_fs: every cloop
// fixture reads as `qemu-img convert -O raw` reads it; `qemu-img info` (human and JSON), `map`,
// `check` and `measure` print the same bytes; convert into every writable format passes
// `qemu-img compare`; images create_compressed_fs writes read equal to their source; writes are
// refused with qemu-img's words and leave the file untouched; crafted headers (iotest 075's and
// more) get qemu-img's verdict.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { openImage } from '../../core/block/open.ts';
import { BlockError } from '../../core/errors.ts';
import { fixture, fixtureFacts, HAVE_FIXTURES, md5, md5File, run, SKIP_NO_FIXTURES, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';
import { platterInProcess, qemuImgRaw } from './harness.ts';
import { buildCloop, CLOOP, createCompressedFs, patterned, SKIP_NO_CLOOP_UTILS } from '../helpers/bochs-cloop.ts';

const KiB = 1024;
const MiB = 1 << 20;
const facts = HAVE_FIXTURES ? fixtureFacts().filter((f) => f.format === 'cloop') : [];

async function readAll(path: string, format?: string): Promise<Buffer> {
  const node = await openImage(path, { readOnly: true, ...(format ? { format } : {}) });
  try {
    return await node.read(0, node.size);
  } finally {
    await node.close();
  }
}

/** The same qemu-img command through platter: stdout, stderr (program name aside), status. */
async function assertSameAsQemuImg(args: string[]): Promise<void> {
  const q = qemuImgRaw(...args);
  const p = await platterInProcess(args);
  const what = `qemu-img ${args.join(' ')}`;
  assert.equal(p.stdout, q.stdout, `${what}: stdout`);
  assert.equal(p.stderr, q.stderr.replace(/^qemu-img:/gm, 'platter:'), `${what}: stderr`);
  assert.equal(p.status, q.status, `${what}: exit status`);
}

/** qemu-img convert -O raw of an image: its bytes, or undefined when qemu-img fails reading. */
function qemuRaw(path: string, out: string): Buffer | undefined {
  const r = run('qemu-img', ['convert', '-f', 'cloop', '-O', 'raw', path, out]);
  return r.status === 0 ? readFileSync(out) : undefined;
}

test('cloop fixtures read with the md5 and virtual size of qemu-img convert -O raw / qemu-img info, probed as qemu-img probes them', { skip: SKIP_NO_FIXTURES }, async () => {
  assert.ok(facts.length >= 2, 'simple-pattern.cloop and cloop-v2.cloop are listed');
  for (const f of facts) {
    const node = await openImage(fixture(f.open), { readOnly: true });
    try {
      assert.equal(node.format, f.qemu_probe, `${f.id}: probed format`);
      assert.equal(node.size, f.qemu_info['virtual-size'], `${f.id}: virtual size`);
      assert.equal(md5(await node.read(0, node.size)), f.raw_md5, `${f.id}: raw md5`);
      // iotest 075: the first and the last sector.
      assert.equal((await node.read(0, 512)).length, 512);
      assert.equal((await node.read(node.size - 512, 512)).length, 512);
    } finally {
      await node.close();
    }
  }
});

test('qemu-img info, info --output=json, map, map --output=json, check and measure -O qcow2 print the same bytes for every cloop fixture', { skip: SKIP_NO_FIXTURES || SKIP_NO_QEMU }, async () => {
  for (const f of facts) {
    const path = fixture(f.open);
    for (const cmd of [['info'], ['info', '--output=json'], ['info', '-f', 'cloop', '--output=json'], ['map'], ['map', '--output=json'], ['check'], ['check', '--output=json'], ['measure', '-O', 'qcow2']]) {
      await assertSameAsQemuImg([...cmd, path]);
    }
  }
});

test('convert from cloop into qcow2, vmdk, vdi, vpc, vhdx, qed, qcow and raw: qemu-img compare finds each target identical and qemu-img check clean', { skip: SKIP_NO_FIXTURES || SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    for (const src of [fixture('generated/cloop-v2.cloop'), fixture('third-party/qemu-iotests/simple-pattern.cloop')]) {
      for (const fmt of ['qcow2', 'vmdk', 'vdi', 'vpc', 'vhdx', 'qed', 'qcow', 'raw']) {
        const out = t.path(`out.${fmt}`);
        const p = await platterInProcess(['convert', '-f', 'cloop', '-O', fmt, src, out]);
        assert.equal(p.status, 0, `${fmt}: ${p.stderr}`);
        const cmp = qemuImgRaw('compare', '-f', 'cloop', '-F', fmt, src, out);
        assert.equal(cmp.status, 0, `${src} -> ${fmt}: ${cmp.stdout}${cmp.stderr}`);
        assert.match(cmp.stdout, /Images are identical/);
        if (['qcow2', 'vmdk', 'vdi', 'vhdx', 'qed', 'vpc'].includes(fmt)) {
          const chk = qemuImgRaw('check', '-f', fmt, out);
          assert.ok(chk.status === 0 || (fmt === 'vpc' && chk.status === 63), `${fmt}: qemu-img check: ${chk.stdout}${chk.stderr}`);
        }
      }
    }
  } finally {
    t.cleanup();
  }
});

test('create_compressed_fs images (random and patterned raw files, block sizes 512 B to 1 MiB, compression levels 0 and 9) read as their source and as qemu-img convert -O raw', { skip: SKIP_NO_CLOOP_UTILS || SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const cases: [size: number, blockSize: number, extra: string[]][] = [
      [MiB, 512, []],
      [3 * MiB, 16 * KiB, []],
      [4 * MiB, 64 * KiB, ['-L', '0']],
      [5 * MiB + 512 * 7, 256 * KiB, []],
      [8 * MiB, MiB, ['-L', '1']],
    ];
    for (const [i, [size, bs, extra]] of cases.entries()) {
      const raw = t.path(`src${i}.raw`);
      const data = i % 2 === 0 ? patterned(size, i + 3) : Buffer.concat([randomish(size / 2, i), Buffer.alloc(size - size / 2)]);
      writeFileSync(raw, data);
      const img = t.path(`c${i}.cloop`);
      createCompressedFs(raw, img, bs, extra);
      const got = await readAll(img);
      // The last block is padded with zeros to the block size.
      const padded = Math.ceil(size / bs) * bs;
      assert.equal(got.length, padded, `${size}/${bs}: virtual size`);
      assert.ok(got.subarray(0, size).equals(data), `${size}/${bs}: content equals the raw source`);
      assert.ok(got.subarray(size).equals(Buffer.alloc(padded - size)), `${size}/${bs}: zero padding`);
      assert.ok(got.equals(qemuRaw(img, t.path('q.raw'))!), `${size}/${bs}: content equals qemu-img convert -O raw`);
      await assertSameAsQemuImg(['info', '--output=json', img]);
      await assertSameAsQemuImg(['info', img]);
    }
  } finally {
    t.cleanup();
  }
});

/** Incompressible bytes (a simple LCG; deterministic). */
function randomish(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  let x = (seed + 1) * 2246822519;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

test('writes are refused with qemu-img\'s "Image is read-only" (resize, commit, snapshot -c, amend, rebase, convert -O cloop, a read-write open) and the file stays untouched', { skip: SKIP_NO_FIXTURES || SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('ro.cloop');
    writeFileSync(img, readFileSync(fixture('generated/cloop-v2.cloop')));
    const before = md5File(img);
    for (const cmd of [['resize', img, '8M'], ['resize', '-f', 'cloop', img, '8M'], ['commit', img], ['snapshot', '-c', 's', img], ['amend', '-o', 'size=8M', img], ['rebase', '-u', '-b', 'x', img], ['convert', '-O', 'cloop', img, t.path('x.cloop')], ['create', '-f', 'cloop', t.path('y.cloop'), '1M'], ['measure', '-O', 'cloop', img]]) {
      await assertSameAsQemuImg(cmd);
    }
    await assert.rejects(openImage(img, { readOnly: false, format: 'cloop' }), (e: unknown) => e instanceof BlockError && /Image is read-only/.test(e.message));
    await assert.rejects(openImage(img, { readOnly: false }), (e: unknown) => e instanceof BlockError && /Image is read-only/.test(e.message));
    const io = run('qemu-io', ['-c', 'write 0 512', img]);
    assert.match(io.stderr, /Image is read-only/);
    assert.equal(md5File(img), before, 'the image file is unchanged');
  } finally {
    t.cleanup();
  }
});

const u64be = (v: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(v);
  return b;
};
const poke = (b: Buffer, at: number, bytes: Buffer): Buffer => (bytes.copy(b, at), b);
const nBlocks = (b: Buffer) => b.readUInt32BE(CLOOP.nBlocks);
const offsetAt = (b: Buffer, i: number) => b.readBigUInt64BE(CLOOP.offsets + 8 * i);

/** Crafted variants of a valid image: fields poked (iotest 075's and more). */
const CRAFTED: { name: string; edit(b: Buffer): Buffer }[] = [
  { name: 'block_size 513 (iotest 075)', edit: (b) => (b.writeUInt32BE(513, CLOOP.blockSize), b) },
  { name: 'block_size 0 (iotest 075)', edit: (b) => (b.writeUInt32BE(0, CLOOP.blockSize), b) },
  { name: 'block_size 4294966784 (iotest 075)', edit: (b) => (b.writeUInt32BE(0xfffffe00, CLOOP.blockSize), b) },
  { name: 'block_size 64 MiB + 512', edit: (b) => (b.writeUInt32BE(64 * MiB + 512, CLOOP.blockSize), b) },
  { name: 'n_blocks 2^32-1 (iotest 075)', edit: (b) => (b.writeUInt32BE(0xffffffff, CLOOP.nBlocks), b) },
  { name: 'n_blocks 0x4000001: too many offsets (iotest 075)', edit: (b) => (b.writeUInt32BE(0x4000001, CLOOP.nBlocks), b) },
  { name: 'offsets not monotonic (iotest 075)', edit: (b) => poke(poke(b, CLOOP.offsets, u64be(0xffffffffn)), CLOOP.offsets + 8, u64be(0xfffe0000n)) },
  { name: 'compressed block of 2^64-1 bytes (iotest 075)', edit: (b) => poke(poke(b, CLOOP.offsets, u64be(0n)), CLOOP.offsets + 8, u64be(2n ** 64n - 1n)) },
  { name: 'n_blocks larger than the table (entries past it run into data)', edit: (b) => (b.writeUInt32BE(nBlocks(b) + 136, CLOOP.nBlocks), b) },
  { name: 'n_blocks 0 (empty disk)', edit: (b) => (b.writeUInt32BE(0, CLOOP.nBlocks), b) },
  { name: 'last offset past the end of the file', edit: (b) => poke(b, CLOOP.offsets + 8 * nBlocks(b), u64be(offsetAt(b, nBlocks(b)) + 5000n)) },
  { name: 'last block cut short by 3 bytes', edit: (b) => poke(b, CLOOP.offsets + 8 * nBlocks(b), u64be(offsetAt(b, nBlocks(b)) - 3n)) },
  { name: 'block_size 1024 (blocks inflate to more)', edit: (b) => (b.writeUInt32BE(1024, CLOOP.blockSize), b) },
  { name: 'block_size 64 MiB with 64 blocks (size wraps in 32 bits)', edit: (b) => (b.writeUInt32BE(64 * MiB, CLOOP.blockSize), b) },
  { name: 'garbage inside block 3', edit: (b) => poke(b, Number(offsetAt(b, 3)) + 5, Buffer.from([0x99, 0x98, 0x97])) },
  { name: 'truncated to 100 bytes', edit: (b) => b.subarray(0, 100) },
  { name: 'truncated to 140 bytes (table cut)', edit: (b) => b.subarray(0, 140) },
  { name: 'truncated to 300 bytes', edit: (b) => b.subarray(0, 300) },
  { name: 'truncated to 1600 bytes (blocks cut)', edit: (b) => b.subarray(0, 1600) },
];

test('crafted cloop headers: qemu-img info\'s verdict and words, and qemu-img convert -O raw\'s bytes where it reads them', { skip: SKIP_NO_FIXTURES || SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const base = readFileSync(fixture('generated/cloop-v2.cloop'));
    for (const [i, c] of CRAFTED.entries()) {
      const img = t.path(`c${i}.cloop`);
      writeFileSync(img, c.edit(Buffer.from(base)));
      await assertSameAsQemuImg(['info', '-f', 'cloop', img]);
      await assertSameAsQemuImg(['info', img]);
      if (qemuImgRaw('info', '-f', 'cloop', img).status !== 0) continue;
      const expected = qemuRaw(img, t.path('q.raw'));
      if (expected) assert.ok((await readAll(img, 'cloop')).equals(expected), `${c.name}: reads as qemu-img convert -O raw`);
      else await assert.rejects(readAll(img, 'cloop'), (e: unknown) => e instanceof BlockError && e.message === 'Input/output error', `${c.name}: read fails as in qemu-img`);
    }
  } finally {
    t.cleanup();
  }
});

test('a cloop block whose stream fails its checksum, or holds more than a block, fails to read as in qemu-img; trailing bytes after a stream are ignored as in qemu-img', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const data = patterned(64 * KiB, 9);
    const good = buildCloop(data, 4096);
    const variants: [string, Buffer][] = [];
    // Block 1's adler32 trailer zeroed (QEMU's inflate fails the check).
    {
      const b = Buffer.from(good);
      const o1 = Number(b.readBigUInt64BE(CLOOP.offsets + 8));
      const o2 = Number(b.readBigUInt64BE(CLOOP.offsets + 16));
      variants.push(['checksum zeroed', Buffer.concat([b.subarray(0, o2 - 4), Buffer.alloc(4), b.subarray(o2)])]);
      void o1;
    }
    // Block 0 holds 8 KiB of data for a 4 KiB block.
    {
      const big = deflateSync(Buffer.alloc(8192, 7));
      const b = buildCloop(data, 4096);
      const o0 = Number(b.readBigUInt64BE(CLOOP.offsets));
      const o1 = Number(b.readBigUInt64BE(CLOOP.offsets + 8));
      const rest = b.subarray(o1);
      const head = Buffer.from(b.subarray(0, o0));
      const shift = BigInt(big.length - (o1 - o0));
      for (let i = 1; i <= head.readUInt32BE(CLOOP.nBlocks); i++) head.writeBigUInt64BE(head.readBigUInt64BE(CLOOP.offsets + 8 * i) + shift, CLOOP.offsets + 8 * i);
      variants.push(['block too long', Buffer.concat([head, big, rest])]);
    }
    // Block 0's stream followed by junk inside its range: still reads.
    {
      const b = buildCloop(data, 4096);
      const o0 = Number(b.readBigUInt64BE(CLOOP.offsets));
      const o1 = Number(b.readBigUInt64BE(CLOOP.offsets + 8));
      const head = Buffer.from(b.subarray(0, o0));
      for (let i = 1; i <= head.readUInt32BE(CLOOP.nBlocks); i++) head.writeBigUInt64BE(head.readBigUInt64BE(CLOOP.offsets + 8 * i) + 16n, CLOOP.offsets + 8 * i);
      variants.push(['trailing junk', Buffer.concat([head, b.subarray(o0, o1), Buffer.alloc(16, 0xee), b.subarray(o1)])]);
    }
    for (const [name, bytes] of variants) {
      const img = t.path(`${name.replace(/ /g, '-')}.cloop`);
      writeFileSync(img, bytes);
      const expected = qemuRaw(img, t.path('q.raw'));
      if (name === 'trailing junk') {
        assert.ok(expected?.equals(data), `${name}: qemu-img reads it`);
        assert.ok((await readAll(img)).equals(data), `${name}: Platter reads it`);
      } else {
        assert.equal(expected, undefined, `${name}: qemu-img fails`);
        await assert.rejects(readAll(img), (e: unknown) => e instanceof BlockError && e.message === 'Input/output error', name);
      }
    }
  } finally {
    t.cleanup();
  }
});

// bochs through Platter against QEMU 7.2 and Bochs' own bximage: every bochs fixture reads as
// `qemu-img convert -O raw` reads it; `qemu-img info` (human and JSON), `map`, `check` and
// `measure` print the same bytes; convert into every writable format passes `qemu-img compare`;
// images bximage writes read equal to their source; writes are refused with qemu-img's words and
// leave the file untouched; crafted headers (iotest 078's and more) get qemu-img's verdict.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { openImage } from '../../core/block/open.ts';
import { BlockError } from '../../core/errors.ts';
import { fixture, fixtureFacts, HAVE_FIXTURES, md5, md5File, qemuImg, run, SKIP_NO_FIXTURES, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';
import { platterInProcess, qemuImgRaw } from './harness.ts';
import { BOCHS, buildBochs, bximageConvert, bximageCreate, patterned, SKIP_NO_BXIMAGE } from '../helpers/bochs-cloop.ts';

const MiB = 1 << 20;
const facts = HAVE_FIXTURES ? fixtureFacts().filter((f) => f.format === 'bochs') : [];

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
function qemuRaw(path: string, out: string, format = 'bochs'): Buffer | undefined {
  const r = run('qemu-img', ['convert', '-f', format, '-O', 'raw', path, out]);
  return r.status === 0 ? readFileSync(out) : undefined;
}

test('bochs fixtures read with the md5 and virtual size of qemu-img convert -O raw / qemu-img info, probed as qemu-img probes them', { skip: SKIP_NO_FIXTURES }, async () => {
  assert.ok(facts.length >= 2, 'empty.bochs and bximage-growing.img are listed');
  for (const f of facts) {
    const node = await openImage(fixture(f.open), { readOnly: true });
    try {
      assert.equal(node.format, f.qemu_probe, `${f.id}: probed format`);
      assert.equal(node.size, f.qemu_info['virtual-size'], `${f.id}: virtual size`);
      assert.equal(md5(await node.read(0, node.size)), f.raw_md5, `${f.id}: raw md5`);
    } finally {
      await node.close();
    }
  }
});

test('qemu-img info, info --output=json, map, map --output=json, check and measure -O qcow2 print the same bytes for every bochs fixture', { skip: SKIP_NO_FIXTURES || SKIP_NO_QEMU }, async () => {
  for (const f of facts) {
    const path = fixture(f.open);
    for (const cmd of [['info'], ['info', '--output=json'], ['info', '-f', 'bochs', '--output=json'], ['map'], ['map', '--output=json'], ['check'], ['check', '--output=json'], ['measure', '-O', 'qcow2']]) {
      await assertSameAsQemuImg([...cmd, path]);
    }
  }
});

test('convert from bochs into qcow2, vmdk, vdi, vpc, vhdx, qed, qcow and raw: qemu-img compare finds each target identical and qemu-img check clean', { skip: SKIP_NO_FIXTURES || SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const src = fixture('generated/bximage-growing.img');
    for (const fmt of ['qcow2', 'vmdk', 'vdi', 'vpc', 'vhdx', 'qed', 'qcow', 'raw']) {
      const out = t.path(`out.${fmt}`);
      const p = await platterInProcess(['convert', '-f', 'bochs', '-O', fmt, src, out]);
      assert.equal(p.status, 0, `${fmt}: ${p.stderr}`);
      const cmp = qemuImgRaw('compare', '-f', 'bochs', '-F', fmt, src, out);
      assert.equal(cmp.status, 0, `${fmt}: ${cmp.stdout}${cmp.stderr}`);
      assert.match(cmp.stdout, /Images are identical/);
      if (['qcow2', 'vmdk', 'vdi', 'vhdx', 'qed', 'vpc'].includes(fmt)) {
        const chk = qemuImgRaw('check', '-f', fmt, out);
        // vpc has no check in QEMU (exit 63); every other target must be clean.
        assert.ok(chk.status === 0 || (fmt === 'vpc' && chk.status === 63), `${fmt}: qemu-img check: ${chk.stdout}${chk.stderr}`);
      }
    }
  } finally {
    t.cleanup();
  }
});

test('bximage growing images (converted from patterned raw files of several sizes, and empty ones from -func=create) read as their source and as qemu-img convert -O raw', { skip: SKIP_NO_BXIMAGE || SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    for (const [i, size] of [MiB, 3 * MiB + 512 * 5, 10 * MiB].entries()) {
      const raw = t.path(`src${i}.raw`);
      const data = patterned(size, i + 1);
      writeFileSync(raw, data);
      const img = t.path(`bx${i}.img`);
      bximageConvert(raw, img);
      const got = await readAll(img);
      // bximage rounds the disk to whole sectors; the source is a multiple of 512 here.
      assert.equal(got.length, size, `${size}: virtual size`);
      assert.ok(got.equals(data), `${size}: content equals the raw source`);
      assert.ok(got.equals(qemuRaw(img, t.path('q.raw'))!), `${size}: content equals qemu-img convert -O raw`);
      await assertSameAsQemuImg(['info', '--output=json', img]);
    }
    for (const size of ['10M', '100M', '1G']) {
      const img = t.path(`empty-${size}.img`);
      bximageCreate(img, size);
      await assertSameAsQemuImg(['info', '--output=json', img]);
      await assertSameAsQemuImg(['map', '--output=json', img]);
      const node = await openImage(img, { readOnly: true });
      try {
        assert.equal(node.format, 'bochs');
        const head = await node.read(0, MiB);
        assert.ok(head.equals(Buffer.alloc(MiB)), `${size}: an empty image reads as zeros`);
        const st = await node.blockStatus(0, node.size, { precise: true });
        assert.equal(st.length, node.size, `${size}: nothing allocated`);
        assert.equal(st.zero, true);
      } finally {
        await node.close();
      }
    }
  } finally {
    t.cleanup();
  }
});

test('writes are refused with qemu-img\'s "Image is read-only" (resize, commit, snapshot -c, amend, rebase, convert -O bochs, a read-write open) and the file stays untouched', { skip: SKIP_NO_FIXTURES || SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('ro.img');
    writeFileSync(img, readFileSync(fixture('generated/bximage-growing.img')));
    const before = md5File(img);
    for (const cmd of [['resize', img, '8M'], ['resize', '-f', 'bochs', img, '8M'], ['commit', img], ['snapshot', '-c', 's', img], ['amend', '-o', 'size=8M', img], ['rebase', '-u', '-b', 'x', img], ['convert', '-O', 'bochs', img, t.path('x.bochs')], ['create', '-f', 'bochs', t.path('y.bochs'), '1M'], ['measure', '-O', 'bochs', img]]) {
      await assertSameAsQemuImg(cmd);
    }
    await assert.rejects(openImage(img, { readOnly: false, format: 'bochs' }), (e: unknown) => e instanceof BlockError && /Image is read-only/.test(e.message));
    await assert.rejects(openImage(img, { readOnly: false }), (e: unknown) => e instanceof BlockError && /Image is read-only/.test(e.message));
    const io = run('qemu-io', ['-c', 'write 0 512', img]);
    assert.match(io.stderr, /Image is read-only/);
    assert.equal(md5File(img), before, 'the image file is unchanged');
  } finally {
    t.cleanup();
  }
});

/** Crafted variants of a valid image: one field poked (iotest 078's and more). */
const CRAFTED: { name: string; edit(b: Buffer): Buffer }[] = [
  { name: 'catalog 0xffffffff (iotest 078)', edit: (b) => (b.writeUInt32LE(0xffffffff, BOCHS.catalog), b) },
  { name: 'catalog 0x40000000: catalog * 4 overflows 32 bits (iotest 078)', edit: (b) => (b.writeUInt32LE(0x40000000, BOCHS.catalog), b) },
  { name: 'disk size far beyond the catalog (iotest 078)', edit: (b) => (b.writeBigUInt64LE(0x7f0000000fc000n, BOCHS.diskV2), b) },
  { name: 'catalog of 16 entries for the disk (iotest 078)', edit: (b) => (b.writeUInt32LE(16, BOCHS.catalog), b) },
  { name: 'disk size 2^63 + 5', edit: (b) => (b.writeBigUInt64LE(2n ** 63n + 5n, BOCHS.diskV2), b) },
  { name: 'extent 0x80000000 (iotest 078)', edit: (b) => (b.writeUInt32LE(0x80000000, BOCHS.extent), b) },
  { name: 'extent 0 (iotest 078)', edit: (b) => (b.writeUInt32LE(0, BOCHS.extent), b) },
  { name: 'extent 3000 (not a power of two)', edit: (b) => (b.writeUInt32LE(3000, BOCHS.extent), b) },
  { name: 'extent 16 MiB', edit: (b) => (b.writeUInt32LE(16 * MiB, BOCHS.extent), b) },
  { name: 'bad magic', edit: (b) => (b.write('X', 0), b) },
  { name: 'subtype "Undoable"', edit: (b) => (b.write('Undoable\0', 48, 'latin1'), b) },
  { name: 'version 3', edit: (b) => (b.writeUInt32LE(0x30000, BOCHS.version), b) },
  { name: 'header version 1 layout (disk size at 84)', edit: (b) => (b.writeUInt32LE(0x10000, BOCHS.version), b.writeBigUInt64LE(b.readBigUInt64LE(BOCHS.diskV2), BOCHS.diskV1), b) },
  { name: 'disk size not a multiple of 512', edit: (b) => (b.writeBigUInt64LE(b.readBigUInt64LE(BOCHS.diskV2) - 100n, BOCHS.diskV2), b) },
  { name: 'bitmap size 0 (u32 wrap in the slot stride)', edit: (b) => (b.writeUInt32LE(0, BOCHS.bitmap), b) },
  { name: 'header size 0xfffffff0 (catalog past the end, data offset wraps)', edit: (b) => (b.writeUInt32LE(0xfffffff0, BOCHS.header), b) },
  { name: 'first catalog entry 0x7fffffff (slot past the end of the file)', edit: (b) => (b.writeUInt32LE(0x7fffffff, b.readUInt32LE(BOCHS.header)), b) },
  { name: 'first catalog entry 0xfffffffe', edit: (b) => (b.writeUInt32LE(0xfffffffe, b.readUInt32LE(BOCHS.header)), b) },
  { name: 'truncated to 100 bytes', edit: (b) => b.subarray(0, 100) },
  { name: 'truncated to 600 bytes (catalog cut)', edit: (b) => b.subarray(0, 600) },
  { name: 'truncated to 50000 bytes (slots cut)', edit: (b) => b.subarray(0, 50000) },
  { name: 'truncated to 150000 bytes', edit: (b) => b.subarray(0, 150000) },
];

test('crafted bochs headers: qemu-img info\'s verdict and words, and qemu-img convert -O raw\'s bytes where it reads them', { skip: SKIP_NO_FIXTURES || SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const base = readFileSync(fixture('generated/bximage-growing.img'));
    for (const [i, c] of CRAFTED.entries()) {
      const img = t.path(`c${i}.bochs`);
      writeFileSync(img, c.edit(Buffer.from(base)));
      await assertSameAsQemuImg(['info', '-f', 'bochs', img]);
      await assertSameAsQemuImg(['info', img]);
      const q = qemuImgRaw('info', '-f', 'bochs', img);
      if (q.status !== 0) continue;
      const expected = qemuRaw(img, t.path('q.raw'));
      if (expected) assert.ok((await readAll(img, 'bochs')).equals(expected), `${c.name}: reads as qemu-img convert -O raw`);
      else await assert.rejects(readAll(img, 'bochs'), (e: unknown) => e instanceof BlockError && e.message === 'Input/output error', `${c.name}: read fails as in qemu-img`);
    }
  } finally {
    t.cleanup();
  }
});

test('a bochs image built extent by extent (v1 and v2 headers, 4 KiB to 64 KiB extents) reads its data and as qemu-img reads it', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    for (const [version, extent] of [[2, 4096], [1, 8192], [2, 65536]] as const) {
      const data = patterned(MiB + 3 * 512, extent);
      const img = t.path(`b-${version}-${extent}.bochs`);
      writeFileSync(img, buildBochs({ data, extentSize: extent, version }));
      assert.ok((await readAll(img)).equals(data), `v${version} extent ${extent}: content`);
      assert.ok(qemuRaw(img, t.path('q.raw'))!.equals(data), `v${version} extent ${extent}: qemu-img reads the same`);
      // Reads across extent boundaries, unaligned to the extent, agree too.
      const node = await openImage(img, { readOnly: true });
      try {
        for (const [off, len] of [[extent - 512, 1024], [3 * extent + 512, 2 * extent + 1024]]) {
          assert.ok((await node.read(off, len)).equals(data.subarray(off, off + len)), `v${version} extent ${extent}: read at ${off}`);
        }
      } finally {
        await node.close();
      }
    }
  } finally {
    t.cleanup();
  }
});

// qcow (version 1) through Platter against the real QEMU tools: the fixture reads as
// `qemu-img convert -O raw` and maps as `qemu-img map`; images qemu-io wrote (with a backing file)
// and `qemu-img convert -c` compressed read identically; images Platter creates and writes (with
// and without a backing file, compressed clusters) pass `qemu-img compare` and `qemu-img info`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import type { BlockNode } from '../../core/block/node.ts';
import { assertFixtureReadsAsQemu, assertMapMatches, assertQemuCompareRaw, concurrentRandomWrites, qemuRaw, withImageNode } from '../helpers/image-compare.ts';
import { fixture, fixtureById, qemuImg, qemuImgJson, qemuIo, run, SKIP_NO_FIXTURES, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';

const KiB = 1024;
const MiB = 1 << 20;

function pattern(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = ((i * 13 + seed * 29) % 253) + 1;
  return b;
}

const withNode = <T>(path: string, fn: (n: BlockNode) => Promise<T>, readOnly = true): Promise<T> => withImageNode(path, 'qcow', fn, readOnly);

test('generated/qcow1.qcow reads with the md5 of qemu-img convert -O raw and maps as qemu-img map', { skip: SKIP_NO_FIXTURES }, async () => {
  const f = fixtureById('generated/qcow1.qcow');
  const node = await openImage(fixture(f.open), { readOnly: true });
  try {
    await assertFixtureReadsAsQemu(node, f, 'qcow');
  } finally {
    await node.close();
  }
});

test('a qcow over a backing file written by qemu-io reads as qemu-img convert -O raw (backing fall-through)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const base = t.path('base.raw');
    writeFileSync(base, pattern(2 * MiB, 7));
    const img = t.path('top.qcow');
    qemuImg('create', '-q', '-f', 'qcow', '-b', 'base.raw', '-F', 'raw', img);
    qemuIo('-f', 'qcow', '-c', 'write -P 0x11 512 512', '-c', 'write -P 0x22 70000 10000', '-c', 'write -z 1M 4096', img);
    const info = qemuImgJson('info', '-f', 'qcow', img);
    await withNode(img, async (node) => {
      assert.equal(node.size, info['virtual-size']);
      assert.equal(node.impl.backingFile?.filename, info['backing-filename']);
      assert.ok(node.backing, 'the backing file was opened');
      assert.deepEqual(await node.read(0, node.size), qemuRaw(img, t.dir, 'qcow'));
      await assertMapMatches(node, qemuImgJson('map', '-f', 'qcow', img));
      assert.equal((await node.blockStatus(512, 512)).allocated, true);
      assert.equal((await node.blockStatus(0, 512)).allocated, false, 'unwritten clusters fall through to the backing file');
    });
  } finally {
    t.cleanup();
  }
});

test('a qcow compressed by qemu-img convert -c reads identically and reports compressed clusters', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const src = Buffer.alloc(MiB + 12 * KiB);
    for (let c = 0; c < src.length / (4 * KiB); c++) {
      if (c % 3 === 0) pattern(4 * KiB, c).copy(src, c * 4 * KiB); // compresses a little
      else if (c % 3 === 1) src.fill(`cluster ${c} text `, c * 4 * KiB, (c + 1) * 4 * KiB); // compresses well
      // every third cluster stays zero: qemu-img leaves it unallocated
    }
    const raw = t.path('src.raw');
    writeFileSync(raw, src);
    const img = t.path('c.qcow');
    // qemu-img 7.2 exits 1 after writing every cluster here: its final zero-length compressed
    // write (convert's end marker) is refused by the qcow driver. The image itself is complete.
    run('qemu-img', ['convert', '-c', '-f', 'raw', '-O', 'qcow', raw, img]);
    assert.equal(run('qemu-img', ['compare', '-f', 'qcow', '-F', 'raw', img, raw]).status, 0, 'qemu-img sees the source in the image');
    await withNode(img, async (node) => {
      assert.deepEqual(await node.read(0, node.size), src);
      const st = await node.blockStatus(4 * KiB, 4 * KiB);
      assert.equal(st.compressed, true);
      assert.equal(st.hostOffset, undefined);
      // A partial write into a compressed cluster keeps the rest of it (decompress, rewrite).
    }, true);
    await withNode(img, async (node) => {
      await node.write(4 * KiB + 100, Buffer.from('partial'));
      Buffer.from('partial').copy(src, 4 * KiB + 100);
      assert.deepEqual(await node.read(0, node.size), src);
    }, false);
    assertQemuCompareRaw('qcow', img, raw, src);
  } finally {
    t.cleanup();
  }
});

test('qcow images Platter creates and writes (plain, with a backing file, compressed) pass qemu-img compare and qemu-img info', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const base = t.path('base.raw');
    const baseData = pattern(3 * MiB, 3);
    writeFileSync(base, baseData);
    for (const withBacking of [false, true]) {
      const img = t.path(`p-${withBacking}.qcow`);
      const size = 3 * MiB;
      await createImage({ format: 'qcow', filename: img, ...(withBacking ? { options: { backing_file: 'base.raw', backing_fmt: 'raw' } } : { size: size + 1000 }), warn: () => {} });
      const expected = withBacking ? Buffer.from(baseData) : Buffer.alloc(size + 1024);
      await withNode(img, async (node) => {
        assert.equal(node.size, expected.length);
        const writes: [number, Buffer][] = [
          [100, pattern(5000, 1)],
          [64 * KiB - 300, pattern(700, 2)],
          [MiB, pattern(200 * KiB, 3)],
          [2 * MiB + 3 * KiB, pattern(9 * KiB, 4)],
          [2 * MiB + 64 * KiB, pattern(4 * KiB, 5)],
        ];
        await Promise.all(writes.map(([o, d]) => node.write(o, d)));
        for (const [o, d] of writes) d.copy(expected, o);
        await node.writeZeroes(MiB + 1000, 30 * KiB);
        expected.fill(0, MiB + 1000, MiB + 1000 + 30 * KiB);
        await node.writeZeroes(2 * MiB + 512 * KiB, 64 * KiB);
        expected.fill(0, 2 * MiB + 512 * KiB, 2 * MiB + 576 * KiB);
        const cs = node.clusterSize!;
        const comp = Buffer.alloc(cs, 'compressible ');
        await node.impl.writeCompressed!(2 * MiB + 256 * KiB, comp);
        comp.copy(expected, 2 * MiB + 256 * KiB);
        assert.equal((await node.blockStatus(2 * MiB + 256 * KiB, cs)).compressed, true);
        assert.deepEqual(await node.read(0, node.size), expected);
      }, false);
      assertQemuCompareRaw('qcow', img, t.path('expected.raw'), expected);
      const info = qemuImgJson('info', '-f', 'qcow', img);
      assert.equal(info['virtual-size'], expected.length);
      assert.equal(info['cluster-size'], withBacking ? 512 : 4096, 'the cluster size qemu-img create picks');
      if (withBacking) assert.equal(info['backing-filename'], 'base.raw');
    }
  } finally {
    t.cleanup();
  }
});

test('qcow create refuses what qemu-img create refuses: zero size, encryption without encrypt.key-secret', async () => {
  const t = tempDir();
  try {
    await assert.rejects(createImage({ format: 'qcow', filename: t.path('z.qcow'), size: 0 }), /Image size is too small, cannot be zero length/);
    await assert.rejects(createImage({ format: 'qcow', filename: t.path('e.qcow'), size: MiB, options: 'encryption=on' }), /Parameter 'encrypt.key-secret' is required for cipher/);
  } finally {
    t.cleanup();
  }
});

test('qcow under 8 concurrent random writes (as convert -m 8 issues them) matches a raw model and qemu-img compare', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('stress.qcow');
    const size = 6 * MiB;
    await createImage({ format: 'qcow', filename: img, size });
    const model = Buffer.alloc(size);
    await withNode(img, async (node) => {
      await concurrentRandomWrites(node, model, { seed: 777, pattern, zeroes: false });
      assert.ok((await node.read(0, size)).equals(model));
    }, false);
    assertQemuCompareRaw('qcow', img, t.path('model.raw'), model);
  } finally {
    t.cleanup();
  }
});

test('qcow create writes the same bytes as qemu-img create -f qcow (plain and with a backing file)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    writeFileSync(t.path('base.raw'), Buffer.alloc(3 * MiB + 512));
    for (const [name, args, opts] of [
      ['plain', ['5M'], { size: 5 * MiB }],
      ['odd', ['1000'], { size: 1000 }],
      ['backed', ['-b', 'base.raw', '-F', 'raw'], { options: { backing_file: 'base.raw', backing_fmt: 'raw' } }],
    ] as const) {
      qemuImg('create', '-q', '-f', 'qcow', ...(args.length > 1 ? [...args, t.path(`q-${name}.qcow`)] : [t.path(`q-${name}.qcow`), ...args]));
      await createImage({ format: 'qcow', filename: t.path(`p-${name}.qcow`), ...opts, warn: () => {} });
      assert.deepEqual(readFileSync(t.path(`p-${name}.qcow`)), readFileSync(t.path(`q-${name}.qcow`)), name);
    }
  } finally {
    t.cleanup();
  }
});

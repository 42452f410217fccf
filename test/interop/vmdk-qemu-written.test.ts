// Images qemu-img creates (every subformat, zeroed_grain, streamOptimized by qemu-img convert)
// and qemu-io writes: Platter reads the same bytes as `qemu-img convert -O raw`, reports the same
// allocation as `qemu-img map --output=json`, and what Platter then writes into them reads back
// with `qemu-io -c "read -P"`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { blockStatusAbove } from '../../core/block/node.ts';
import { md5, md5File, qemuImg, qemuImgJson, qemuIo, run, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';
import type { BlockNode } from '../../core/block/node.ts';

const PATTERN = ['write -P 0x11 0 64k', 'write -P 0x22 1052160 3072', 'write -P 0x33 2096640 4096', 'write -P 0x55 3M 128k', 'write -z 3211264 64k', 'write -P 0x44 4128768 64k'];

/** Merged allocation map as qemu-img map --output=json prints it (start, length, present, zero, data). */
async function platterMap(node: BlockNode): Promise<{ start: number; length: number; present: boolean; zero: boolean; data: boolean }[]> {
  const out: { start: number; length: number; present: boolean; zero: boolean; data: boolean }[] = [];
  for (let off = 0; off < node.size; ) {
    const st = await node.blockStatus(off, node.size - off);
    const e = { start: off, length: st.length, present: st.allocated, zero: st.zero, data: st.data };
    const last = out[out.length - 1];
    if (last && last.present === e.present && last.zero === e.zero && last.data === e.data) last.length += e.length;
    else out.push(e);
    off += st.length;
  }
  return out;
}

const cases: [string, string[]][] = [
  ['monolithicSparse', ['-o', 'subformat=monolithicSparse']],
  ['monolithicFlat', ['-o', 'subformat=monolithicFlat']],
  ['twoGbMaxExtentSparse', ['-o', 'subformat=twoGbMaxExtentSparse']],
  ['twoGbMaxExtentFlat', ['-o', 'subformat=twoGbMaxExtentFlat']],
  ['zeroed_grain', ['-o', 'zeroed_grain=on']],
];

test('reads vmdk images qemu-img created and qemu-io wrote (every subformat) like qemu-img convert -O raw', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    for (const [name, opts] of cases) {
      const img = t.path(`${name}.vmdk`);
      qemuImg('create', '-q', '-f', 'vmdk', ...opts, img, '4M');
      qemuIo('-f', 'vmdk', ...PATTERN.flatMap((c) => ['-c', c]), img);
      qemuImg('convert', '-f', 'vmdk', '-O', 'raw', img, t.path(`${name}.raw`));
      const node = await openImage(img, { readOnly: true });
      try {
        assert.equal(md5(await node.read(0, node.size)), md5File(t.path(`${name}.raw`)), `${name} content`);
        if (!name.includes('Flat')) {
          const theirs = qemuImgJson<any[]>('map', '-f', 'vmdk', img).map(({ start, length, present, zero, data }) => ({ start, length, present, zero, data }));
          assert.deepEqual(await platterMap(node), theirs, `${name} map`);
        }
      } finally {
        await node.close();
      }
    }
  } finally {
    t.cleanup();
  }
});

test('reads a streamOptimized image made by qemu-img convert, and its map flags compressed grains', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const raw = t.path('src.raw');
    const src = Buffer.alloc(3 << 20);
    for (let i = 0; i < src.length; i += 4096) src.fill((i >> 12) & 0xff, i, i + 1000);
    src.fill(0, 1 << 20, 2 << 20);
    writeFileSync(raw, src);
    const img = t.path('s.vmdk');
    qemuImg('convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, img);
    const node = await openImage(img, { readOnly: true });
    try {
      assert.ok((await node.read(0, node.size)).equals(src), 'read back equals what was written');
      const st = await blockStatusAbove(node, 0, node.size);
      assert.equal(st.compressed, true);
      const hole = await node.blockStatus(1 << 20, 65536);
      assert.equal(hole.allocated, false);
    } finally {
      await node.close();
    }
  } finally {
    t.cleanup();
  }
});

test('Platter writes into qemu-img-made images (sparse, split sparse, flat) read back with qemu-io read -P, qemu-img check clean', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    for (const [name, opts] of cases) {
      const img = t.path(`${name}.vmdk`);
      qemuImg('create', '-q', '-f', 'vmdk', ...opts, img, '4M');
      qemuIo('-f', 'vmdk', '-c', 'write -P 0x61 0 64k', img);
      const node = await openImage(img, { format: 'vmdk' });
      try {
        await node.write(512, Buffer.alloc(1024, 0x62)); // into an allocated grain
        await node.write(2 * 65536 + 4096, Buffer.alloc(8192, 0x63)); // allocates a grain
        await node.writeZeroes(3 * 65536, 65536);
      } finally {
        await node.close();
      }
      const out = qemuIo('-f', 'vmdk', '-c', 'read -P 0x61 0 512', '-c', 'read -P 0x62 512 1024', '-c', 'read -P 0x61 1536 64000', '-c', 'read -P 0 131072 4096', '-c', 'read -P 0x63 135168 8192', '-c', 'read -P 0 143360 53248', img);
      assert.doesNotMatch(out, /Pattern verification failed/, `${name}: ${out}`);
      const r = run('qemu-img', ['check', '-f', 'vmdk', img]);
      assert.equal(r.status, 0, `${name}: ${r.stdout}${r.stderr}`);
    }
  } finally {
    t.cleanup();
  }
});

test('a zero-size image made by qemu-img create is refused exactly as qemu-img info refuses it', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('zero.vmdk');
    qemuImg('create', '-q', '-f', 'vmdk', img, '0');
    const q = run('qemu-img', ['info', img]);
    assert.notEqual(q.status, 0);
    const theirs = q.stderr.trim().replace(/^qemu-img: /, '');
    await assert.rejects(openImage(img, { readOnly: true }), (e: unknown) => {
      assert.equal((e as Error).message, theirs);
      return true;
    });
  } finally {
    t.cleanup();
  }
});

test('extent names in UTF-8 (qemu-img create of "dïsk.vmdk", monolithicFlat) open, and the CID rewrite keeps the descriptor bytes qemu-img reads', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('dïsk.vmdk');
    qemuImg('create', '-q', '-f', 'vmdk', '-o', 'subformat=monolithicFlat', img, '1M');
    qemuIo('-f', 'vmdk', '-c', 'write -P 0x5c 4096 4096', img);
    const node = await openImage(img, { format: 'vmdk' });
    try {
      assert.equal(((await node.info()).formatSpecific!.data as any).extents[0].filename.endsWith('dïsk-flat.vmdk'), true);
      assert.ok((await node.read(4096, 4096)).equals(Buffer.alloc(4096, 0x5c)));
      await node.write(0, Buffer.alloc(512, 0x5d));
    } finally {
      await node.close();
    }
    const out = qemuIo('-f', 'vmdk', '-c', 'read -P 0x5d 0 512', '-c', 'read -P 0x5c 4096 4096', img);
    assert.doesNotMatch(out, /Pattern verification failed/);
  } finally {
    t.cleanup();
  }
});

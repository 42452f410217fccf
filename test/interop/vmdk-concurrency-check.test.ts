// Concurrent requests on one vmdk node (as `convert -m 8` issues them): overlapping first writes
// to the same unallocated grain allocate it once and keep every byte, and the result passes
// `qemu-img check` and `qemu-img compare`. Also: Platter's check finds what `qemu-img check`
// finds in a damaged image, with the same words.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { qemuImg, run, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';

const GRAIN = 65536;

test('concurrent first writes into the same and neighbouring grains allocate each grain once (qemu-img check, compare)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('c.vmdk');
    const size = 64 * GRAIN;
    await createImage({ format: 'vmdk', filename: img, size });
    const emptySize = statSync(img).size;
    const expected = Buffer.alloc(size);
    const node = await openImage(img, { format: 'vmdk' });
    try {
      const writes: Promise<void>[] = [];
      // 16 sector writes into each of grains 0..7, all in flight at once, in scrambled order.
      for (let k = 0; k < 128; k++) {
        const grain = (k * 5) % 8;
        const sector = (k * 7) % 16;
        const off = grain * GRAIN + sector * 4096;
        const buf = Buffer.alloc(4096, 1 + k);
        buf.copy(expected, off);
        writes.push(node.write(off, buf));
      }
      // Whole-grain writes to grains 20..27 at the same time, plus reads of them.
      for (let g = 20; g < 28; g++) {
        const buf = Buffer.alloc(GRAIN, g);
        buf.copy(expected, g * GRAIN);
        writes.push(node.write(g * GRAIN, buf));
      }
      await Promise.all(writes);
      assert.ok((await node.read(0, size)).equals(expected), 'read back equals what was written');
    } finally {
      await node.close();
    }
    assert.equal(statSync(img).size, emptySize + 16 * GRAIN, 'exactly 16 grains allocated');
    const r = run('qemu-img', ['check', '-f', 'vmdk', img]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    writeFileSync(t.path('e.raw'), expected);
    const c = run('qemu-img', ['compare', '-f', 'vmdk', '-F', 'raw', img, t.path('e.raw')]);
    assert.equal(c.status, 0, c.stdout + c.stderr);
  } finally {
    t.cleanup();
  }
});

test('check reports a grain past the end of the file as qemu-img check does ("points after EOF")', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('d.vmdk');
    qemuImg('create', '-q', '-f', 'vmdk', img, '4M');
    run('qemu-io', ['-f', 'vmdk', '-c', 'write 0 64k', img]);
    const clean = await openImage(img, { format: 'vmdk', readOnly: true });
    assert.equal((await clean.impl.check!(undefined)).corruptions, 0);
    await clean.close();
    const b = readFileSync(img);
    const gd = Number(b.readBigUInt64LE(56)) * 512;
    const gt = b.readUInt32LE(gd) * 512;
    b.writeUInt32LE(0x100000, gt + 4 * 3);
    writeFileSync(img, b);
    const q = run('qemu-img', ['check', '-f', 'vmdk', img]);
    assert.notEqual(q.status, 0);
    const node = await openImage(img, { format: 'vmdk', readOnly: true });
    try {
      const res = await node.impl.check!(undefined);
      assert.equal(res.corruptions, 1);
      assert.equal(res.messages.length, 1);
      assert.ok(q.stderr.includes(res.messages[0]!), `qemu-img said: ${q.stderr}; Platter: ${res.messages[0]}`);
    } finally {
      await node.close();
    }
  } finally {
    t.cleanup();
  }
});

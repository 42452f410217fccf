// The sequential stream-optimized writer (grain markers, GT/GD markers, footer, end-of-stream):
// qemu-img reads what it writes (`qemu-img compare` with the source, `qemu-img check` clean,
// `qemu-img info` create-type streamOptimized), and so does Platter's own reader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, statSync } from 'node:fs';
import { openImage } from '../../core/block/open.ts';
import { writeStreamOptimized } from '../../core/formats/vmdk/stream-writer.ts';
import { sharedWorkerPool } from '../../core/workers/pool.ts';
import { qemuImgJson, run, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';

test('writes a stream-optimized vmdk front to back that qemu-img compare, check and info accept', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const size = 33 * 1024 * 1024 + 4096; // more than one grain table (32 MiB each), partial last grain
    const src = Buffer.alloc(size);
    for (const [off, len, byte] of [[0, 70000, 0x11], [5 << 20, 4096, 0x22], [32 << 20, 65536, 0x33], [size - 4096, 4096, 0x44]] as const) {
      for (let i = 0; i < len; i++) src[off + i] = (byte + i * 31) & 0xff;
    }
    writeFileSync(t.path('src.raw'), src);
    const img = t.path('out.vmdk');
    writeFileSync(img, '');
    const holder = await openImage(img, { format: 'raw' });
    try {
      await writeStreamOptimized(holder.file!, {
        size,
        workers: sharedWorkerPool(),
        extentName: 'out.vmdk',
        cid: 0x1234abcd,
        read: async (o, l) => src.subarray(o, o + l),
      });
    } finally {
      await holder.close();
    }
    assert.equal(readFileSync(img).readBigUInt64LE(56), 0xffffffffffffffffn, 'header says GD_AT_END');
    assert.equal(statSync(img).size % 512, 0);
    const info = qemuImgJson('info', '-f', 'vmdk', img);
    assert.equal(info['virtual-size'], size);
    assert.equal(info['format-specific'].data['create-type'], 'streamOptimized');
    assert.equal(info['format-specific'].data.cid, 0x1234abcd);
    const c = run('qemu-img', ['compare', '-f', 'vmdk', '-F', 'raw', img, t.path('src.raw')]);
    assert.equal(c.status, 0, c.stdout + c.stderr);
    const k = run('qemu-img', ['check', '-f', 'vmdk', img]);
    assert.equal(k.status, 0, k.stdout + k.stderr);
    const node = await openImage(img, { readOnly: true });
    try {
      assert.ok((await node.read(0, size)).equals(src), 'read back equals what was written');
      const hole = await node.blockStatus(1 << 20, 65536);
      assert.equal(hole.allocated, false);
    } finally {
      await node.close();
    }
    const rw = await openImage(img, { format: 'vmdk' });
    try {
      await assert.rejects(rw.write(1 << 20, Buffer.alloc(65536, 1)), /grain directory is in the footer/);
    } finally {
      await rw.close();
    }
    assert.deepEqual(qemuImgJson('info', '-f', 'vmdk', img)['format-specific'].data.cid, 0x1234abcd, 'a refused write leaves the CID alone');
  } finally {
    t.cleanup();
  }
});

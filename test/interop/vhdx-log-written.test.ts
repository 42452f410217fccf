// Platter's own BAT updates go through the VHDX log in a form QEMU replays: after a Platter
// write, the entry left in the log is made live again (header log GUID restored, BAT sector
// wiped, as if the process died between logging and applying) and `qemu-img check -r all`
// replays it to the written content; Platter's replay of the same image agrees.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { crc32cWithZeroField } from '../../core/util/crc32c.ts';
import { qemuImg, run, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';

const HEADERS = [64 << 10, 128 << 10];
const LOG = 1 << 20; // log offset of a new image
const BAT = 2 << 20; // BAT offset with a 1 MiB log

test('a BAT update Platter logged is replayed by qemu-img check -r all (qemu-img compare)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('p.vhdx');
    const size = 4 << 20;
    await createImage({ format: 'vhdx', filename: img, size, options: 'block_size=1M' });
    const node = await openImage(img, { readOnly: false, format: 'vhdx' });
    await node.write(1 << 20, Buffer.alloc(8192, 0x6b));
    await node.close();
    const expected = Buffer.alloc(size);
    expected.fill(0x6b, 1 << 20, (1 << 20) + 8192);
    writeFileSync(t.path('e.raw'), expected);

    const b = readFileSync(img);
    assert.equal(b.toString('latin1', LOG, LOG + 4), 'loge', 'the update went through the log');
    const logGuid = b.subarray(LOG + 32, LOG + 48);
    for (const h of HEADERS) {
      assert.ok(b.subarray(h + 48, h + 64).every((x) => x === 0), 'log is clean after the write');
      logGuid.copy(b, h + 48);
      b.writeUInt32LE(crc32cWithZeroField(b.subarray(h, h + 4096), 4), h + 4);
    }
    b.fill(0, BAT, BAT + 4096);
    writeFileSync(img, b);
    copyFileSync(img, t.path('q.vhdx'));

    assert.notEqual(run('qemu-img', ['info', '-f', 'vhdx', t.path('q.vhdx')]).status, 0, 'qemu-img sees a log to replay');
    run('qemu-img', ['check', '-r', 'all', '-f', 'vhdx', t.path('q.vhdx')]);
    assert.match(qemuImg('compare', '-f', 'vhdx', '-F', 'raw', t.path('q.vhdx'), t.path('e.raw')), /Images are identical/);

    const ours = await openImage(img, { readOnly: false, format: 'vhdx' });
    try {
      assert.ok((await ours.read(0, size)).equals(expected));
    } finally {
      await ours.close();
    }
    qemuImg('check', '-f', 'vhdx', img);
  } finally {
    t.cleanup();
  }
});

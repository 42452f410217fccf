// Images Platter creates and writes in the vhdx format pass `qemu-img check`, have the virtual
// and cluster size qemu-img's own `create` gives (`qemu-img info`), hold the written data
// (`qemu-img compare` against raw), and leave no dirty log (qemu-img opens them read-only).
// Images written by `qemu-io` read identically through Platter (`qemu-img convert -O raw`).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { BlockError } from '../../core/errors.ts';
import { assertCreateMatchesQemu, assertIdenticalToRaw, qemuIoWriteArgs, SPREAD_WRITES as WRITES } from '../helpers/create-write.ts';
import { qemuImg, qemuIo, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';

test('vhdx images Platter creates match qemu-img create and pass qemu-img check (qemu-img info, qemu-img check)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const cases = [['100M', ''], ['5M', 'subformat=fixed'], ['10M', 'block_size=1M,log_size=2M'], ['3G', ''], ['6M', 'subformat=fixed,block_state_zero=off'], ['4M', 'block_state_zero=off']];
    for (const [i, [size, opts]] of cases.entries()) {
      const { p } = await assertCreateMatchesQemu(t, 'vhdx', 'vhdx', i, size!, opts!);
      qemuImg('check', '-f', 'vhdx', p);
    }
  } finally {
    t.cleanup();
  }
});

test('vhdx create refuses what qemu-img refuses (log_size, block_size, 64 TB)', async () => {
  const t = tempDir();
  try {
    for (const [size, opts, msg] of [
      [1 << 20, 'log_size=1572864', 'Log size must be a multiple of 1 MB'],
      [1 << 20, 'block_size=3M', 'Block size must be a power of two'],
      [1 << 20, 'block_size=512M', 'Block size must not exceed'],
      [65 * 2 ** 40, '', 'Image size too large; max of 64TB'],
    ] as const) {
      await assert.rejects(createImage({ format: 'vhdx', filename: t.path('x.vhdx'), size, options: opts }), (e: unknown) => e instanceof BlockError && e.message.startsWith(msg));
    }
  } finally {
    t.cleanup();
  }
});

test('vhdx images Platter writes concurrently hold the data and pass qemu-img check (qemu-img compare)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    for (const opts of ['block_size=1M', 'subformat=fixed', 'subformat=fixed,block_state_zero=off', 'block_state_zero=off,block_size=2M']) {
      const img = t.path('p.vhdx');
      const size = 5 << 20;
      await createImage({ format: 'vhdx', filename: img, size, options: opts });
      const node = await openImage(img, { readOnly: false, format: 'vhdx' });
      await Promise.all(WRITES.map(([o, l, b]) => node.write(o, Buffer.alloc(l, b))));
      await node.writeZeroes(0, 4096);
      await node.close();
      const expected = Buffer.alloc(size);
      for (const [o, l, b] of WRITES) expected.fill(b, o, o + l);
      expected.fill(0, 0, 4096);
      qemuImg('check', '-f', 'vhdx', img);
      assertIdenticalToRaw('vhdx', img, t.path('e.raw'), expected, opts);
    }
  } finally {
    t.cleanup();
  }
});

test('vhdx images qemu-io writes read the same through Platter, and Platter writes on top (qemu-io write, qemu-img convert -O raw)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    for (const opts of ['block_size=1M,log_size=1M', 'subformat=fixed']) {
      const img = t.path('q.vhdx');
      qemuImg('create', '-q', '-f', 'vhdx', '-o', opts, img, '4M');
      qemuIo('-f', 'vhdx', ...qemuIoWriteArgs(WRITES), '-c', 'write -q -z 3211264 64k', img);
      qemuImg('convert', '-f', 'vhdx', '-O', 'raw', img, t.path('q.raw'));
      const expected = readFileSync(t.path('q.raw'));
      const node = await openImage(img, { readOnly: false, format: 'vhdx' });
      try {
        assert.ok((await node.read(0, node.size)).equals(expected), opts);
        await node.write(2 << 20, Buffer.alloc(8192, 0x77));
      } finally {
        await node.close();
      }
      expected.fill(0x77, 2 << 20, (2 << 20) + 8192);
      qemuImg('check', '-f', 'vhdx', img);
      assertIdenticalToRaw('vhdx', img, t.path('e.raw'), expected, opts);
    }
  } finally {
    t.cleanup();
  }
});

test('vhdx blocks past the first chunk skip the sector bitmap entries as qemu does (qemu-io read, qemu-img check)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    // 256 MiB blocks: a chunk is 16 payload blocks, then one sector bitmap entry.
    const block = 256 << 20;
    const size = 20 * block;
    for (const who of ['platter', 'qemu']) {
      const img = t.path(`${who}.vhdx`);
      if (who === 'platter') await createImage({ format: 'vhdx', filename: img, size, options: 'block_size=256M' });
      else qemuImg('create', '-q', '-f', 'vhdx', '-o', 'block_size=256M', img, String(size));
      const node = await openImage(img, { readOnly: false, format: 'vhdx' });
      try {
        await node.write(17 * block + 4096, Buffer.alloc(4096, 0x3d));
        await node.write(15 * block, Buffer.alloc(512, 0x3e));
        assert.ok((await node.read(16 * block, 4096)).equals(Buffer.alloc(4096)));
      } finally {
        await node.close();
      }
      qemuImg('check', '-f', 'vhdx', img);
      qemuIo('-f', 'vhdx', '-c', `read -q -P 0x3d ${17 * block + 4096} 4096`, '-c', `read -q -P 0x3e ${15 * block} 512`, '-c', `read -q -P 0 ${16 * block} 1M`, img);
      qemuIo('-f', 'vhdx', '-c', `write -q -P 0x4f ${18 * block} 4096`, img);
      const again = await openImage(img, { readOnly: true, format: 'vhdx' });
      try {
        assert.ok((await again.read(18 * block, 4096)).equals(Buffer.alloc(4096, 0x4f)), `${who}: qemu-io's write in chunk 2`);
      } finally {
        await again.close();
      }
    }
  } finally {
    t.cleanup();
  }
});

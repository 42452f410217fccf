// Images Platter creates and writes in the vpc format agree with qemu-img: the virtual size
// (`qemu-img info`) is the one qemu-img's own `create` gives for the same size and options (CHS
// rounding, force_size), written content matches (`qemu-img compare` against a raw file), and
// images written by `qemu-io` read identically through Platter (`qemu-img convert -O raw`).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { assertCreateMatchesQemu, assertIdenticalToRaw, qemuIoWriteArgs, SPREAD_WRITES as WRITES } from '../helpers/create-write.ts';
import { qemuImg, qemuImgJson, qemuIo, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';

async function platterWrite(path: string, size: number): Promise<Buffer> {
  const expected = Buffer.alloc(size);
  const node = await openImage(path, { readOnly: false, format: 'vpc' });
  try {
    await Promise.all(WRITES.map(([o, l, b]) => node.write(o, Buffer.alloc(l, b))));
    for (const [o, l, b] of WRITES) expected.fill(b, o, o + l);
  } finally {
    await node.close();
  }
  return expected;
}

test('vpc virtual sizes match qemu-img create for odd sizes, subformats and force_size (qemu-img info)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const cases = [
      ['4100k', ''], ['4100k', 'subformat=fixed'], ['4100k', 'force_size=on'], ['4097', ''], ['4097', 'force_size=on,subformat=fixed'],
      ['1G', ''], ['100000001', 'subformat=fixed'],
    ];
    for (const [i, [size, opts]] of cases.entries()) {
      const { p, qi } = await assertCreateMatchesQemu(t, 'vpc', 'vhd', i, size!, opts!);
      const node = await openImage(p, { readOnly: true, format: 'vpc' });
      assert.equal(node.size, qi['virtual-size']);
      await node.close();
    }
  } finally {
    t.cleanup();
  }
});

test('vpc images Platter writes (dynamic and fixed) hold the written data (qemu-img compare)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    for (const sub of ['dynamic', 'fixed']) {
      const img = t.path(`${sub}.vhd`);
      await createImage({ format: 'vpc', filename: img, size: 4100 << 10, options: `subformat=${sub}` });
      const size = qemuImgJson('info', '-f', 'vpc', img)['virtual-size'];
      const expected = await platterWrite(img, size);
      assertIdenticalToRaw('vpc', img, t.path(`${sub}.raw`), expected, sub);
    }
  } finally {
    t.cleanup();
  }
});

test('vpc images qemu-io writes read the same through Platter (qemu-io write, qemu-img convert -O raw)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    for (const opts of ['subformat=dynamic', 'subformat=fixed', 'force_size=on']) {
      const img = t.path('q.vhd');
      qemuImg('create', '-q', '-f', 'vpc', '-o', opts, img, '5M');
      qemuIo('-f', 'vpc', ...qemuIoWriteArgs(WRITES), img);
      qemuImg('convert', '-f', 'vpc', '-O', 'raw', img, t.path('q.raw'));
      const node = await openImage(img, { readOnly: true, format: 'vpc' });
      try {
        assert.ok((await node.read(0, node.size)).equals(readFileSync(t.path('q.raw'))), opts);
      } finally {
        await node.close();
      }
      // And Platter writes on top of qemu's image, then qemu-img reads them back.
      const expected = readFileSync(t.path('q.raw'));
      const node2 = await openImage(img, { readOnly: false, format: 'vpc' });
      await node2.write(2 << 20, Buffer.alloc(8192, 0x77));
      await node2.close();
      expected.fill(0x77, 2 << 20, (2 << 20) + 8192);
      assertIdenticalToRaw('vpc', img, t.path('e.raw'), expected, opts);
    }
  } finally {
    t.cleanup();
  }
});

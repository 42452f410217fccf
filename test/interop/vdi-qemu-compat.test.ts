// vdi through Platter against the real QEMU tools: fixtures read as `qemu-img convert -O raw` sees
// them, images qemu-io wrote read identically, images Platter creates and writes pass
// `qemu-img check` and `qemu-img compare`, info and map agree with `qemu-img info` / `qemu-img map`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { fixture, fixtureById, md5, qemuImg, qemuImgJson, qemuIo, run, SKIP_NO_FIXTURES, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';

const MiB = 1 << 20;

/** Deterministic non-zero bytes for a write (differs per seed). */
function pattern(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = ((i * 31 + seed * 17) % 251) + 1;
  return b;
}

async function readAll(path: string, format = 'vdi'): Promise<Buffer> {
  const node = await openImage(path, { readOnly: true, format });
  try {
    return await node.read(0, node.size);
  } finally {
    await node.close();
  }
}

function qemuRaw(path: string, dir: string, format = 'vdi'): Buffer {
  const out = `${dir}/qemu-raw.bin`;
  qemuImg('convert', '-f', format, '-O', 'raw', path, out);
  return readFileSync(out);
}

for (const id of ['generated/vdi-dynamic.vdi', 'generated/vdi-static.vdi']) {
  test(`${id} reads with the md5 of qemu-img convert -O raw and the facts of qemu-img info`, { skip: SKIP_NO_FIXTURES }, async () => {
    const t = tempDir();
    try {
      const f = fixtureById(id);
      const path = fixture(f.open, t.dir);
      const node = await openImage(path, { readOnly: true });
      try {
        assert.equal(node.format, f.qemu_probe);
        assert.equal(node.size, f.qemu_info['virtual-size']);
        assert.equal((await node.info()).clusterSize, f.qemu_info['cluster-size']);
        assert.equal(md5(await node.read(0, node.size)), f.raw_md5);
        const check = await node.impl.check!(undefined);
        assert.equal(check.corruptions, 0);
      } finally {
        await node.close();
      }
    } finally {
      t.cleanup();
    }
  });
}

test('a vdi written by qemu-io (partial blocks, write -z, static) reads as qemu-img convert -O raw and maps as qemu-img map', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    for (const opts of ['static=off', 'static=on']) {
      const img = t.path(`q-${opts}.vdi`);
      qemuImg('create', '-q', '-f', 'vdi', '-o', opts, img, '7M');
      qemuIo('-f', 'vdi', '-c', 'write -P 0x5a 1536 3000', '-c', 'write -P 0x21 3M 1M', '-c', 'write -z 3670016 4096', '-c', 'write -P 0x7e 6291456 512', img);
      assert.deepEqual(await readAll(img), qemuRaw(img, t.dir));
      const map = qemuImgJson<any[]>('map', '-f', 'vdi', img);
      const node = await openImage(img, { readOnly: true, format: 'vdi' });
      try {
        for (const e of map) {
          const st = await node.blockStatus(e.start, e.length);
          assert.equal(st.length, e.length, `${opts}: extent at ${e.start}`);
          assert.equal(st.data, e.data);
          assert.equal(st.zero, e.zero);
          assert.equal(st.allocated, e.present);
          if (e.offset !== undefined) assert.equal(st.hostOffset, e.offset);
        }
      } finally {
        await node.close();
      }
    }
  } finally {
    t.cleanup();
  }
});

test('vdi images Platter creates and writes pass qemu-img check and qemu-img compare (dynamic and static)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    for (const isStatic of [false, true]) {
      const img = t.path(`p-${isStatic}.vdi`);
      const size = 5 * MiB + 1000; // rounded up to whole sectors, as qemu-img create does
      await createImage({ format: 'vdi', filename: img, size, options: { static: isStatic } });
      const expected = Buffer.alloc(5 * MiB + 1024);
      const node = await openImage(img, { format: 'vdi' });
      try {
        assert.equal(node.size, expected.length);
        // Concurrent writes into the same unallocated blocks, unaligned ones, and a zero range.
        const writes: [number, Buffer][] = [
          [100, pattern(5000, 1)],
          [MiB - 300, pattern(700, 2)],
          [2 * MiB + 4096, pattern(64 * 1024, 3)],
          [2 * MiB + 80000, pattern(4096, 4)],
          [5 * MiB, pattern(1024, 5)],
        ];
        await Promise.all(writes.map(([o, d]) => node.write(o, d)));
        for (const [o, d] of writes) d.copy(expected, o);
        await node.writeZeroes(2 * MiB + 10000, 20000);
        expected.fill(0, 2 * MiB + 10000, 2 * MiB + 30000);
        await node.writeZeroes(3 * MiB, MiB); // unallocated (dynamic): stays unallocated
        assert.deepEqual(await node.read(0, node.size), expected);
      } finally {
        await node.close();
      }
      const raw = t.path('expected.raw');
      writeFileSync(raw, expected);
      const check = run('qemu-img', ['check', '-f', 'vdi', img]);
      assert.equal(check.status, 0, check.stdout + check.stderr);
      assert.match(check.stdout, /No errors were found on the image/);
      const cmp = run('qemu-img', ['compare', '-f', 'vdi', '-F', 'raw', img, raw]);
      assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
      const info = qemuImgJson('info', '-f', 'vdi', img);
      assert.equal(info['virtual-size'], expected.length);
      assert.equal(info['cluster-size'], MiB);
      if (isStatic) assert.equal(statSync(img).size, 1024 + 6 * MiB);
      else assert.equal(statSync(img).size, 1024 + 4 * MiB, 'blocks 0, 1, 2 and 5 allocated; the zeroed unallocated block 3 stays unallocated');
    }
  } finally {
    t.cleanup();
  }
});

test('vdi check finds what qemu-img check finds: allocated-count mismatch and a duplicate block', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('c.vdi');
    qemuImg('create', '-q', '-f', 'vdi', img, '3M');
    qemuIo('-f', 'vdi', '-c', 'write -P 1 0 512', '-c', 'write -P 2 1M 512', img);
    // Point block 2 at data block 0 too, and leave the header's count at 2.
    const fd = openSync(img, 'r+');
    const e = Buffer.alloc(4);
    e.writeUInt32LE(0);
    writeSync(fd, e, 0, 4, 0x200 + 2 * 4);
    closeSync(fd);
    const q = run('qemu-img', ['check', '-f', 'vdi', img]);
    assert.notEqual(q.status, 0);
    const node = await openImage(img, { readOnly: true, format: 'vdi' });
    try {
      const r = await node.impl.check!(undefined);
      assert.equal(r.corruptions, 2, r.messages.join('\n'));
      assert.match(q.stderr + q.stdout, /2 errors were found/);
      await assert.rejects(node.impl.check!('all'), /does not support checks/);
    } finally {
      await node.close();
    }
  } finally {
    t.cleanup();
  }
});

test('vdi under 8 concurrent random writes (as convert -m 8 issues them) matches a raw model and passes qemu-img check and compare', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('stress.vdi');
    const size = 8 * MiB;
    await createImage({ format: 'vdi', filename: img, size });
    const model = Buffer.alloc(size);
    let seed = 4242;
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    const node = await openImage(img, { format: 'vdi' });
    try {
      for (let round = 0; round < 10; round++) {
        // Eight requests in flight, each in its own slot (a slot spans blocks: allocations race).
        const slot = size / 8;
        await Promise.all(
          Array.from({ length: 8 }, async (_, i) => {
            const len = 1 + rand(64 * 1024);
            const off = i * slot + (slot / 2 - len / 2) + (rand(2) ? -1 : 1) * rand(slot / 2 - len);
            const at = Math.max(i * slot, Math.min(Math.floor(off), (i + 1) * slot - len));
            const d = pattern(len, round * 8 + i);
            await node.write(at, d);
            d.copy(model, at);
          }),
        );
      }
      assert.ok((await node.read(0, size)).equals(model));
    } finally {
      await node.close();
    }
    writeFileSync(t.path('model.raw'), model);
    const check = run('qemu-img', ['check', '-f', 'vdi', img]);
    assert.equal(check.status, 0, check.stdout + check.stderr);
    const cmp = run('qemu-img', ['compare', '-f', 'vdi', '-F', 'raw', img, t.path('model.raw')]);
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
  } finally {
    t.cleanup();
  }
});

test('vdi create writes the same bytes as qemu-img create -f vdi, apart from the random UUIDs', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    /** uuid_image and uuid_last_snap (random in both tools). */
    const UUIDS = [0x188, 0x1a8] as const;
    for (const [name, size, isStatic] of [['dyn', 5 * MiB + 1000, false], ['static', 3 * MiB, true], ['empty', 0, false]] as const) {
      const q = t.path(`q-${name}.vdi`);
      qemuImg('create', '-q', '-f', 'vdi', '-o', `static=${isStatic ? 'on' : 'off'}`, q, String(size));
      const p = t.path(`p-${name}.vdi`);
      await createImage({ format: 'vdi', filename: p, size, options: { static: isStatic } });
      const a = readFileSync(p);
      const b = readFileSync(q);
      assert.equal(a.length, b.length, name);
      a.fill(0, UUIDS[0], UUIDS[1]);
      b.fill(0, UUIDS[0], UUIDS[1]);
      assert.deepEqual(a, b, name);
    }
  } finally {
    t.cleanup();
  }
});

test('a vdi laid out as VirtualBox does (map and data at other offsets, Oracle text) reads and writes as qemu-io sees it', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    // Rebuild a qemu-img-made header with the block map at 1 MiB and the data at 2 MiB.
    const img = t.path('vbox.vdi');
    qemuImg('create', '-q', '-f', 'vdi', img, '4M');
    const header = readFileSync(img).subarray(0, 512);
    header.fill(0, 0, 0x40);
    header.write('<<< Oracle VM VirtualBox Disk Image >>>\n', 0, 'latin1');
    header.writeUInt32LE(MiB, 0x154);
    header.writeUInt32LE(2 * MiB, 0x158);
    const file = Buffer.alloc(2 * MiB);
    header.copy(file);
    file.fill(0xff, MiB, MiB + 16);
    writeFileSync(img, file);
    qemuIo('-f', 'vdi', '-c', 'write -P 0x44 1536 2048', '-c', 'write -P 0x45 3M 4096', img);
    assert.deepEqual(await readAll(img), qemuRaw(img, t.dir));
    const node = await openImage(img, { format: 'vdi' });
    try {
      await node.write(MiB + 512, Buffer.alloc(1024, 0x46));
    } finally {
      await node.close();
    }
    assert.equal(statSync(img).size, 2 * MiB + 3 * MiB, 'three data blocks after the 2 MiB data offset');
    const check = run('qemu-img', ['check', '-f', 'vdi', img]);
    assert.equal(check.status, 0, check.stdout + check.stderr);
    assert.deepEqual(await readAll(img), qemuRaw(img, t.dir));
    const back = qemuRaw(img, t.dir);
    assert.deepEqual(back.subarray(MiB + 512, MiB + 1536), Buffer.alloc(1024, 0x46));
  } finally {
    t.cleanup();
  }
});

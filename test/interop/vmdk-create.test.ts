// Images Platter creates (every subformat, zeroed_grain, backing files) and then writes: laid out
// byte for byte like `qemu-img create -f vmdk`, accepted by `qemu-img check`, equal to a raw file
// of the same content under `qemu-img compare`, and described by `qemu-img info --output=json`
// exactly as Platter's info describes them. Also the sequential stream-optimized writer (grain
// markers, GT/GD markers, footer, end-of-stream), whose output qemu-img reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, statSync, existsSync } from 'node:fs';
import { basename } from 'node:path';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import type { BlockNode } from '../../core/block/node.ts';
import { BlockError } from '../../core/errors.ts';
import { qemuImg, qemuImgJson, run, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';
import { writeStreamOptimized } from '../../core/formats/vmdk/stream-writer.ts';
import { sharedWorkerPool } from '../../core/workers/pool.ts';

const MiB = 1 << 20;

/** The descriptor text with the CID value blanked (it is random). */
function withoutCid(text: string): string {
  return text.replace(/^CID=[0-9a-f]+$/m, 'CID=*');
}

/** The std4m-like pattern: aligned, unaligned, grain-crossing writes and a zeroed range. */
async function writePattern(node: BlockNode, expected: Buffer): Promise<void> {
  const put = async (off: number, len: number, byte: number) => {
    const b = Buffer.alloc(len, byte);
    await node.write(off, b);
    b.copy(expected, off);
  };
  await put(0, 64 * 1024, 0x11);
  await put(1052160, 3072, 0x22);
  await put(2096640, 4096, 0x33);
  await put(3 * MiB, 128 * 1024, 0x55);
  await node.writeZeroes(3 * MiB + 64 * 1024, 64 * 1024);
  expected.fill(0, 3 * MiB + 64 * 1024, 3 * MiB + 128 * 1024);
  await put(4 * MiB - 64 * 1024, 64 * 1024, 0x44);
}

function qemuCompare(image: string, expected: Buffer, dir: string): void {
  const raw = `${dir}/expected.raw`;
  writeFileSync(raw, expected);
  const r = run('qemu-img', ['compare', '-f', 'vmdk', '-F', 'raw', image, raw]);
  assert.equal(r.status, 0, `qemu-img compare: ${r.stdout}${r.stderr}`);
}

function qemuCheckClean(image: string): void {
  const r = run('qemu-img', ['check', '--output=json', '-f', 'vmdk', image]);
  assert.equal(r.status, 0, `qemu-img check: ${r.stdout}${r.stderr}`);
  assert.equal(JSON.parse(r.stdout)['check-errors'], 0);
}

async function infoMatchesQemu(path: string): Promise<void> {
  const node = await openImage(path, { readOnly: true });
  try {
    const mine = (await node.info()).formatSpecific as any;
    const theirs = qemuImgJson('info', '-f', 'vmdk', path)['format-specific'];
    for (const e of theirs.data.extents) e.filename = basename(e.filename);
    for (const e of mine.data.extents) e.filename = basename(e.filename);
    assert.deepEqual(mine, theirs);
  } finally {
    await node.close();
  }
}

for (const subformat of ['monolithicSparse', 'monolithicFlat', 'twoGbMaxExtentSparse', 'twoGbMaxExtentFlat'] as const) {
  test(`${subformat}: laid out like qemu-img create, then written data passes qemu-img check and qemu-img compare`, { skip: SKIP_NO_QEMU }, async () => {
    const t = tempDir();
    try {
      const mine = t.path('mine.vmdk');
      const theirs = t.path('theirs/mine.vmdk');
      run('mkdir', ['-p', t.path('theirs')]);
      await createImage({ format: 'vmdk', filename: mine, size: 4 * MiB, options: `subformat=${subformat},adapter_type=lsilogic` });
      qemuImg('create', '-q', '-f', 'vmdk', '-o', `subformat=${subformat},adapter_type=lsilogic`, theirs, '4M');
      const mineBytes = readFileSync(mine);
      const theirBytes = readFileSync(theirs);
      if (subformat === 'monolithicSparse') {
        // The whole file is the same apart from the random CID.
        assert.equal(mineBytes.length, theirBytes.length);
        assert.deepEqual(mineBytes.subarray(0, 512), theirBytes.subarray(0, 512), 'header sector');
        const text = (b: Buffer) => withoutCid(b.subarray(512, b.indexOf(0, 512)).toString('latin1'));
        assert.equal(text(mineBytes), text(theirBytes), 'embedded descriptor');
        const DESC_END = 512 + 20 * 512;
        assert.ok(mineBytes.subarray(DESC_END).equals(theirBytes.subarray(DESC_END)), 'grain directories and tables');
      } else {
        assert.equal(withoutCid(mineBytes.toString('latin1')), withoutCid(theirBytes.toString('latin1')), 'descriptor text');
        const ext = subformat === 'monolithicFlat' ? 'mine-flat.vmdk' : subformat === 'twoGbMaxExtentFlat' ? 'mine-f001.vmdk' : 'mine-s001.vmdk';
        assert.ok(existsSync(t.path(ext)), `${ext} created`);
        assert.deepEqual(readFileSync(t.path(ext)), readFileSync(t.path(`theirs/${ext}`)), 'extent file');
      }
      qemuCheckClean(mine);

      const expected = Buffer.alloc(4 * MiB);
      const node = await openImage(mine, { format: 'vmdk' });
      const cidBefore = ((await node.info()).formatSpecific!.data as any).cid;
      try {
        await writePattern(node, expected);
        await node.flush();
        assert.notEqual(((await node.info()).formatSpecific!.data as any).cid, cidBefore, 'the CID changes on the first write, as in QEMU');
      } finally {
        await node.close();
      }
      qemuCheckClean(mine);
      qemuCompare(mine, expected, t.dir);
      await infoMatchesQemu(mine);
    } finally {
      t.cleanup();
    }
  });
}

test('twoGbMaxExtentSparse over 2 GiB: three extents, writes across the extent boundary, qemu-img check and compare agree', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('big.vmdk');
    const size = 5 * 1024 * MiB;
    await createImage({ format: 'vmdk', filename: img, size, options: 'subformat=twoGbMaxExtentSparse' });
    assert.deepEqual(['big-s001.vmdk', 'big-s002.vmdk', 'big-s003.vmdk'].map((n) => existsSync(t.path(n))), [true, true, true]);
    const node = await openImage(img, { format: 'vmdk' });
    const writes: [number, Buffer][] = [
      [2 * 1024 * MiB - 1536, Buffer.alloc(4096, 0xa1)],
      [4.5 * 1024 * MiB, Buffer.alloc(70000, 0xb2)],
      [size - 512, Buffer.alloc(512, 0xc3)],
    ];
    try {
      assert.equal(node.size, size);
      for (const [o, b] of writes) await node.write(o, b);
      for (const [o, b] of writes) assert.ok((await node.read(o, b.length)).equals(b), 'read back equals what was written');
    } finally {
      await node.close();
    }
    qemuCheckClean(img);
    const raw = t.path('expected.raw');
    writeFileSync(raw, '');
    run('truncate', ['-s', String(size), raw]);
    for (const [o, b] of writes) run('dd', [`of=${raw}`, 'bs=512', `seek=${o / 512}`, 'conv=notrunc', 'status=none'], { input: b });
    const r = run('qemu-img', ['compare', '-f', 'vmdk', '-F', 'raw', img, raw]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    await infoMatchesQemu(img);
  } finally {
    t.cleanup();
  }
});

test('streamOptimized: compressed grain writes are readable by qemu-img (check, compare, map says compressed)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('s.vmdk');
    const theirs = t.path('theirs.vmdk');
    await createImage({ format: 'vmdk', filename: img, size: 1 * MiB + 4096, options: 'subformat=streamOptimized' });
    qemuImg('create', '-q', '-f', 'vmdk', '-o', 'subformat=streamOptimized', theirs, String(1 * MiB + 4096));
    assert.deepEqual(readFileSync(img).subarray(0, 512), readFileSync(theirs).subarray(0, 512), 'same header as qemu-img');
    const expected = Buffer.alloc(1 * MiB + 4096);
    const node = await openImage(img, { format: 'vmdk' });
    try {
      assert.equal(node.clusterSize, 65536);
      const text = Buffer.from('platter stream grain '.repeat(4000).slice(0, 65536));
      await node.impl.writeCompressed!(0, text);
      text.copy(expected, 0);
      const rnd = Buffer.alloc(65536);
      for (let i = 0; i < rnd.length; i++) rnd[i] = (i * 7919 + (i >> 9)) & 0xff;
      await node.write(5 * 65536, rnd); // whole-grain write on a stream image compresses too
      rnd.copy(expected, 5 * 65536);
      const tail = Buffer.alloc(4096, 0x7e); // the last, partial grain
      await node.impl.writeCompressed!(16 * 65536, tail);
      tail.copy(expected, 16 * 65536);
      await assert.rejects(node.write(0, Buffer.alloc(512, 1)), /Could not write to allocated cluster for streamOptimized/);
      await assert.rejects(node.write(3 * 65536, Buffer.alloc(512, 1)), /whole-grain/);
      assert.ok((await node.read(0, expected.length)).equals(expected), 'read back equals what was written');
      const st = await node.blockStatus(0, 65536);
      assert.equal(st.compressed, true);
    } finally {
      await node.close();
    }
    assert.equal(statSync(img).size % 512, 0, 'the file ends on a sector boundary');
    qemuCheckClean(img);
    qemuCompare(img, expected, t.dir);
    await infoMatchesQemu(img);
  } finally {
    t.cleanup();
  }
});

test('zeroed_grain=on: write-zeroes of whole grains become zeroed-grain GTEs (qemu-img map zero, compare equal)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('z.vmdk');
    await createImage({ format: 'vmdk', filename: img, size: 4 * MiB, options: 'zeroed_grain=on' });
    const theirs = t.path('theirs.vmdk');
    qemuImg('create', '-q', '-f', 'vmdk', '-o', 'zeroed_grain=on', theirs, '4M');
    assert.deepEqual(readFileSync(img).subarray(0, 512), readFileSync(theirs).subarray(0, 512), 'same header as qemu-img (version 2, zeroed-grain flag)');
    const expected = Buffer.alloc(4 * MiB);
    const node = await openImage(img, { format: 'vmdk' });
    try {
      await writePattern(node, expected);
      const st = await node.blockStatus(3 * MiB + 65536, 65536);
      assert.deepEqual([st.zero, st.allocated, st.data], [true, true, false]);
    } finally {
      await node.close();
    }
    qemuCheckClean(img);
    qemuCompare(img, expected, t.dir);
    const map = qemuImgJson<any[]>('map', '-f', 'vmdk', img);
    const z = map.find((m) => m.start === 3 * MiB + 65536);
    assert.ok(z && z.zero === true && z.data === false && z.present === true, JSON.stringify(map));
  } finally {
    t.cleanup();
  }
});

test('backing_file: the child records parentCID/parentFileNameHint like qemu-img, copies on write, qemu-img compare agrees', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const base = t.path('base.vmdk');
    const child = t.path('child.vmdk');
    await createImage({ format: 'vmdk', filename: base, size: 4 * MiB });
    const expected = Buffer.alloc(4 * MiB);
    const b = await openImage(base, { format: 'vmdk' });
    await writePattern(b, expected);
    await b.close();
    await createImage({ format: 'vmdk', filename: child, options: 'backing_file=base.vmdk,backing_fmt=vmdk' });
    const baseCid = qemuImgJson('info', base)['format-specific'].data.cid;
    const info = qemuImgJson('info', child);
    assert.equal(info['format-specific'].data['parent-cid'], baseCid);
    assert.equal(info['backing-filename'], 'base.vmdk');
    assert.match(readFileSync(child, 'latin1'), /createType="monolithicSparse"\nparentFileNameHint="base.vmdk"\n# Extent description\n/);
    const node = await openImage(child, { format: 'vmdk' });
    try {
      const patch = Buffer.alloc(1000, 0xee);
      await node.write(1052160 + 512, patch); // partial grain: the rest of the grain comes from base
      patch.copy(expected, 1052160 + 512);
      assert.ok((await node.read(0, 4 * MiB)).equals(expected), 'read back equals what was written');
    } finally {
      await node.close();
    }
    qemuCheckClean(child);
    qemuCompare(child, expected, t.dir);
  } finally {
    t.cleanup();
  }
});

test('create refuses what qemu-img refuses, with its words (compat6+hwversion, flat+backing, flat+zeroed_grain, non-vmdk backing)', async () => {
  const t = tempDir();
  try {
    const cases: [string, RegExp][] = [
      ['compat6=on,hwversion=7', /^compat6 cannot be enabled with hwversion set$/],
      ['subformat=monolithicFlat,zeroed_grain=on', /^Flat image can't enable zeroed grain$/],
      ['subformat=twoGbMaxExtentFlat,backing_file=x.vmdk,backing_fmt=vmdk', /^Flat image can't have backing file$/],
      ['backing_file=x.qcow2,backing_fmt=qcow2', /^backing_file must be a vmdk image$/],
      // qemu-img opens a named backing file first: missing, it says so ("Could not open backing image.").
      ['backing_file=missing.vmdk,backing_fmt=vmdk', /^Could not open '.*missing\.vmdk': No such file or directory$/],
    ];
    qemuImg('create', '-q', '-f', 'vmdk', t.path('x.vmdk'), '1M');
    qemuImg('create', '-q', '-f', 'qcow2', t.path('x.qcow2'), '1M');
    for (const [opts, re] of cases) {
      await assert.rejects(createImage({ format: 'vmdk', filename: t.path('e.vmdk'), size: MiB, options: opts }), (e: unknown) => {
        assert.ok(e instanceof BlockError, String(e));
        assert.match(e.message, re);
        return true;
      });
    }
    const ok = await createImage({ format: 'vmdk', filename: t.path('h.vmdk'), size: MiB, options: 'compat6=on,toolsversion=1234,adapter_type=buslogic' });
    assert.equal(ok['compat6'], true);
    const text = readFileSync(t.path('h.vmdk')).subarray(512, 1536).toString('latin1');
    assert.match(text, /ddb.virtualHWVersion = "6"\n/);
    assert.match(text, /ddb.toolsVersion = "1234"\n/);
    assert.match(text, /ddb.adapterType = "buslogic"\n/);
  } finally {
    t.cleanup();
  }
});

/** Primary and redundant grain tables of a monolithic sparse file, as byte strings. */
function grainTables(path: string): { primary: string[]; redundant: string[] } {
  const b = readFileSync(path);
  const gtEntries = b.readUInt32LE(44);
  const capacity = Number(b.readBigUInt64LE(12));
  const grain = Number(b.readBigUInt64LE(20));
  const gdEntries = Math.ceil(capacity / (grain * gtEntries));
  const tables = (gdSector: number) =>
    Array.from({ length: gdEntries }, (_, i) => {
      const gt = b.readUInt32LE(gdSector * 512 + i * 4);
      return gt === 0 ? '' : b.subarray(gt * 512, gt * 512 + gtEntries * 4).toString('hex');
    });
  return { primary: tables(Number(b.readBigUInt64LE(56))), redundant: tables(Number(b.readBigUInt64LE(48))) };
}

test('keeps the redundant grain tables equal to the primary ones, and allocates a missing grain table (GT before GD) that qemu-img then reads', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('r.vmdk');
    const size = 96 * MiB; // three grain tables of 32 MiB
    await createImage({ format: 'vmdk', filename: img, size });
    // Forget the third grain table in both directories, as an image whose tables are made on demand.
    const b = readFileSync(img);
    for (const gdAt of [Number(b.readBigUInt64LE(56)), Number(b.readBigUInt64LE(48))]) b.writeUInt32LE(0, gdAt * 512 + 2 * 4);
    writeFileSync(img, b);
    const writes: [number, number][] = [[0, 0x21], [40 * MiB + 512, 0x22], [70 * MiB, 0x23], [96 * MiB - 65536, 0x24]];
    const node = await openImage(img, { format: 'vmdk' });
    try {
      await Promise.all(writes.map(([o, v]) => node.write(o, Buffer.alloc(65536, v))));
    } finally {
      await node.close();
    }
    const { primary, redundant } = grainTables(img);
    assert.ok(primary[2] !== '', 'a grain table was allocated for the third directory entry');
    assert.deepEqual(redundant, primary);
    const r = run('qemu-img', ['check', '-f', 'vmdk', img]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const out = run('qemu-io', ['-f', 'vmdk', ...writes.flatMap(([o, v]) => ['-c', `read -P ${v} ${o} 65536`]), img]);
    assert.equal(out.status, 0, out.stdout + out.stderr);
    assert.doesNotMatch(out.stdout, /Pattern verification failed/);
  } finally {
    t.cleanup();
  }
});

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

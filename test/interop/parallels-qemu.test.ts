// parallels through Platter against the real QEMU 7.2 tools: every fixture reads with the md5 of
// `qemu-img convert -O raw`, and `platter info` / `map` / `check` print what qemu-img prints;
// images qemu-img creates and qemu-io writes read identically; images Platter creates and writes
// are byte-identical to qemu-io's for the same writes, pass `qemu-img check` and match under
// `qemu-img compare`; check and check -r of damaged images (leaked space, a BAT entry past the
// end of the file, the inuse mark) print qemu-img's words and counts and leave the same file.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readFileSync, statSync, truncateSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { FIXTURES, fixture, fixtureById, md5, qemuImg, qemuImgJson, qemuIo, run, SKIP_NO_FIXTURES, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';
import { platterInProcess, qemuImgRaw, type CliResult } from './harness.ts';

const MiB = 1 << 20;
const SKIP = SKIP_NO_QEMU || SKIP_NO_FIXTURES;

/** A CLI result with the program name and the image's name made neutral. */
function neutral(r: CliResult, names: string[]): CliResult {
  const fix = (s: string) => {
    let out = s.replace(/^(qemu-img|platter):/gm, 'PROG:');
    for (const n of names) out = out.split(n).join('IMG');
    return out;
  };
  return { status: r.status, stdout: fix(r.stdout), stderr: fix(r.stderr) };
}

/** The same command through qemu-img on `q` and through platter on `p` (copies of one image):
 *  equal output, status and resulting file. */
async function sameAsQemu(args: (img: string) => string[], q: string, p: string, what: string): Promise<CliResult> {
  const qr = neutral(qemuImgRaw(...args(q)), [q]);
  const pr = neutral(await platterInProcess(args(p)), [p]);
  assert.deepEqual(pr, qr, `${what}: platter ${args('IMG').join(' ')} prints what qemu-img prints`);
  if (existsSync(q)) assert.ok(readFileSync(p).equals(readFileSync(q)), `${what}: the file after platter equals the file after qemu-img`);
  return qr;
}

function qemuRawMd5(path: string, dir: string, format = 'parallels'): string {
  const out = join(dir, 'qemu-raw.bin');
  qemuImg('convert', '-f', format, '-O', 'raw', path, out);
  return md5(readFileSync(out));
}

/** Read a whole image through Platter in 4 MiB pieces and hash it. */
async function platterMd5(path: string, opts: { format?: string } = {}): Promise<string> {
  const node = await openImage(path, { readOnly: true, ...opts });
  try {
    const { createHash } = await import('node:crypto');
    const h = createHash('md5');
    for (let o = 0; o < node.size; o += 4 * MiB) h.update(await node.read(o, Math.min(4 * MiB, node.size - o)));
    return h.digest('hex');
  } finally {
    await node.close();
  }
}

const FIXTURE_IDS = ['qemu-iotests/parallels-v1', 'qemu-iotests/parallels-v2', 'qemu-iotests/parallels-with-bitmap', 'generated/parallels.img', 'dissect.hypervisor/expanding.hdd'];

for (const id of FIXTURE_IDS) {
  test(`${id}: reads with qemu-img's md5; info (human and --output=json), map --output=json and check equal qemu-img's`, { skip: SKIP }, async () => {
    const t = tempDir();
    try {
      const f = fixtureById(id);
      // Gzipped fixtures are unpacked into the temp folder (fixture()); plain ones are used in place.
      const path = fixture(f.open, t.dir);
      const node = await openImage(path, { readOnly: true });
      try {
        assert.equal(node.format, f.qemu_probe);
        assert.equal(node.size, f.virtual_size);
      } finally {
        await node.close();
      }
      if (f.raw_md5) assert.equal(await platterMd5(path), f.raw_md5);
      else {
        // 64 GiB of mostly nothing: the data ranges qemu-img reads, and nothing mapped elsewhere.
        const n2 = await openImage(path, { readOnly: true });
        try {
          for (const [o, l, sum] of f.raw_data_ranges_md5) assert.equal(md5(await n2.read(o, l)), sum);
        } finally {
          await n2.close();
        }
      }
      for (const args of [['info', path], ['info', '--output=json', path], ['map', '--output=json', path], ['map', path], ['check', path], ['check', '--output=json', path]]) {
        const q = qemuImgRaw(...args);
        const p = await platterInProcess(args);
        assert.deepEqual(neutral(p, []), neutral(q, []), `platter ${args.join(' ')}`);
      }
    } finally {
      t.cleanup();
    }
  });
}

test('the format extension of parallels-with-bitmap loads the bitmap QEMU loads (iotest parallels-read-bitmap: clusters 5-6, 10-12, 30 dirty)', { skip: SKIP_NO_FIXTURES }, async () => {
  const t = tempDir();
  try {
    const path = fixture('third-party/qemu-iotests/parallels-with-bitmap', t.dir);
    const node = await openImage(path, { readOnly: true, format: 'parallels' });
    try {
      const bitmaps = (node.impl as unknown as { bitmapsLoaded: { name: string; granularity: number; bits: { bits: number; isSet(i: number): boolean } }[] }).bitmapsLoaded;
      assert.equal(bitmaps.length, 1);
      const b = bitmaps[0]!;
      assert.equal(b.name, 'e4f2eed0-37fe-4539-b50b-85d2e7fd235f');
      assert.equal(b.granularity, 64 << 10);
      const set: number[] = [];
      for (let i = 0; i < b.bits.bits; i++) if (b.bits.isSet(i)) set.push(i);
      assert.deepEqual(set, [5, 6, 10, 11, 12, 30]);
      // The same bitmap through the node's (read-only, not persistent) bitmap capability.
      const cap = node.bitmaps!;
      assert.equal(cap.supported, false);
      const [pb] = await cap.list();
      assert.equal(pb!.name, b.name);
      assert.equal(pb!.readOnly, true);
      await assert.rejects(cap.clear(b.name), /Bitmap 'e4f2eed0-37fe-4539-b50b-85d2e7fd235f' is readonly and cannot be modified/);
      await assert.rejects(cap.lookup('nope'), /Dirty bitmap 'nope' not found/);
    } finally {
      await node.close();
    }
    // Read-write, QEMU ignores the extension and says so.
    const copy = t.path('rw.prl');
    copyFileSync(path, copy);
    const warnings: string[] = [];
    const rw = await openImage(copy, { format: 'parallels', warn: (m) => warnings.push(m) });
    await rw.close();
    assert.deepEqual(warnings, ['warning: Format Extension ignored in RW mode']);
  } finally {
    t.cleanup();
  }
});

/** The writes of the generated fixture and of iotest 131, and more: partial sectors, runs over
 *  several clusters, write -z. */
const WRITES: [offset: number, length: number, pattern: number][] = [
  [0, 65536, 0x11],
  [1052160, 3072, 0x22],
  [2096640, 4096, 0x33],
  [3 * MiB, 128 << 10, 0x55],
  [3211264, 65536, -1],
  [4128768, 65536, 0x44],
  [32768, 131072, 0x66],
  [5 * MiB + 512, 3 * MiB, 0x77],
];

function qemuIoArgs(writes: typeof WRITES): string[] {
  const args: string[] = [];
  for (const [o, l, p] of writes) args.push('-c', p < 0 ? `write -z ${o} ${l}` : `write -P ${p} ${o} ${l}`);
  return args;
}

async function platterWrites(path: string, writes: typeof WRITES): Promise<void> {
  const node = await openImage(path, { format: 'parallels' });
  try {
    for (const [o, l, p] of writes) {
      if (p < 0) await node.writeZeroes(o, l);
      else await node.write(o, Buffer.alloc(l, p));
    }
  } finally {
    await node.close();
  }
}

test('images Platter creates and writes are byte-identical to qemu-img create + qemu-io, pass qemu-img check and compare equal', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    for (const cluster of [undefined, '64k', '4k', '1000']) {
      const q = t.path('q.prl');
      const p = t.path('p.prl');
      const o = cluster ? ['-o', `cluster_size=${cluster}`] : [];
      qemuImg('create', '-q', '-f', 'parallels', ...o, q, '9M');
      const created = await platterInProcess(['create', '-q', '-f', 'parallels', ...o, p, '9M']);
      assert.equal(created.status, 0, created.stderr);
      assert.ok(readFileSync(p).equals(readFileSync(q)), `cluster ${cluster}: new images are byte-identical`);
      qemuIo('-f', 'parallels', ...qemuIoArgs(WRITES), q);
      await platterWrites(p, WRITES);
      assert.ok(readFileSync(p).equals(readFileSync(q)), `cluster ${cluster}: written images are byte-identical`);
      // The same data and holes in the file (preallocation as QEMU's), as qemu-img map of the
      // file sees them. st_blocks may differ by an extent-tree block of the filesystem (QEMU
      // zeroes with FALLOC_FL_ZERO_RANGE, Platter's file protocol with fallocate).
      assert.deepEqual(qemuImgJson('map', '-f', 'raw', p), qemuImgJson('map', '-f', 'raw', q), `cluster ${cluster}: the same data and holes in the file`);
      const check = run('qemu-img', ['check', '-f', 'parallels', p]);
      assert.equal(check.status, 0, check.stdout + check.stderr);
      const cmp = run('qemu-img', ['compare', '-f', 'parallels', '-F', 'parallels', p, q]);
      assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
      assert.deepEqual(qemuImgJson('map', p), qemuImgJson('map', q));
    }
  } finally {
    t.cleanup();
  }
});

test('prealloc-mode=truncate and prealloc-size: the same file as qemu-io with those options, and the file is cut back to the data at close', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    for (const opts of ['prealloc-mode=truncate', 'prealloc-size=3M', 'prealloc-mode=truncate,prealloc-size=0']) {
      const q = t.path('q.prl');
      const p = t.path('p.prl');
      qemuImg('create', '-q', '-f', 'parallels', '-o', 'cluster_size=64k', q, '9M');
      copyFileSync(q, p);
      qemuIo('--image-opts', ...qemuIoArgs(WRITES), `driver=parallels,${opts},file.filename=${q}`);
      const node = await openImage(`json:${JSON.stringify({ driver: 'parallels', ...Object.fromEntries(opts.split(',').map((kv) => kv.split('='))), file: { driver: 'file', filename: p } })}`);
      try {
        for (const [o, l, pat] of WRITES) {
          if (pat < 0) await node.writeZeroes(o, l);
          else await node.write(o, Buffer.alloc(l, pat));
        }
      } finally {
        await node.close();
      }
      assert.ok(readFileSync(p).equals(readFileSync(q)), `${opts}: byte-identical`);
      assert.deepEqual(qemuImgJson('map', '-f', 'raw', p), qemuImgJson('map', '-f', 'raw', q), `${opts}: the same data and holes in the file`);
    }
  } finally {
    t.cleanup();
  }
});

test('images qemu-img creates and qemu-io writes read in Platter as qemu-img convert -O raw reads them, and map as qemu-img map', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    for (const cluster of ['1M', '64k', '1536']) {
      const q = t.path(`q-${cluster}.prl`);
      qemuImg('create', '-q', '-f', 'parallels', '-o', `cluster_size=${cluster}`, q, '10M');
      qemuIo('-f', 'parallels', ...qemuIoArgs(WRITES), '-c', 'write -P 0x99 9M 1536', q);
      assert.equal(await platterMd5(q), qemuRawMd5(q, t.dir), `cluster ${cluster}`);
      const pm = await platterInProcess(['map', '--output=json', q]);
      assert.deepEqual(JSON.parse(pm.stdout), qemuImgJson('map', q), `map, cluster ${cluster}`);
    }
  } finally {
    t.cleanup();
  }
});

test('convert to and from parallels: platter convert -O parallels gives the file qemu-img convert gives; both ways compare equal', { skip: SKIP }, async () => {
  const t = tempDir();
  try {
    const src = fixture('generated/mixed4m.raw', t.dir);
    for (const o of [[], ['-o', 'cluster_size=64k']]) {
      const q = t.path('q.prl');
      const p = t.path('p.prl');
      qemuImg('convert', '-f', 'raw', '-O', 'parallels', ...o, src, q);
      const r = await platterInProcess(['convert', '-f', 'raw', '-O', 'parallels', ...o, src, p]);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(readFileSync(p).equals(readFileSync(q)), `convert ${o.join(' ')}: byte-identical to qemu-img's`);
      assert.equal(run('qemu-img', ['compare', '-f', 'raw', '-F', 'parallels', src, p]).status, 0);
    }
    // From parallels (v1 with sector offsets, and the Parallels Desktop extent) to qcow2 and raw.
    for (const id of ['third-party/qemu-iotests/parallels-v1', 'generated/parallels.img']) {
      const from = fixture(id, t.dir);
      for (const fmt of ['qcow2', 'raw']) {
        const out = t.path(`out.${fmt}`);
        const r = await platterInProcess(['convert', '-O', fmt, from, out]);
        assert.equal(r.status, 0, r.stderr);
        const cmp = run('qemu-img', ['compare', '-f', 'parallels', '-F', fmt, from, out]);
        assert.equal(cmp.status, 0, `${id} -> ${fmt}: ${cmp.stdout}${cmp.stderr}`);
      }
    }
  } finally {
    t.cleanup();
  }
});

/** A copy of a small image qemu-io wrote (64 KiB clusters, clusters 0, 2 and 16 allocated). */
function damagedPair(t: ReturnType<typeof tempDir>, damage: (path: string) => void): { q: string; p: string } {
  const base = t.path('base.prl');
  if (!existsSync(base)) {
    qemuImg('create', '-q', '-f', 'parallels', '-o', 'cluster_size=64k', base, '4M');
    qemuIo('-f', 'parallels', '-c', 'write -P 0x11 0 64k', '-c', 'write -P 0x22 1M 64k', '-c', 'write -P 0x33 128k 64k', base);
  }
  const q = t.path('q.prl');
  const p = t.path('p.prl');
  copyFileSync(base, q);
  damage(q);
  copyFileSync(q, p);
  return { q, p };
}

function poke(path: string, offset: number, bytes: Buffer): void {
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    closeSync(fd);
  }
}

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
};

const DAMAGE: [string, (path: string) => void][] = [
  ['leaked space at the end', (f) => truncateSync(f, statSync(f).size + 100000)],
  ['a BAT entry past the end of the file', (f) => poke(f, 64 + 4 * 3, u32(100))],
  ['the inuse mark set', (f) => poke(f, 44, Buffer.from('Ynot', 'latin1'))],
  [
    'all three, and a fragmented BAT',
    (f) => {
      poke(f, 44, Buffer.from('Ynot', 'latin1'));
      poke(f, 64 + 4 * 3, u32(100));
      poke(f, 64 + 4 * 5, u32(2));
      truncateSync(f, statSync(f).size + 3333);
    },
  ],
];

for (const [what, damage] of DAMAGE) {
  test(`check, check -r leaks and check -r all of an image with ${what} print qemu-img's output and status and leave qemu-img's file`, { skip: SKIP_NO_QEMU }, async () => {
    const t = tempDir();
    try {
      for (const mode of [[], ['-r', 'leaks'], ['-r', 'all']]) {
        for (const out of [[], ['--output=json']]) {
          const { q, p } = damagedPair(t, damage);
          await sameAsQemu((img) => ['check', ...out, ...mode, img], q, p, `${what} ${mode.join(' ')} ${out.join(' ')}`);
        }
      }
    } finally {
      t.cleanup();
    }
  });
}

test('an image left in use opens read-only (qemu-img info, reads) but not read-write, in QEMU\'s words; check -r all clears the mark', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const { q, p } = damagedPair(t, (f) => poke(f, 44, Buffer.from('Ynot', 'latin1')));
    await sameAsQemu((img) => ['info', '--output=json', img], q, p, 'info');
    const qio = run('qemu-io', ['-f', 'parallels', '-c', 'read 0 512', q]);
    assert.match(qio.stderr, /parallels: Image was not closed correctly; cannot be opened read\/write/);
    await assert.rejects(openImage(p, { format: 'parallels' }), /Could not open '.*p\.prl': parallels: Image was not closed correctly; cannot be opened read\/write/);
    const ro = await openImage(p, { format: 'parallels', readOnly: true });
    assert.equal(ro.size, 4 * MiB);
    await ro.close();
    // Converting from it works (read-only), and -r all makes it writable again.
    assert.equal((await platterInProcess(['convert', '-O', 'raw', p, t.path('x.raw')])).status, 0);
    await sameAsQemu((img) => ['check', '-r', 'all', img], q, p, 'check -r all');
    const rw = await openImage(p, { format: 'parallels' });
    // Open for writing, the mark is on the disk (a crash leaves it); closing clears it.
    assert.equal(readFileSync(p).readUInt32LE(44), 0x746f6e59);
    await rw.close();
    assert.equal(readFileSync(p).readUInt32LE(44), 0);
  } finally {
    t.cleanup();
  }
});

test('a backing node given in options (iotest 131): allocation copies the backing data of the new cluster, reads fall through elsewhere', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const size = 64 * MiB;
    for (const tool of ['qemu', 'platter']) {
      const top = t.path(`${tool}.prl`);
      const base = t.path(`${tool}.base.prl`);
      qemuImg('create', '-q', '-f', 'parallels', top, String(size));
      qemuImg('create', '-q', '-f', 'parallels', base, String(size));
      qemuIo('-f', 'parallels', '-c', 'write -P 42 0 64k', '-c', 'write -P 43 2M 64k', base);
      const opts = `driver=parallels,file.driver=file,file.filename=${top},backing.driver=parallels,backing.file.driver=file,backing.file.filename=${base}`;
      if (tool === 'qemu') qemuIo('--image-opts', '-c', 'write -P 1 0 64', opts);
      else {
        const node = await openImage(`json:${JSON.stringify({ driver: 'parallels', file: { driver: 'file', filename: top }, backing: { driver: 'parallels', file: { driver: 'file', filename: base } } })}`);
        await node.write(0, Buffer.alloc(64, 1));
        const all = await node.read(0, 3 * MiB);
        assert.ok(all.subarray(0, 64).every((b) => b === 1));
        assert.ok(all.subarray(64, 65536).every((b) => b === 42));
        assert.ok(all.subarray(65536, 2 * MiB).every((b) => b === 0));
        assert.ok(all.subarray(2 * MiB, 2 * MiB + 65536).every((b) => b === 43), 'unallocated clusters read the backing node');
        await node.close();
      }
    }
    assert.ok(readFileSync(t.path('platter.prl')).equals(readFileSync(t.path('qemu.prl'))), 'the top images are byte-identical');
  } finally {
    t.cleanup();
  }
});

test('the Parallels Desktop bundle (.hdd folder with DiskDescriptor.xml): QEMU reads only the .hds extent; Platter answers the xml and the folder as qemu-img does', { skip: SKIP }, async () => {
  const dir = join(FIXTURES, 'third-party/dissect.hypervisor/expanding.hdd');
  const xml = join(dir, 'DiskDescriptor.xml');
  // qemu-img probes the descriptor as raw (it is text), and -f parallels refuses it.
  for (const args of [['info', '--output=json', xml], ['info', '-f', 'parallels', xml], ['info', '-f', 'parallels', join(dir, 'expanding.hdd')]]) {
    const q = qemuImgRaw(...args);
    const p = await platterInProcess(args);
    assert.deepEqual(neutral(p, []), neutral(q, []), `platter ${args.join(' ')}`);
  }
  // The folder itself: file-posix's words, as qemu-img prints them.
  for (const args of [['info', dir], ['info', '-f', 'parallels', dir], ['check', dir]]) {
    const q = qemuImgRaw(...args);
    const p = await platterInProcess(args);
    assert.deepEqual(neutral(p, []), neutral(q, []), `platter ${args.join(' ')}`);
    assert.match(p.stderr, /'file' driver requires '.*expanding\.hdd' to be a regular file/);
  }
});

test('what QEMU\'s parallels lacks or refuses is refused in qemu-img\'s words: resize, measure, create with a backing file, bad create and open options', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const q = t.path('q.prl');
    const p = t.path('p.prl');
    qemuImg('create', '-q', '-f', 'parallels', q, '4M');
    copyFileSync(q, p);
    await sameAsQemu((img) => ['resize', img, '8M'], q, p, 'resize');
    await sameAsQemu((img) => ['measure', '-O', 'parallels', img], q, p, 'measure');
    await sameAsQemu((img) => ['create', '-f', 'parallels', '-b', 'base.qcow2', '-F', 'qcow2', `${img}.new`, '4M'], q, p, 'create -b');
    for (const [k, v] of [['prealloc-mode', 'foo'], ['prealloc-size', 'abc'], ['prealloc-size', '-1']]) {
      const spec = (img: string) => `json:${JSON.stringify({ driver: 'parallels', [k!]: v, file: { driver: 'file', filename: img } })}`;
      await sameAsQemu((img) => ['info', spec(img)], q, p, `open option ${k}=${v}`);
    }
    for (const o of ['cluster_size=0', 'cluster_size=2G', 'preallocation=metadata', 'preallocation=foo']) {
      const qr = neutral(qemuImgRaw('create', '-f', 'parallels', '-o', o, `${q}.x`, '4M'), [`${q}.x`]);
      const pr = neutral(await platterInProcess(['create', '-f', 'parallels', '-o', o, `${p}.x`, '4M']), [`${p}.x`]);
      assert.deepEqual(pr, qr, `create -o ${o}`);
    }
  } finally {
    t.cleanup();
  }
});

test('concurrent writes into the same new clusters lose nothing: qemu-img check is clean and compare equals the expected bytes', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const img = t.path('c.prl');
    await createImage({ format: 'parallels', filename: img, size: 6 * MiB, options: { cluster_size: 65536 } });
    const expected = Buffer.alloc(6 * MiB);
    const node = await openImage(img, { format: 'parallels' });
    try {
      const writes: [number, Buffer][] = [];
      for (let i = 0; i < 48; i++) {
        const off = ((i * 7919) % 96) * 65536 + ((i * 131) % 128) * 512;
        const len = 512 * (1 + ((i * 37) % 200));
        writes.push([Math.min(off, 6 * MiB - len), Buffer.alloc(len, 1 + (i % 250))]);
      }
      await Promise.all(writes.map(([o, d], i) => (i === 20 ? node.flush().then(() => node.write(o, d)) : node.write(o, d))));
      // Overlapping writes race: what is stored is what a read says; it must be one of them.
      for (const [o, d] of writes) d.copy(expected, o);
      const got = await node.read(0, node.size);
      for (const [o, d] of writes) {
        for (let p = 0; p < d.length; p += 512) {
          const s = got.subarray(o + p, o + p + 512);
          assert.ok(writes.some(([o2, d2]) => o2 <= o + p && o + p + 512 <= o2 + d2.length && s.every((v) => v === d2[0])), `sector at ${o + p} holds one writer's data`);
        }
      }
      got.copy(expected);
    } finally {
      await node.close();
    }
    const raw = t.path('expected.raw');
    writeFileSync(raw, expected);
    const check = run('qemu-img', ['check', '-f', 'parallels', img]);
    assert.equal(check.status, 0, check.stdout + check.stderr);
    const cmp = run('qemu-img', ['compare', '-f', 'parallels', '-F', 'raw', img, raw]);
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
  } finally {
    t.cleanup();
  }
});

test('killed while writing (SIGKILL): qemu-img check finds the inuse mark (and leaks) and platter check says the same; check -r all repairs alike; flushed writes read back', { skip: SKIP_NO_QEMU, timeout: 120_000 }, async () => {
  const { spawn } = await import('node:child_process');
  const { createInterface } = await import('node:readline');
  const { fileURLToPath } = await import('node:url');
  const child = fileURLToPath(new URL('./parallels-crash-child.ts', import.meta.url));
  const t = tempDir();
  try {
    const img = t.path('k.prl');
    qemuImg('create', '-q', '-f', 'parallels', '-o', 'cluster_size=64k', img, '6M');
    const lastFlush = await new Promise<number>((resolve) => {
      const c = spawn(process.execPath, ['--import', 'tsx', child, img], { stdio: ['ignore', 'pipe', 'inherit'] });
      let last = -1;
      createInterface({ input: c.stdout! }).on('line', (l) => {
        if (l.startsWith('F ')) last = Number(l.slice(2));
        if (last >= 150) c.kill('SIGKILL');
      });
      c.on('exit', () => resolve(last));
    });
    assert.ok(lastFlush >= 150);
    const q = t.path('q.prl');
    const p = t.path('p.prl');
    copyFileSync(img, q);
    copyFileSync(img, p);
    const r = await sameAsQemu((f) => ['check', f], q, p, 'check after SIGKILL');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^ERROR image was not closed correctly$/m);
    await sameAsQemu((f) => ['check', '-r', 'all', f], q, p, 'check -r all after SIGKILL');
    // Every cluster's last write up to the last completed flush reads back.
    const node = await openImage(p, { format: 'parallels', readOnly: true });
    try {
      const last = new Map<number, number>();
      for (let i = 1; i <= lastFlush; i++) last.set((i * 7) % 96, i & 255);
      for (const [cluster, pat] of last) {
        const got = await node.read(cluster * 65536, 65536);
        // A write after the flush may have landed too (its BAT entry was not flushed, so only
        // into a cluster that was already mapped): the flushed pattern or a later one.
        assert.ok(got.every((v) => v === got[0]) && (got[0] === pat || got[0]! > 0), `cluster ${cluster}`);
        if (got[0] !== pat) assert.ok([...Array(60).keys()].some((k) => ((lastFlush + 1 + k) & 255) === got[0] && ((lastFlush + 1 + k) * 7) % 96 === cluster), `cluster ${cluster}: ${got[0]} is neither the flushed ${pat} nor a later write`);
      }
    } finally {
      await node.close();
    }
  } finally {
    t.cleanup();
  }
});

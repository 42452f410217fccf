// vvfat (fat:DIR) against qemu-img 7.2's own vvfat, dosfstools and mtools:
// - info (human and JSON) equals `qemu-img info fat:...` for every form;
// - `platter convert -O raw fat:...` equals `qemu-img convert -O raw fat:...` byte for byte for
//   FAT12/16 (floppy and hard disk), except the unused tail of each file's last cluster, where QEMU
//   leaves whatever its cluster buffer held before; the images pass `fsck.fat -n`, list the same
//   tree under `mdir -/ -b`, and every file copied out with `mcopy` equals the host file;
// - FAT32 (QEMU's fails fsck.fat) passes `fsck.fat -n` and carries every file;
// - read-only by default: a write is refused with qemu-img's error and the directory is unchanged;
// - bad input gives qemu-img's errors (missing directory, a file, a tree too large, too many root
//   entries, a long label, a bad FAT type, an unknown option).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, readFileSync, symlinkSync, readdirSync, lstatSync, openSync, readSync, closeSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { HAVE_QEMU, have, run, runOk, tempDir } from '../helpers/qemu.ts';
import { platterInProcess, qemuImgRaw } from './harness.ts';
import { scanTree } from '../../core/protocols/vvfat/tree.ts';
import { geometryFor, layoutFor } from '../../core/protocols/vvfat/layout.ts';
import { openImage } from '../../core/drivers/open.ts';

const SKIP = !HAVE_QEMU ? 'qemu-img not installed' : !have('fsck.fat') || !have('mcopy') ? 'dosfstools/mtools not installed' : false;
const tmp = tempDir('platter-vvfat-');
after(() => tmp.cleanup());

/** A small tree that fits a floppy: nesting, long and non-ASCII names, empty files and
 *  directories, a link to a file (followed, as QEMU does), a dangling link and a FIFO. */
function smallTree(root: string): void {
  mkdirSync(join(root, 'a/b/c'), { recursive: true });
  mkdirSync(join(root, 'empty dir'));
  writeFileSync(join(root, 'readme.txt'), 'hello\n');
  writeFileSync(join(root, 'README.TXT'), 'HELLO\n');
  writeFileSync(join(root, 'A long file name.text'), 'long\n');
  writeFileSync(join(root, 'Ĥéllo wörld.txt'), 'unicode\n');
  writeFileSync(join(root, '日本語.txt'), 'nihongo\n');
  writeFileSync(join(root, '.hidden'), 'dot\n');
  writeFileSync(join(root, 'empty'), '');
  writeFileSync(join(root, 'a/b/c/deep file.bin'), randomBytes(20000));
  writeFileSync(join(root, 'a/mid.bin'), randomBytes(300000));
  for (let i = 0; i < 40; i++) writeFileSync(join(root, `a/b/file number ${i} of many.txt`), `file ${i}\n`.repeat(i));
  symlinkSync('readme.txt', join(root, 'link to readme'));
  symlinkSync('nowhere', join(root, 'dangling'));
  run('mkfifo', [join(root, 'fifo')]);
}

/** A tree for the hard-disk forms: a few hundred files, multi-MiB files, nesting. */
function bigTree(root: string): void {
  for (let d = 0; d < 10; d++) {
    mkdirSync(join(root, `directory ${d}`, 'nested', 'deeper'), { recursive: true });
    for (let i = 0; i < 30; i++) writeFileSync(join(root, `directory ${d}`, `file ${i} with a long name.dat`), randomBytes(i * 97));
    writeFileSync(join(root, `directory ${d}`, 'nested', 'deeper', 'x.txt'), `deep ${d}\n`);
  }
  mkdirSync(join(root, 'empty'));
  writeFileSync(join(root, 'zero length'), '');
  writeFileSync(join(root, 'three MiB.bin'), randomBytes(3 << 20));
  writeFileSync(join(root, 'five and a bit MiB.bin'), randomBytes((5 << 20) + 12345));
}

const small = tmp.path('small');
const big = tmp.path('big');
if (!SKIP) {
  mkdirSync(small);
  smallTree(small);
  mkdirSync(big);
  bigTree(big);
}

/** Every file under a host directory (following links as stat does), path -> md5; FIFOs as empty. */
function hostTree(root: string, rel = ''): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of readdirSync(join(root, rel)).sort()) {
    const p = join(root, rel, name);
    let st;
    try {
      st = statSync(p);
    } catch {
      continue;
    }
    const r = rel ? `${rel}/${name}` : name;
    if (st.isDirectory()) {
      out.set(`${r}/`, 'dir');
      for (const [k, v] of hostTree(root, r)) out.set(k, v);
    } else out.set(r, createHash('md5').update(st.isFile() ? readFileSync(p) : Buffer.alloc(0)).digest('hex'));
  }
  return out;
}

/** The partition's byte offset (63 sectors on a hard disk, 0 on a floppy). */
const offsetOf = (floppy: boolean) => (floppy ? 0 : 63 * 512);

/** `mdir -/ -b` of the FAT volume in an image. */
function mdir(img: string, floppy: boolean): string {
  return runOk('mdir', ['-/', '-b', '-i', `${img}@@${offsetOf(floppy)}`, '::']);
}

/** Copy the volume's files out with mcopy and hash them like hostTree. */
function volumeTree(img: string, floppy: boolean, into: string): Map<string, string> {
  mkdirSync(into, { recursive: true });
  runOk('mcopy', ['-s', '-n', '-m', '-i', `${img}@@${offsetOf(floppy)}`, '::*', into]);
  return hostTree(into);
}

/** fsck.fat -n on the volume (the partition copied out for a hard disk). */
function fsck(img: string, floppy: boolean): { status: number | null; out: string } {
  let dev = img;
  if (!floppy) {
    dev = `${img}.part`;
    runOk('dd', [`if=${img}`, `of=${dev}`, 'bs=512', 'skip=63', 'conv=sparse', 'status=none']);
  }
  const r = run('fsck.fat', ['-n', dev]);
  return { status: r.status, out: r.stdout + r.stderr };
}

/** Read a byte range of a file. */
function readRange(path: string, offset: number, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(length);
    readSync(fd, b, 0, length, offset);
    return b;
  } finally {
    closeSync(fd);
  }
}

/** Compare Platter's image with qemu-img's for `dir`: equal except the slack after each file's
 *  data in its last cluster (QEMU leaves stale bytes there). */
async function assertSameAsQemu(qemuRaw: string, platterRaw: string, dir: string, fatType: number, floppy: boolean): Promise<void> {
  const l = layoutFor(geometryFor(fatType, floppy));
  const v = await scanTree(dir, l, Buffer.from('QEMU VVFAT '), { warn: () => {} });
  const last = v.mappings[v.mappings.length - 1]!;
  const used = (l.clusterBase + last.end * l.sectorsPerCluster) * 512;
  const q = readRange(qemuRaw, 0, used);
  const p = readRange(platterRaw, 0, used);
  for (const m of v.mappings) {
    if (m.kind !== 'file') continue;
    const from = (l.clusterBase + m.begin * l.sectorsPerCluster) * 512 + m.size!;
    const to = (l.clusterBase + m.end * l.sectorsPerCluster) * 512;
    q.fill(0, from, to);
    p.fill(0, from, to);
  }
  for (let i = 0; i < used; i += 512) {
    if (!q.subarray(i, i + 512).equals(p.subarray(i, i + 512))) assert.fail(`sector ${i / 512} differs from qemu-img's`);
  }
  // Past the used clusters both are zeros to the end of the disk.
  const r = run('cmp', ['-i', String(used), qemuRaw, platterRaw]);
  assert.equal(r.status, 0, `the free area differs: ${r.stdout}`);
}

const FORMS: { name: string; prefix: string; dir: () => string; fatType: number; floppy: boolean }[] = [
  { name: 'floppy (FAT12, 2.88 MB)', prefix: 'fat:floppy:', dir: () => small, fatType: 0, floppy: true },
  { name: 'floppy FAT12 1.44 MB', prefix: 'fat:floppy:12:', dir: () => small, fatType: 12, floppy: true },
  { name: 'hard disk FAT16 (default)', prefix: 'fat:', dir: () => big, fatType: 16, floppy: false },
  { name: 'hard disk FAT12 (31.5 MiB)', prefix: 'fat:12:', dir: () => big, fatType: 12, floppy: false },
];

for (const f of FORMS) {
  test(`${f.name}: convert equals qemu-img convert -O raw ${f.prefix}DIR, passes fsck.fat -n, lists and reads back every file`, { skip: SKIP }, async () => {
    const q = tmp.path(`q-${f.fatType}-${f.floppy}.raw`);
    const p = tmp.path(`p-${f.fatType}-${f.floppy}.raw`);
    runOk('qemu-img', ['convert', '-O', 'raw', `${f.prefix}${f.dir()}`, q]);
    const r = await platterInProcess(['convert', '-O', 'raw', `${f.prefix}${f.dir()}`, p]);
    assert.equal(r.status, 0, r.stderr);
    await assertSameAsQemu(q, p, f.dir(), f.fatType, f.floppy);
    const fk = fsck(p, f.floppy);
    assert.equal(fk.status, 0, fk.out);
    assert.equal(mdir(p, f.floppy), mdir(q, f.floppy), 'mdir -/ -b lists the same tree');
    assert.deepEqual(volumeTree(p, f.floppy, tmp.path(`out-${f.fatType}-${f.floppy}`)), hostTree(f.dir()), 'every file read back equals the host file');
  });
}

test('label= (--image-opts) is written as qemu-img writes it', { skip: SKIP }, async () => {
  const q = tmp.path('label-q.raw');
  const p = tmp.path('label-p.raw');
  runOk('qemu-img', ['convert', '-O', 'raw', '--image-opts', `driver=vvfat,dir=${small},floppy=on,label=Hi.There`, q]);
  const r = await platterInProcess(['convert', '-O', 'raw', '--image-opts', `driver=raw,file.driver=vvfat,file.dir=${small},file.floppy=on,file.label=Hi.There`, p]);
  assert.equal(r.status, 0, r.stderr);
  await assertSameAsQemu(q, p, small, 0, true);
  assert.match(runOk('mdir', ['-i', p, '::']), /Volume in drive : is Hi\.There/);
});

test('a host name that is not UTF-8 gets only a short name and one warning, as in qemu-img', { skip: SKIP }, async () => {
  const dir = tmp.path('not-utf8');
  mkdirSync(dir);
  writeFileSync(join(dir, 'ok.txt'), 'ok\n');
  writeFileSync(Buffer.concat([Buffer.from(dir + '/na'), Buffer.from([0xff]), Buffer.from('me.txt')]), 'x\n');
  const q = tmp.path('nu-q.raw');
  const p = tmp.path('nu-p.raw');
  const qr = run('qemu-img', ['convert', '-O', 'raw', `fat:floppy:${dir}`, q]);
  assert.equal(qr.status, 0);
  const r = await platterInProcess(['convert', '-O', 'raw', `fat:floppy:${dir}`, p]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(mdir(p, true), mdir(q, true));
  assert.equal(r.stderr.split('\n').filter((x) => x.startsWith('vvfat: invalid UTF-8 name: na')).length, 1);
  assert.match(qr.stderr, /^vvfat: invalid UTF-8 name: na/);
  await assertSameAsQemu(q, p, dir, 0, true);
});

test('hard disk FAT32: passes fsck.fat -n (QEMU 7.2 fails it), lists the tree qemu-img shows, reads back every file', { skip: SKIP }, async () => {
  const p = tmp.path('p32.raw');
  const q = tmp.path('q16.raw');
  const r = await platterInProcess(['convert', '-O', 'raw', `fat:32:${big}`, p]);
  assert.equal(r.status, 0, r.stderr);
  const fk = fsck(p, false);
  assert.equal(fk.status, 0, fk.out);
  assert.doesNotMatch(fk.out, /Warning/);
  runOk('qemu-img', ['convert', '-O', 'raw', `fat:${big}`, q]);
  assert.equal(mdir(p, false), mdir(q, false));
  assert.deepEqual(volumeTree(p, false, tmp.path('out-32')), hostTree(big));
  assert.equal(statSync(p).size, statSync(q).size, 'same disk size as qemu-img (504 MiB)');
  // The small tree too, with its odd names and special files.
  const p2 = tmp.path('p32s.raw');
  assert.equal((await platterInProcess(['convert', '-O', 'raw', `fat:32:${small}`, p2])).status, 0);
  assert.equal(fsck(p2, false).status, 0);
  assert.deepEqual(volumeTree(p2, false, tmp.path('out-32s')), hostTree(small));
});

/** qemu-img's and Platter's message lines with the program name taken off. */
const lines = (s: string) => s.split('\n').filter(Boolean).map((x) => x.replace(/^(qemu-img|platter|[\w.-]+): /, ''));

test('info and info --output=json equal qemu-img info for every filename form and --image-opts', { skip: SKIP }, async () => {
  const specs = [['fat:' + small], ['fat:floppy:' + small], ['fat:floppy:12:' + small], ['fat:floppy:16:' + small], ['fat:12:' + big], ['fat:16:' + big + '/'], ['--image-opts', `driver=raw,file.driver=vvfat,file.dir=${small},file.label=HELLO,file.fat-type=16,file.floppy=on`]];
  for (const s of specs) {
    for (const json of [[], ['--output=json']]) {
      const q = qemuImgRaw('info', ...json, ...s);
      const p = await platterInProcess(['info', ...json, ...s]);
      assert.equal(p.status, q.status, s.join(' '));
      assert.equal(p.stdout, q.stdout, s.join(' '));
    }
  }
  // FAT32: the same facts (qemu-img also warns that its FAT32 is untested; Platter's is tested).
  const q = qemuImgRaw('info', '--output=json', 'fat:32:' + big);
  const p = await platterInProcess(['info', '--output=json', 'fat:32:' + big]);
  assert.equal(p.stdout, q.stdout);
});

test('read-only by default: a write is refused with qemu-img\'s error and the directory is unchanged', { skip: SKIP }, async () => {
  const before = hostTree(small);
  const src = tmp.path('src.raw');
  writeFileSync(src, randomBytes(1 << 20));
  for (const target of [`fat:${small}`, `fat:floppy:${small}`]) {
    const q = qemuImgRaw('convert', '-n', '-f', 'raw', '-O', 'raw', src, target);
    const p = await platterInProcess(['convert', '-n', '-f', 'raw', '-O', 'raw', src, target]);
    assert.notEqual(q.status, 0);
    assert.notEqual(p.status, 0);
    assert.deepEqual(lines(p.stderr), lines(q.stderr));
    assert.deepEqual(lines(p.stderr), [`Could not open '${target}': Image is read-only`]);
  }
  // A fat: name is no place to create an image (QEMU: the protocol cannot create); no file named
  // "fat:..." appears in the working directory either.
  for (const args of [['convert', '-f', 'raw', '-O', 'raw', src, `fat:rw:${small}`], ['convert', '-f', 'raw', '-O', 'qcow2', src, 'fat:relative-dir'], ['create', '-f', 'raw', 'fat:relative-dir', '1M']]) {
    const q = qemuImgRaw(...args);
    const p = await platterInProcess(args);
    assert.notEqual(p.status, 0);
    assert.deepEqual(lines(p.stderr), lines(q.stderr), args.join(' '));
    assert.match(p.stderr, /Protocol driver 'vvfat' does not support image creation/);
  }
  assert.ok(!readdirSync('.').some((n) => n.startsWith('fat:')), 'no file named fat:... was made');
  // rw: asked of a read-only open (qemu-img info) is QEMU's error too.
  const q = qemuImgRaw('info', `fat:rw:${small}`);
  const p = await platterInProcess(['info', `fat:rw:${small}`]);
  assert.deepEqual(lines(p.stderr), lines(q.stderr));
  // Opened read-only, the generic layer refuses writes.
  const node = await openImage(`fat:floppy:${small}`, { readOnly: true, warn: () => {} });
  try {
    await assert.rejects(node.write(0, Buffer.alloc(512)), /read-only/i);
  } finally {
    await node.close();
  }
  assert.deepEqual(hostTree(small), before, 'the directory is unchanged');
  assert.ok(lstatSync(join(small, 'dangling')).isSymbolicLink());
});

test('bad input gives qemu-img\'s errors', { skip: SKIP }, async () => {
  const many = tmp.path('many');
  mkdirSync(many);
  for (let i = 0; i < 300; i++) writeFileSync(join(many, `f${i}`), '');
  const file = join(small, 'readme.txt');
  const huge = tmp.path('huge');
  mkdirSync(huge);
  runOk('truncate', ['-s', '3G', join(huge, 'sparse 3 GiB file')]);
  const cases: string[][] = [
    ['info', 'fat:' + tmp.path('missing')],
    ['info', 'fat:' + file],
    ['info', 'fat:floppy:' + big],
    ['info', 'fat:floppy:12:' + big],
    ['info', 'fat:12:' + many],
    ['info', 'fat:' + many],
    ['info', 'fat:' + huge],
    ['info', '--image-opts', `driver=raw,file.driver=vvfat,file.dir=${small},file.label=123456789012`],
    ['info', '--image-opts', `driver=raw,file.driver=vvfat,file.dir=${small},file.fat-type=64`],
    ['info', '--image-opts', `driver=raw,file.driver=vvfat,file.dir=${small},file.fat-type=x`],
    ['info', '--image-opts', `driver=raw,file.driver=vvfat,file.dir=${small},file.floppy=maybe`],
    ['info', '--image-opts', `driver=raw,file.driver=vvfat,file.dir=${small},file.colour=blue`],
    ['info', '--image-opts', 'driver=raw,file.driver=vvfat'],
  ];
  for (const c of cases) {
    const q = qemuImgRaw(...c);
    const p = await platterInProcess(c);
    assert.notEqual(q.status, 0, c.join(' '));
    assert.notEqual(p.status, 0, c.join(' '));
    // (--image-opts: Platter names the image by its options as json:, qemu-img by the text typed;
    // that naming is the generic layer's, so only the cause is compared there.)
    const cause = (s: string) => (c[1] === '--image-opts' ? lines(s).map((x) => x.replace(/^Could not open '.*?': /, '')) : lines(s));
    assert.deepEqual(cause(p.stderr), cause(q.stderr), c.join(' '));
  }
  // The messages themselves, so a change in both would still be seen.
  const fit = await platterInProcess(['info', 'fat:floppy:' + big]);
  assert.match(fit.stderr, /Directory does not fit in FAT12 \(capacity 2\.88 MB\)/);
  const root = await platterInProcess(['info', 'fat:' + many]);
  assert.match(root.stderr, /Too many entries in root directory\n.*Could not read directory /);
});

// vvfat `rw` (fat:rw:DIR): changes made to the FAT volume are committed into the host directory.
// The oracle is mtools: an image Platter made from the directory is changed with mcopy, mmd, mdel,
// mdeltree and mren (new, changed, renamed and deleted files and directories), written back over
// `fat:rw:` (`platter convert -n`, or only the sectors that differ), and the directory must then
// hold exactly the tree mtools shows. A volume that is not consistent, or a host file changed
// behind the volume's back, is refused with the reason, and the directory is left as it was.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, readFileSync, readdirSync, statSync, lstatSync, openSync, readSync, closeSync, symlinkSync, existsSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { HAVE_QEMU, have, runOk, tempDir } from '../helpers/qemu.ts';
import { platterInProcess } from './harness.ts';
import { openImage } from '../../core/drivers/open.ts';
import { startPlatterNbd } from '../helpers/nbd-peers.ts';

const SKIP = !HAVE_QEMU ? 'qemu-img not installed' : !have('mcopy') ? 'mtools not installed' : false;
const tmp = tempDir('platter-vvfat-rw-');
after(() => tmp.cleanup());

/** Every entry under a directory: path -> md5 of a file, or 'dir'. */
function tree(root: string, rel = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(join(root, rel)).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    const p = join(root, r);
    if (statSync(p).isDirectory()) {
      out[`${r}/`] = 'dir';
      Object.assign(out, tree(root, r));
    } else out[r] = createHash('md5').update(readFileSync(p)).digest('hex');
  }
  return out;
}

function makeDir(name: string): string {
  const d = tmp.path(name);
  mkdirSync(join(d, 'sub/deeper'), { recursive: true });
  mkdirSync(join(d, 'gone/inner'), { recursive: true });
  writeFileSync(join(d, 'one.txt'), 'one\n');
  writeFileSync(join(d, 'Old Long Name.txt'), 'rename me\n');
  writeFileSync(join(d, 'sub/keep.txt'), 'keep\n');
  writeFileSync(join(d, 'sub/deeper/big.bin'), randomBytes(200000));
  writeFileSync(join(d, 'gone/x'), 'bye\n');
  writeFileSync(join(d, 'gone/inner/y'), 'bye too\n');
  writeFileSync(join(d, 'unchanged.bin'), randomBytes(50000));
  return d;
}

/** Change the volume in `img` (FAT volume at byte `off`) with mtools; the tree it then holds. */
function changeWithMtools(img: string, off: number, before: Record<string, string>): Record<string, string> {
  const i = `${img}@@${off}`;
  const added = tmp.path(`added-${off}`);
  writeFileSync(added, randomBytes(70000));
  const changed = tmp.path(`changed-${off}`);
  writeFileSync(changed, 'changed contents, longer than before\n');
  runOk('mcopy', ['-i', i, added, '::/A New File With A Long Name.bin']);
  runOk('mmd', ['-i', i, '::/new dir']);
  runOk('mmd', ['-i', i, '::/new dir/nested']);
  runOk('mcopy', ['-i', i, changed, '::/new dir/nested/note.txt']);
  runOk('mcopy', ['-o', '-i', i, changed, '::/sub/keep.txt']);
  runOk('mdel', ['-i', i, '::/one.txt']);
  runOk('mdeltree', ['-i', i, '::/gone']);
  runOk('mren', ['-i', i, '::/Old Long Name.txt', '::/New Long Name.txt']);
  const md5 = (p: string) => createHash('md5').update(readFileSync(p)).digest('hex');
  const want = { ...before };
  for (const k of Object.keys(want)) if (k === 'one.txt' || k.startsWith('gone/')) delete want[k];
  want['New Long Name.txt'] = want['Old Long Name.txt']!;
  delete want['Old Long Name.txt'];
  want['A New File With A Long Name.bin'] = md5(added);
  want['new dir/'] = 'dir';
  want['new dir/nested/'] = 'dir';
  want['new dir/nested/note.txt'] = md5(changed);
  want['sub/keep.txt'] = md5(changed);
  return Object.fromEntries(Object.entries(want).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** The mtools view of a volume, copied out (the oracle for what the directory must hold). */
function mtoolsTree(img: string, off: number): Record<string, string> {
  const out = tmp.path(`mt-${Math.random().toString(36).slice(2)}`);
  mkdirSync(out);
  runOk('mcopy', ['-s', '-n', '-i', `${img}@@${off}`, '::*', out]);
  return tree(out);
}

function sortKeys(t: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(t).sort(([a], [b]) => (a < b ? -1 : 1)));
}

test('floppy: changes made with mtools, written back with platter convert -n into fat:floppy:rw:DIR, are committed', { skip: SKIP }, async () => {
  const dir = makeDir('floppy');
  const before = tree(dir);
  const img = tmp.path('floppy.img');
  assert.equal((await platterInProcess(['convert', '-O', 'raw', `fat:floppy:${dir}`, img])).status, 0);
  const want = changeWithMtools(img, 0, before);
  assert.deepEqual(sortKeys(mtoolsTree(img, 0)), want, 'mtools sees the changed tree');
  const r = await platterInProcess(['convert', '-n', '-f', 'raw', '-O', 'raw', img, `fat:floppy:rw:${dir}`]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(sortKeys(tree(dir)), want);
  // Read back through a fresh read-only view, the directory shows the same tree.
  const again = tmp.path('floppy-again.img');
  assert.equal((await platterInProcess(['convert', '-O', 'raw', `fat:floppy:${dir}`, again])).status, 0);
  assert.deepEqual(sortKeys(mtoolsTree(again, 0)), want);
});

/** Write into `node` only the sectors where `img` differs from what the node shows. */
async function writeDifferences(node: Awaited<ReturnType<typeof openImage>>, img: string): Promise<number> {
  const fd = openSync(img, 'r');
  let n = 0;
  try {
    for (let off = 0; off < node.size; off += 1 << 20) {
      const chunk = Math.min(1 << 20, node.size - off);
      const buf = Buffer.alloc(chunk);
      readSync(fd, buf, 0, chunk, off);
      const cur = await node.read(off, chunk);
      if (cur.equals(buf)) continue;
      for (let s = 0; s < chunk; s += 512) {
        if (!cur.subarray(s, s + 512).equals(buf.subarray(s, s + 512))) {
          await node.write(off + s, Buffer.from(buf.subarray(s, s + 512)));
          n++;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return n;
}

for (const [form, prefix] of [['hard disk FAT16', 'fat:rw:'], ['hard disk FAT32', 'fat:rw:32:']] as const) {
  test(`${form}: changed sectors written to ${prefix}DIR are committed at flush`, { skip: SKIP }, async () => {
    const dir = makeDir(form.replace(/ /g, '-'));
    const before = tree(dir);
    const img = tmp.path(`${form}.img`);
    assert.equal((await platterInProcess(['convert', '-O', 'raw', prefix.replace('rw:', '') + dir, img])).status, 0);
    const want = changeWithMtools(img, 63 * 512, before);
    const node = await openImage(prefix + dir, { format: 'raw', warn: () => {} });
    try {
      assert.ok((await writeDifferences(node, img)) > 0);
      await node.flush();
      assert.deepEqual(sortKeys(tree(dir)), want);
      // The disk still reads as the guest left it.
      const fd = openSync(img, 'r');
      const b = Buffer.alloc(1 << 20);
      readSync(fd, b, 0, b.length, 0);
      closeSync(fd);
      assert.ok((await node.read(0, 1 << 20)).equals(b), 'the first MiB reads as written');
    } finally {
      await node.close();
    }
    assert.deepEqual(sortKeys(tree(dir)), want);
  });
}

test('an inconsistent volume is not committed: the directory is unchanged and the error says why', { skip: SKIP }, async () => {
  const dir = makeDir('inconsistent');
  const before = tree(dir);
  const img = tmp.path('inconsistent.img');
  assert.equal((await platterInProcess(['convert', '-O', 'raw', `fat:floppy:${dir}`, img])).status, 0);
  changeWithMtools(img, 0, before);
  // Cross-link: point the FAT entry of every cluster of the first FAT at cluster 2 (a loop).
  const b = readFileSync(img);
  const fat = 512; // floppy: one reserved sector, then the FAT (FAT12)
  for (let c = 2; c < 40; c++) {
    const o = fat + Math.floor((c * 3) / 2);
    if (c & 1) {
      b[o] = (b[o]! & 0x0f) | 0x20;
      b[o + 1] = 0x00;
    } else {
      b[o] = 0x02;
      b[o + 1] = b[o + 1]! & 0xf0;
    }
  }
  writeFileSync(img, b);
  const r = await platterInProcess(['convert', '-n', '-f', 'raw', '-O', 'raw', img, `fat:floppy:rw:${dir}`]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /nothing was committed to '.*': the FAT volume is not consistent \(/);
  assert.deepEqual(tree(dir), before, 'the directory is as it was');
});

test('a host file changed behind the volume is not overwritten: the commit is refused, nothing changes', { skip: SKIP }, async () => {
  const dir = makeDir('conflict');
  const before = tree(dir);
  const img = tmp.path('conflict.img');
  assert.equal((await platterInProcess(['convert', '-O', 'raw', `fat:floppy:${dir}`, img])).status, 0);
  changeWithMtools(img, 0, before);
  const node = await openImage(`fat:floppy:rw:${dir}`, { format: 'raw', warn: () => {} });
  try {
    await writeDifferences(node, img);
    writeFileSync(join(dir, 'sub/keep.txt'), 'someone else wrote this\n');
    await assert.rejects(node.flush(), /nothing was committed to '.*': 'sub\/keep.txt' changed on the host since the directory was read/);
    assert.deepEqual(tree(dir), { ...before, 'sub/keep.txt': createHash('md5').update('someone else wrote this\n').digest('hex') });
  } finally {
    await node.close().catch(() => {});
  }
  assert.equal(readFileSync(join(dir, 'sub/keep.txt'), 'utf8'), 'someone else wrote this\n', "the other writer's file is kept");
  assert.ok(statSync(join(dir, 'one.txt')).isFile(), 'nothing was deleted');
});

test('rw needs a writable open, as in QEMU; the boot sector is protected', { skip: SKIP }, async () => {
  const dir = makeDir('protect');
  const r = await platterInProcess(['info', `fat:rw:${dir}`]);
  assert.match(r.stderr, /Unable to set VVFAT to 'rw' when drive is read-only/);
  const node = await openImage(`fat:floppy:rw:${dir}`, { format: 'raw', warn: () => {} });
  try {
    const boot = await node.read(0, 512);
    boot[3] ^= 0xff; // the OEM name
    await assert.rejects(node.write(0, boot), /Tried to write to protected bootsector/);
  } finally {
    await node.close();
  }
});

test('symbolic links are never written through: removing a linked directory removes the link only; changing a file inside it is refused', { skip: SKIP }, async () => {
  const target = tmp.path('link-target');
  mkdirSync(target);
  writeFileSync(join(target, 'precious.txt'), 'precious\n');
  for (const [name, change, expectError] of [
    ['links-delete', (i: string) => runOk('mdeltree', ['-i', i, '::/linked dir']), undefined],
    ['links-change', (i: string) => runOk('mcopy', ['-o', '-i', i, tmp.path('added-0'), '::/linked dir/precious.txt']), /inside 'linked dir', a symbolic link on the host/],
  ] as const) {
    const dir = tmp.path(name);
    mkdirSync(dir);
    writeFileSync(join(dir, 'plain.txt'), 'plain\n');
    symlinkSync(target, join(dir, 'linked dir'));
    const img = tmp.path(`${name}.img`);
    assert.equal((await platterInProcess(['convert', '-O', 'raw', `fat:floppy:${dir}`, img])).status, 0);
    writeFileSync(tmp.path('added-0'), 'replacement\n');
    change(`${img}@@0`);
    const r = await platterInProcess(['convert', '-n', '-f', 'raw', '-O', 'raw', img, `fat:floppy:rw:${dir}`]);
    if (expectError) {
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, expectError);
      assert.ok(lstatSync(join(dir, 'linked dir')).isSymbolicLink());
    } else {
      assert.equal(r.status, 0, r.stderr);
      assert.ok(!existsSync(join(dir, 'linked dir')), 'the link is gone');
    }
    assert.equal(readFileSync(join(target, 'precious.txt'), 'utf8'), 'precious\n', 'the file the link leads to is untouched');
    assert.equal(readFileSync(join(dir, 'plain.txt'), 'utf8'), 'plain\n');
  }
});

test('a file without write permission on the host is not changed (QEMU: write-protected file)', { skip: SKIP }, async () => {
  const dir = makeDir('readonly-file');
  chmodSync(join(dir, 'sub/keep.txt'), 0o444);
  const before = tree(dir);
  const img = tmp.path('readonly-file.img');
  assert.equal((await platterInProcess(['convert', '-O', 'raw', `fat:floppy:${dir}`, img])).status, 0);
  changeWithMtools(img, 0, before);
  const r = await platterInProcess(['convert', '-n', '-f', 'raw', '-O', 'raw', img, `fat:floppy:rw:${dir}`]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /'sub\/keep\.txt' is read-only on the host/);
  assert.deepEqual(tree(dir), before);
});

test('served by platter nbd: qemu-io writes the sectors mtools changed into fat:rw:DIR over NBD, and the directory shows exactly those changes once the server stops', { skip: SKIP || (!have('qemu-io') ? 'qemu-io not installed' : false) }, async () => {
  const dir = makeDir('over-nbd');
  const before = tree(dir);
  const img = tmp.path('over-nbd.img');
  assert.equal((await platterInProcess(['convert', '-O', 'raw', `fat:${dir}`, img])).status, 0);
  const want = changeWithMtools(img, 63 * 512, before);
  // The 512-byte sectors that differ, written one qemu-io command each (as a guest would).
  const orig = tmp.path('over-nbd-orig.img');
  assert.equal((await platterInProcess(['convert', '-O', 'raw', `fat:${dir}`, orig])).status, 0);
  const a = readFileSync(orig);
  const b = readFileSync(img);
  const writes: string[] = [];
  const pattern = tmp.path('over-nbd-sector');
  for (let off = 0; off < b.length; off += 512) {
    if (a.subarray(off, off + 512).equals(b.subarray(off, off + 512))) continue;
    writes.push(String(off));
  }
  assert.ok(writes.length > 0);
  const sock = tmp.path('over-nbd.sock');
  const server = await startPlatterNbd(['-t', '-f', 'raw', '-k', sock, `fat:rw:${dir}`], { path: sock });
  try {
    // qemu-io's `write -s FILE` takes the sector's bytes from a file.
    for (const off of writes) {
      writeFileSync(pattern, b.subarray(Number(off), Number(off) + 512));
      runOk('qemu-io', ['-f', 'raw', '-c', `write -s ${pattern} ${off} 512`, `nbd+unix:///?socket=${sock}`]);
    }
  } finally {
    assert.equal(await server.stop('SIGTERM'), 0, server.stderr());
  }
  assert.deepEqual(sortKeys(tree(dir)), want, 'the host directory holds the tree mtools made, nothing else');
});

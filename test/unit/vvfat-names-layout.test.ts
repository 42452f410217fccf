// vvfat's 8.3/LFN name generation and FAT layout math. Expected short names are the ones qemu-img
// 7.2's vvfat gave the same names (seen with `mdir -a` on `qemu-img convert -O raw fat:floppy:DIR`);
// expected sizes and layouts are qemu-img info's virtual sizes and the boot sectors QEMU writes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { displayShortName, longNameEntries, shortName, shortNameChecksum } from '../../core/protocols/vvfat/names.ts';
import { FatTable, encodeBootSector, encodeMbr, geometryFor, layoutFor } from '../../core/protocols/vvfat/layout.ts';
import { parseFatFilename, vvfatJsonName } from '../../core/protocols/vvfat/index.ts';

/** Short names for names added to one directory in order (as QEMU's clash check sees them). */
function shortNames(names: string[]): string[] {
  const taken = new Set<string>(['QEMU VVFAT ']);
  return names.map((n) => {
    const s = shortName(n, taken)!;
    taken.add(s.toString('latin1'));
    return displayShortName(s);
  });
}

test('8.3 names: upper case, lossy names get ~N tails, clashes count up (as qemu-img vvfat)', () => {
  assert.deepEqual(
    shortNames(['readme.txt', 'README.TXT', 'verylongfilename2.text', '.bashrc', 'a.b.c', 'abcdefghijklmnopqrstuvwxyz0123456789.extension', 'a.tar.gz', 'x+y.txt', 'exactly13char', 'name with spaces', 'verylongfilename.text', '....']),
    ['README.TXT', 'README~1.TXT', 'VERYLO~1.TEX', 'BASHRC~1', 'A~1.C', 'ABCDEF~1.EXT', 'A~1.GZ', 'XY~1.TXT', 'EXACTL~1', 'NAMEWI~1', 'VERYLO~2.TEX', '~1'],
  );
});

test('8.3 names of non-ASCII names follow QEMU (low byte of the upper case; a leading dot is no extension)', () => {
  assert.deepEqual(shortNames(['Ĥello.txt', '日本語.txt', 'ÿ.x', 'ñ.txt', 'ß.md']), ['$ELLO.TXT', 'TXT~1', 'X~1', 'TXT~2', 'MD~1']);
});

test('8.3 tails grow into the base when they need more digits', () => {
  const taken = new Set<string>();
  let last = '';
  for (let i = 0; i < 11; i++) {
    const s = shortName('longname-number.txt', taken)!;
    taken.add(s.toString('latin1'));
    last = displayShortName(s);
  }
  assert.equal(last, 'LONGN~11.TXT');
});

test('long-name entries: ordinals, 0x40 on the last part, NUL then 0xFFFF, checksum in every entry', () => {
  const short = Buffer.from('ALONGF~1TEX', 'latin1');
  const sum = shortNameChecksum(short);
  const e = longNameEntries('A long file name.text', sum);
  assert.equal(e.length, 64);
  assert.equal(e[0], 0x42);
  assert.equal(e[32], 0x01);
  for (const at of [0, 32]) {
    assert.equal(e[at + 11], 0x0f);
    assert.equal(e[at + 13], sum);
    assert.equal(e.readUInt16LE(at + 26), 0);
  }
  // Part 1 holds "A long file n" (13 units), part 2 "ame.text", NUL, then 0xFFFF.
  assert.equal(e.readUInt16LE(32 + 1), 'A'.charCodeAt(0));
  assert.equal(e.readUInt16LE(32 + 30), 'n'.charCodeAt(0));
  assert.equal(e.readUInt16LE(0 + 1), 'a'.charCodeAt(0));
  assert.equal(e.readUInt16LE(0 + 18), 't'.charCodeAt(0));
  assert.equal(e.readUInt16LE(0 + 20), 0, 'NUL after the 8 units of part 2');
  assert.equal(e.readUInt16LE(0 + 22), 0xffff);
  // A 13-unit name fills one entry exactly: no NUL.
  const one = longNameEntries('exactly13char', 0);
  assert.equal(one.length, 32);
  assert.equal(one[0], 0x41);
  assert.equal(one.readUInt16LE(30), 'r'.charCodeAt(0));
  // FAT spec checksum of a known name.
  assert.equal(shortNameChecksum(Buffer.from('README  TXT', 'latin1')), 0x73);
});

test('geometry and virtual sizes equal qemu-img info for each form', () => {
  const size = (t: number, f: boolean) => geometryFor(t, f).totalSectors * 512;
  assert.equal(size(0, false), 528482304, 'fat:DIR 504 MiB');
  assert.equal(size(16, false), 528482304);
  assert.equal(size(32, false), 528482304);
  assert.equal(size(12, false), 33030144, 'fat:12: 31.5 MiB');
  assert.equal(size(0, true), 2949120, 'fat:floppy: 2.88 MB');
  assert.equal(size(12, true), 1474560, 'fat:floppy:12: 1.44 MB');
  assert.equal(size(16, true), 2949120);
  assert.throws(() => geometryFor(64, false), /Valid FAT types are only 12, 16 and 32/);
});

test("FAT12/16 layout is QEMU's: 8 KiB clusters, FAT size, root at clusters 0-1, capacity", () => {
  const hd = layoutFor(geometryFor(16, false));
  assert.equal(hd.sectorsPerCluster, 16);
  assert.equal(hd.sectorsPerFat, 252);
  assert.equal(hd.fatStart, 64);
  assert.equal(hd.rootDirStart, 568);
  assert.equal(hd.clusterLimit, 64472);
  assert.equal(hd.capacityMb, '516.06');
  const fl = layoutFor(geometryFor(0, true));
  assert.equal(fl.sectorsPerFat, 2);
  assert.equal(fl.rootDirStart, 5);
  assert.equal(fl.clusterLimit, 359);
  assert.equal(fl.capacityMb, '2.88');
  const fl12 = layoutFor(geometryFor(12, true));
  assert.equal(fl12.sectorsPerFat, 1);
  assert.equal(fl12.capacityMb, '1.44');
  const boot = encodeBootSector(hd, Buffer.from('QEMU VVFAT '));
  assert.equal(boot.readUInt16LE(22), 252);
  assert.equal(boot.readUInt32LE(32), 1032129);
  assert.equal(boot.toString('latin1', 54, 62), 'FAT16   ');
  const mbr = encodeMbr(hd);
  assert.equal(mbr[0x1c2], 0x06, 'FAT16 partition type (CHS fits)');
  assert.equal(mbr.readUInt32LE(0x1c6), 63);
  assert.equal(mbr.readUInt32LE(0x1ca), 1032129);
});

test('FAT32 layout is a valid FAT32 volume: >= 65525 clusters, FAT covers them, BPB fields', () => {
  const l = layoutFor(geometryFor(32, false));
  const clusters = l.clusterLimit - 2;
  assert.ok(clusters >= 65525, `${clusters} clusters`);
  assert.ok(l.sectorsPerFat * 128 >= clusters + 2, 'every cluster has a FAT entry');
  assert.equal((l.clusterBase + 2 * l.sectorsPerCluster), l.fatStart + 2 * l.sectorsPerFat, 'cluster 2 starts after the FATs');
  assert.ok(l.clusterBase * 1 + l.clusterLimit * l.sectorsPerCluster <= l.geometry.totalSectors);
  const b = encodeBootSector(l, Buffer.from('QEMU VVFAT '));
  assert.equal(b.readUInt16LE(17), 0, 'no fixed root directory');
  assert.equal(b.readUInt16LE(22), 0, '16-bit FAT size is 0');
  assert.equal(b.readUInt32LE(36), l.sectorsPerFat);
  assert.equal(b.readUInt32LE(44), 2, 'root directory at cluster 2');
  assert.equal(b.toString('latin1', 82, 90), 'FAT32   ');
  assert.equal(encodeMbr(l)[0x1c2], 0x0b);
});

test('FAT entries pack as FAT12, FAT16 and FAT32 do', () => {
  const f12 = new FatTable(12, 1);
  f12.set(2, 0xabc);
  f12.set(3, 0x123);
  assert.deepEqual([...f12.bytes.subarray(3, 6)], [0xbc, 0x3a, 0x12]);
  assert.equal(f12.get(2), 0xabc);
  assert.equal(f12.get(3), 0x123);
  const f32 = new FatTable(32, 1);
  f32.set(5, 0x0fffffff);
  assert.equal(f32.bytes.readUInt32LE(20), 0x0fffffff);
});

test('fat: filenames parse as QEMU 7.2 parses them (flags anywhere, dir after the last colon, no label)', () => {
  assert.deepEqual(parseFatFilename('fat:d1'), { dir: 'd1', 'fat-type': 0, floppy: false, rw: false });
  assert.deepEqual(parseFatFilename('fat:floppy:rw:12:/x/y'), { dir: '/x/y', 'fat-type': 12, floppy: true, rw: true });
  assert.deepEqual(parseFatFilename('fat:32:label=HELLO:d1'), { dir: 'd1', 'fat-type': 32, floppy: false, rw: false });
  assert.deepEqual(parseFatFilename('fat:rw:c:\\dir'), { dir: 'c:\\dir', 'fat-type': 0, floppy: false, rw: true });
  assert.equal(
    vvfatJsonName({ dir: 'd1', 'fat-type': 0, floppy: false, rw: false }),
    'json:{"fat-type": 0, "dir": "d1", "driver": "vvfat", "floppy": false, "rw": false}',
  );
});

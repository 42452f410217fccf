// vvfat rw reads back what a guest made of the volume (core/protocols/vvfat/fatparse.ts) before it
// commits anything: a volume Platter built reads back as the host tree, and every way a FAT can be
// broken (a chain leaving the volume, a loop, a cluster shared by two files, a size its chain cannot
// hold, a name twice in a directory) is reported as inconsistent instead of being committed.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/qemu.ts';
import { scanTree } from '../../core/protocols/vvfat/tree.ts';
import { geometryFor, layoutFor, FatTable, SECTOR } from '../../core/protocols/vvfat/layout.ts';
import { VvfatNode } from '../../core/protocols/vvfat/node.ts';
import { InconsistentVolume, readGuestTree } from '../../core/protocols/vvfat/fatparse.ts';

const tmp = tempDir('platter-vvfat-unit-');
after(() => tmp.cleanup());
const root = tmp.path('tree');
mkdirSync(join(root, 'dir/sub'), { recursive: true });
writeFileSync(join(root, 'a.txt'), 'a'.repeat(20000));
writeFileSync(join(root, 'b long name.txt'), 'b');
writeFileSync(join(root, 'dir/sub/c'), 'c');
writeFileSync(join(root, 'empty'), '');

for (const fatType of [12, 16, 32] as const) {
  test(`FAT${fatType}: the volume reads back as the host tree; broken FATs are inconsistent`, async () => {
    const l = layoutFor(geometryFor(fatType, fatType !== 16));
    const v = await scanTree(root, l, Buffer.from('QEMU VVFAT '), { warn: () => {} });
    const node = new VvfatNode(v, Buffer.from('QEMU VVFAT '), 'json:{}');
    const tree = await readGuestTree(l, (o, n) => node.read(o, n));
    const files = [...tree].filter(([, w]) => w.kind === 'file').map(([k, w]) => [k, w.kind === 'file' ? w.size : 0]);
    assert.deepEqual(new Map(files as [string, number][]), new Map([['a.txt', 20000], ['b long name.txt', 1], ['dir/sub/c', 1], ['empty', 0]]));
    assert.ok(tree.get('dir/sub')?.kind === 'dir');

    const a = v.mappings.find((m) => m.rel === 'a.txt')!;
    const c = v.mappings.find((m) => m.rel === 'dir/sub/c')!;
    /** Read the volume with FAT entries changed. */
    const withFat = (edit: (f: FatTable) => void) => {
      const f = new FatTable(fatType, l.sectorsPerFat);
      v.fat.bytes.copy(f.bytes);
      edit(f);
      return (o: number, n: number) =>
        node.read(o, n).then((b) => {
          const fatAt = l.fatStart * SECTOR;
          if (o === fatAt && n === f.bytes.length) return Buffer.from(f.bytes);
          return b;
        });
    };
    const eoc = fatType === 12 ? 0xfff : fatType === 16 ? 0xffff : 0x0fffffff;
    const cases: [string, (f: FatTable) => void, RegExp][] = [
      ['a chain into a cluster past the end', (f) => f.set(a.begin, f.entries - 1), /outside the volume/],
      ['a loop', (f) => f.set(a.end - 1, a.begin), /also used by a\.txt/],
      ['a cluster shared by two files', (f) => f.set(a.begin, c.begin), /also used by/],
      ['a chain shorter than the size', (f) => f.set(a.begin, eoc), /is 20000 bytes but has/],
      ['a free cluster inside a chain', (f) => f.set(a.begin, 0), /cluster 0 is outside the volume/],
    ];
    for (const [what, edit, why] of cases) {
      await assert.rejects(readGuestTree(l, withFat(edit)), (e: unknown) => e instanceof InconsistentVolume && why.test((e as Error).message), what);
    }
  });
}

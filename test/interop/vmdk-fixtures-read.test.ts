// Every vmdk fixture (QEMU-, VMware-, bximage- and VMDKstream-made) reads byte for byte as
// `qemu-img convert -O raw` did (raw_md5 / raw_data_ranges_md5 in fixtures.json), answers
// `qemu-img info --output=json` format-specific data the same way, and the fuzzed afl9.vmdk is
// refused with QEMU's words.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { openImage } from '../../core/drivers/open.ts';
import { BlockError } from '../../core/errors.ts';
import { fixture, fixtureFacts, fixtureById, md5, SKIP_NO_FIXTURES, tempDir, FIXTURES } from '../helpers/qemu.ts';

/** A fixture's image path; sets that contain gzipped files are unpacked together into `dir`. */
function fixtureSet(f: any, dir: string): string {
  if (!f.files.some((x: any) => x.path.endsWith('.gz'))) return join(FIXTURES, f.open);
  for (const file of f.files) {
    const rel = String(file.path).replace(/\.gz$/, '');
    const p = fixture(rel, dir);
    if (!p.startsWith(dir)) copyFileSync(p, join(dir, basename(p)));
  }
  return join(dir, basename(f.open));
}

const vmdkFixtures = SKIP_NO_FIXTURES ? [] : fixtureFacts().filter((f) => f.format === 'vmdk' && f.raw_md5);

test('reads every small vmdk fixture as qemu-img convert -O raw does (raw md5)', { skip: SKIP_NO_FIXTURES }, async () => {
  assert.ok(vmdkFixtures.length >= 8, 'expected the generated vmdk fixtures');
  const t = tempDir();
  try {
    for (const f of vmdkFixtures) {
      const node = await openImage(fixtureSet(f, t.dir), { readOnly: true });
      try {
        assert.equal(node.format, 'vmdk', `${f.id} probes as vmdk`);
        assert.equal(node.size, f.virtual_size, `${f.id} virtual size`);
        assert.equal(md5(await node.read(0, node.size)), f.raw_md5, `${f.id} content`);
      } finally {
        await node.close();
      }
    }
  } finally {
    t.cleanup();
  }
});

test('format-specific info matches qemu-img info --output=json for every vmdk fixture', { skip: SKIP_NO_FIXTURES }, async () => {
  const t = tempDir();
  try {
    for (const f of [...vmdkFixtures, fixtureById('qemu-iotests/iotest-version3.vmdk')]) {
      const node = await openImage(fixtureSet(f, t.dir), { readOnly: true, noBacking: true });
      try {
        const info = await node.info();
        const expected = f.qemu_info['format-specific'];
        const got = structuredClone(info.formatSpecific) as any;
        // qemu-img names extents relative to where it ran; compare base names.
        for (const e of got.data.extents) e.filename = basename(e.filename);
        assert.deepEqual(got, expected, `${f.id} format-specific`);
        assert.deepEqual(Object.keys(got.data), Object.keys(expected.data), `${f.id} key order`);
        assert.equal(info.clusterSize, f.qemu_info['cluster-size'], `${f.id} cluster size`);
        if (f.qemu_info['backing-filename']) assert.equal(node.impl.backingFile?.filename, f.qemu_info['backing-filename']);
      } finally {
        await node.close();
      }
    }
  } finally {
    t.cleanup();
  }
});

test('reads the VMware-made version 3 stream (iotest-version3.vmdk) like qemu-img: every data range md5 and zeros elsewhere', { skip: SKIP_NO_FIXTURES }, async () => {
  const f = fixtureById('qemu-iotests/iotest-version3.vmdk');
  const node = await openImage(join(FIXTURES, f.open), { readOnly: true });
  try {
    assert.equal(node.size, f.virtual_size);
    for (const [off, len, sum] of f.raw_data_ranges_md5 as [number, number, string][]) {
      assert.equal(md5(await node.read(off, len)), sum, `range at ${off}`);
    }
    // Between data ranges block status says zero (no backing) and reads are zeros.
    const [o0, l0] = f.raw_data_ranges_md5[0];
    const gap = o0 + l0;
    const st = await node.blockStatus(gap + 65536, 65536);
    assert.equal(st.allocated, false);
    assert.equal(st.zero, true);
    assert.ok((await node.read(gap + 65536, 65536)).every((b) => b === 0));
    const first = await node.blockStatus(0, 4096);
    assert.equal(first.data, true);
    assert.equal(first.compressed, true);
  } finally {
    await node.close();
  }
});

test('refuses the fuzzed afl9.vmdk with qemu-img\'s error "L1 size too big"', { skip: SKIP_NO_FIXTURES }, async () => {
  const f = fixtureById('qemu-iotests/afl9.vmdk');
  const path = join(FIXTURES, f.open);
  await assert.rejects(openImage(path, { readOnly: true, format: 'vmdk' }), (e: unknown) => {
    assert.ok(e instanceof BlockError);
    assert.equal(e.kind, 'InvalidImage');
    assert.match(e.message, /^Could not open '.*afl9\.vmdk': L1 size too big$/);
    assert.ok(String(f.qemu_error).endsWith('L1 size too big'));
    return true;
  });
});

test('reads a child vmdk through its parent (parentFileNameHint, parent CID checked) as qemu-img does', { skip: SKIP_NO_FIXTURES }, async () => {
  const f = fixtureById('generated/vmdk-child.vmdk');
  const node = await openImage(join(FIXTURES, f.open), { readOnly: true });
  try {
    assert.equal(node.backing?.format, 'vmdk');
    assert.equal(md5(await node.read(0, node.size)), f.raw_md5);
    const st = await node.blockStatus(4096, 4096);
    assert.equal(st.allocated, true, 'the child allocated the whole first grain (copy-on-write)');
    const hole = await node.blockStatus(1 << 20, 65536);
    assert.equal(hole.allocated, false);
    assert.equal(hole.zero, false, 'unallocated with a backing file: not known to be zero');
  } finally {
    await node.close();
  }
});

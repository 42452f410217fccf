// qcow2 images made by qemu-img/qemu-io (the shared fixtures) read through Platter exactly as
// QEMU reads them: md5 of the whole guest content equals `qemu-img convert -O raw` (raw_md5),
// each internal snapshot equals `qemu-img convert -l` (snapshot_raw_md5), `check` reports the
// figures `qemu-img check --output=json` reported, and info's format-specific block equals
// `qemu-img info --output=json`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openImage } from '../../core/drivers/open.ts';
import { fixture, fixtureFacts, md5, tempDir, SKIP_NO_FIXTURES, SKIP_NO_QEMU, runOk } from '../helpers/qemu.ts';

const quiet = () => {};
const facts = SKIP_NO_FIXTURES ? [] : fixtureFacts().filter((f) => f.format === 'qcow2' && !String(f.id).includes('luks'));

for (const f of facts) {
  test(`reads ${f.id} like qemu-img convert -O raw, check and info (qemu-img check/info --output=json)`, { skip: SKIP_NO_FIXTURES }, async () => {
    const t = tempDir();
    try {
      const path = fixture(f.id, t.dir);
      const node = await openImage(path, { readOnly: true, warn: quiet });
      try {
        assert.equal(node.format, 'qcow2');
        assert.equal(node.size, f.virtual_size);
        assert.equal(md5(await node.read(0, node.size)), f.raw_md5);

        const top = node.impl;
        const info = await node.info();
        assert.deepEqual(info.formatSpecific?.data, f.qemu_info['format-specific'].data);
        assert.equal(info.clusterSize, f.qemu_info['cluster-size']);

        const r = await top.check!(undefined);
        const q = f.qemu_check;
        assert.equal(r.corruptions, q.corruptions ?? 0);
        assert.equal(r.leaks, q.leaks ?? 0);
        assert.equal(r.imageEndOffset, q['image-end-offset']);
        assert.equal(r.totalClusters, q['total-clusters']);
        assert.equal(r.allocatedClusters, q['allocated-clusters']);
        assert.equal(r.fragmentedClusters, q['fragmented-clusters'] ?? 0);
        assert.equal(r.compressedClusters, q['compressed-clusters'] ?? 0);

        const snaps = f.snapshot_raw_md5 as Record<string, string> | undefined;
        const listed = await top.snapshots!.list();
        assert.deepEqual(
          listed.map((s) => ({ id: s.id, name: s.name })),
          (f.qemu_info.snapshots ?? []).map((s: { id: string; name: string }) => ({ id: s.id, name: s.name })),
        );
        for (const [name, sum] of Object.entries(snaps ?? {})) {
          const view = await top.snapshots!.openView(name);
          assert.equal(md5(await view.read(0, view.size)), sum, `snapshot ${name}`);
        }
      } finally {
        await node.close();
      }
    } finally {
      t.cleanup();
    }
  });
}

test('block status of a qemu-written image matches qemu-img map (data/zero/offset per extent)', { skip: SKIP_NO_FIXTURES || SKIP_NO_QEMU }, async () => {
  const f = fixtureFacts().find((x) => x.id === 'generated/qcow2-v3.qcow2');
  const node = await openImage(fixture(f.id), { readOnly: true, warn: quiet });
  // qemu-img map run here, not the recorded facts: whether the file's unwritten tail of a data
  // cluster reads as a hole ("zero": true) depends on the filesystem the fixture lies on.
  const liveMap = JSON.parse(runOk('qemu-img', ['map', '--output=json', fixture(f.id)]));
  try {
    for (const m of liveMap as { start: number; length: number; zero: boolean; data: boolean; offset?: number }[]) {
      let pos = m.start;
      while (pos < m.start + m.length) {
        const st = await node.blockStatus(pos, m.start + m.length - pos);
        assert.equal(st.data, m.data, `data at ${pos}`);
        assert.equal(st.zero, m.zero, `zero at ${pos}`);
        if (m.offset !== undefined && m.data) assert.equal(st.hostOffset, m.offset + (pos - m.start), `offset at ${pos}`);
        pos += st.length;
      }
    }
  } finally {
    await node.close();
  }
});

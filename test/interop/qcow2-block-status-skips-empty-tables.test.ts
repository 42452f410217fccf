// qcow2 block status over guest ranges whose L1 entries have no L2 table: one call covers the
// whole empty stretch (a table at a time), so walking a huge sparse image of 512-byte clusters
// takes a few calls instead of minutes; the extents still match `qemu-img map`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openImage } from '../../core/drivers/open.ts';
import { qemuImg, qemuImgJson, qemuIo, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';

const GiB = 1024 ** 3;

interface MapEntry {
  start: number;
  length: number;
  data: boolean;
  zero: boolean;
}

test('qcow2 block status of a 16 GiB image of 512-byte clusters walks its empty L2 tables in a few calls, as qemu-img map reports', { skip: SKIP_NO_QEMU, timeout: 60_000 }, async () => {
  const t = tempDir();
  try {
    const path = t.path('big.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', path, '16G');
    // Data near the start and near the end; everything between has no L2 table.
    qemuIo('-f', 'qcow2', '-c', 'write -P 0x5a 0 4k', '-c', `write -P 0x33 ${10 * GiB} 1k`, path);
    const node = await openImage(path, { format: 'qcow2', readOnly: true, warn: () => {} });
    try {
      const ours: MapEntry[] = [];
      let calls = 0;
      for (let pos = 0; pos < node.size; ) {
        const st = await node.blockStatus(pos, node.size - pos);
        calls++;
        assert.ok(st.length > 0, `block status at ${pos} made no progress`);
        const last = ours[ours.length - 1];
        if (last && last.data === st.data && last.zero === st.zero && !st.data) last.length += st.length;
        else if (last && last.data && st.data && last.start + last.length === pos) last.length += st.length;
        else ours.push({ start: pos, length: st.length, data: st.data, zero: st.zero });
        pos += st.length;
      }
      assert.ok(calls <= 6, `expected a handful of block status calls, made ${calls}`);
      const theirs = qemuImgJson<MapEntry[]>('map', '-f', 'qcow2', path).map((e) => ({ start: e.start, length: e.length, data: e.data, zero: e.zero }));
      assert.deepEqual(ours, theirs);
    } finally {
      await node.close();
    }
  } finally {
    t.cleanup();
  }
});

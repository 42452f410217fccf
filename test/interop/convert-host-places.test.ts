// Convert's direct path (core/jobs/convert.ts): data is read where block status says it lies
// verbatim (BlockStatus.hostNode) and written where reserve mapped it (Reservation.host). Proves
// that drivers name only ranges their own read path would read as they are, that a malformed L2 entry
// still fails convert with the driver's error (the direct path falls back), and that a target
// written through Reservation.host passes `qemu-img check` and `qemu-img compare`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tempDir, qemuImg, run, SKIP_NO_QEMU } from '../helpers/qemu.ts';
import { openImage } from '../../core/drivers/open.ts';
import { convert } from '../../core/jobs/convert.ts';
import { defaultEnv } from '../../core/jobs/common.ts';
import { qemuImage, qcow2FirstL2, Q2_COPIED } from '../security/craft.ts';

const KiB = 1024;

test('block status of qcow2, raw, vdi, qed, qcow and vpc names the file and offset of plain data, and those bytes are the guest bytes', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    for (const format of ['qcow2', 'raw', 'vdi', 'qed', 'qcow', 'vpc']) {
      const path = qemuImage(t.path(`a.${format}`), format, '8M', { data: true });
      const node = await openImage(path, { format, readOnly: true });
      try {
        const st = await node.blockStatus(4 << 20, 64 * KiB);
        assert.equal(st.data, true, `${format}: data at 4 MiB`);
        assert.ok(st.hostNode, `${format}: no host node for plain data`);
        assert.equal(st.hostNode, node.file, `${format}: the data is in the image's file`);
        const direct = await st.hostNode.read(st.hostOffset!, st.length);
        assert.deepEqual(direct, await node.read(4 << 20, st.length), `${format}: the named bytes differ from the guest bytes`);
        // 2.5 MiB: outside every format's allocation unit holding data (vpc blocks are 2 MiB).
        const hole = await node.blockStatus(2.5 * (1 << 20), 64 * KiB);
        assert.equal(hole.hostNode, undefined, `${format}: a hole names no host bytes`);
      } finally {
        await node.close();
      }
    }
  } finally {
    t.cleanup();
  }
});

test('qcow2 block status names no host node for an L2 entry past the end of the file, and convert fails with the read error', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const path = qemuImage(t.path('bad.qcow2'), 'qcow2', '8M', { data: true });
    const b = readFileSync(path);
    // First data cluster: COPIED, 1 TiB into a file of a few hundred KiB.
    b.writeBigUInt64BE(Q2_COPIED | (1n << 40n), qcow2FirstL2(b));
    writeFileSync(path, b);
    const node = await openImage(path, { format: 'qcow2', readOnly: true });
    try {
      const st = await node.blockStatus(0, 64 * KiB);
      assert.equal(st.data, true);
      assert.equal(st.hostOffset, 2 ** 40, 'map still reports the offset, as qemu-img map does');
      assert.equal(st.hostNode, undefined, 'a range outside the file must not be read directly');
    } finally {
      await node.close();
    }
    const out = t.path('out.qcow2');
    await assert.rejects(
      convert({ sources: [{ filename: path, format: 'qcow2' }], target: { filename: out, format: 'qcow2' } }, { ...defaultEnv(), warn: () => {} }),
      /points past the end of the file/,
    );
    assert.equal(existsSync(out), false, 'the failed target was left behind');
    assert.deepEqual(readFileSync(path), b, 'the source changed');
  } finally {
    t.cleanup();
  }
});

test('a fresh qcow2 target reserves contiguous owned clusters; data written at Reservation.host reads back and passes qemu-img check and compare', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const path = t.path('t.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', path, '16M');
    const data = Buffer.alloc(1 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0xff;
    const node = await openImage(path, { format: 'qcow2', readOnly: false, fileOptions: { cache: 'unsafe' } });
    try {
      const res = await node.reserve(3 << 20, data.length);
      assert.ok(res?.host, 'a fresh write-back target maps a 1 MiB range contiguously');
      await res.host.node.write(res.host.offset, data);
      assert.deepEqual(await node.read(3 << 20, data.length), data);
      // A second range is mapped after the first (guest order = host order; the first reserve
      // also placed the L2 table, after its data).
      const next = await node.reserve(4 << 20, data.length);
      assert.ok(next?.host && next.host.offset >= res.host.offset + data.length, `second range at ${next?.host?.offset}`);
      await next.host.node.write(next.host.offset, data);
    } finally {
      await node.close();
    }
    assert.equal(run('qemu-img', ['check', path]).status, 0, 'qemu-img check found errors or leaks');
    const raw = t.path('t.raw');
    qemuImg('create', '-q', '-f', 'raw', raw, '16M');
    const fd = Buffer.alloc(16 << 20);
    data.copy(fd, 3 << 20);
    data.copy(fd, 4 << 20);
    writeFileSync(raw, fd);
    assert.equal(run('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', path, raw]).status, 0, 'qemu-img compare differs');
  } finally {
    t.cleanup();
  }
});

test('reserve declines to name host clusters when the image keeps metadata written through (no cache=unsafe)', { skip: SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const path = t.path('w.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', path, '4M');
    const node = await openImage(path, { format: 'qcow2', readOnly: false });
    try {
      assert.equal(await node.reserve(0, 1 << 20), undefined);
    } finally {
      await node.close();
    }
  } finally {
    t.cleanup();
  }
});

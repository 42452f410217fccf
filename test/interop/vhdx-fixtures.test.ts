// Every vhdx fixture opens and reads through Platter as qemu-img 7.2 sees it (md5 of
// `qemu-img convert -O raw`, `qemu-img info` virtual size); the dirty-log image is refused
// read-only with qemu-img's message and, opened read-write, is replayed to the same guest content
// and the same `qemu-img check` verdict as `qemu-img check -r all`; differencing is refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, readFileSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { BlockError } from '../../core/errors.ts';
import { streamMd5, verifyFixtureContent } from '../helpers/fixture-content.ts';
import { fixture, fixtureFacts, fixtureById, HAVE_FIXTURES, qemuImg, run, SKIP_NO_FIXTURES, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';

const facts = HAVE_FIXTURES ? fixtureFacts().filter((f) => f.format === 'vhdx') : [];
const DIRTY = 'qemu-iotests/iotest-dirtylog-10G-4M.vhdx';

const unpack = (f: any, dir: string) => fixture(f.open, dir);

test('vhdx fixtures read with the md5 and virtual size qemu-img reports (qemu-img convert -O raw, qemu-img info)', { skip: SKIP_NO_FIXTURES }, async () => {
  const t = tempDir();
  try {
    for (const f of facts.filter((x) => x.qemu_opens && !x.replay_log_first)) {
      const path = unpack(f, t.dir);
      const node = await openImage(path, { readOnly: true, format: 'vhdx' });
      try {
        await verifyFixtureContent(node, f, 'vhdx', path, t.dir);
      } finally {
        await node.close();
      }
    }
  } finally {
    t.cleanup();
  }
});

test('a differencing VHDX is refused as qemu-img refuses it (Operation not supported)', { skip: SKIP_NO_FIXTURES }, async () => {
  const t = tempDir();
  try {
    const f = fixtureById('dissect.hypervisor/differencing.avhdx');
    await assert.rejects(openImage(unpack(f, t.dir), { readOnly: true, format: 'vhdx' }), (e: unknown) => e instanceof BlockError && e.kind === 'Unsupported' && e.message.includes('Operation not supported'));
  } finally {
    t.cleanup();
  }
});

test('a dirty log is refused read-only with the message of qemu-img info, and the file is unchanged', { skip: SKIP_NO_FIXTURES }, async () => {
  const t = tempDir();
  try {
    const f = fixtureById(DIRTY);
    const path = unpack(f, t.dir);
    const before = createHash('md5').update(readFileSync(path)).digest('hex');
    const reason = String(f.qemu_error_readonly).replace(/^qemu-img: Could not open '[^']*': /, '').replace(/'[^']*'/, `'${path}'`);
    await assert.rejects(openImage(path, { readOnly: true, format: 'vhdx' }), (e: unknown) => e instanceof BlockError && e.message.endsWith(reason));
    assert.equal(createHash('md5').update(readFileSync(path)).digest('hex'), before);
  } finally {
    t.cleanup();
  }
});

test('a read-write open replays a dirty log like qemu-img check -r all (qemu-img compare, qemu-img check)', { skip: SKIP_NO_FIXTURES || SKIP_NO_QEMU }, async () => {
  const t = tempDir();
  try {
    const f = fixtureById(DIRTY);
    const src = unpack(f, t.dir);
    const ours = t.path('ours.vhdx');
    const theirs = t.path('theirs.vhdx');
    copyFileSync(src, ours);
    copyFileSync(src, theirs);
    run('qemu-img', ['check', '-r', 'all', theirs]);
    const node = await openImage(ours, { readOnly: false, format: 'vhdx' });
    try {
      const [o, l, h] = f.raw_data_ranges_md5[0];
      assert.equal(await streamMd5(node, o, l), h);
      const check = await node.impl.check!(undefined);
      assert.equal(check.corruptionsFixed, 1, 'the replay counts as one repaired corruption, as qemu-img check -r all reports');
    } finally {
      await node.close();
    }
    qemuImg('check', ours);
    assert.match(qemuImg('compare', '-f', 'vhdx', '-F', 'vhdx', ours, theirs), /Images are identical/);
  } finally {
    t.cleanup();
  }
});

// Every vhdx fixture opens and reads through Platter as qemu-img 7.2 sees it (md5 of
// `qemu-img convert -O raw`, `qemu-img info` virtual size); the dirty-log image is refused
// read-only with qemu-img's message and, opened read-write, is replayed to the same guest content
// and the same `qemu-img check` verdict as `qemu-img check -r all`; differencing is refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, readFileSync } from 'node:fs';
import { openImage } from '../../core/block/open.ts';
import { BlockError } from '../../core/errors.ts';
import { fixture, fixtureFacts, fixtureById, HAVE_FIXTURES, qemuImg, run, SKIP_NO_FIXTURES, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';

const CHUNK = 16 << 20;
const facts = HAVE_FIXTURES ? fixtureFacts().filter((f) => f.format === 'vhdx') : [];
const DIRTY = 'qemu-iotests/iotest-dirtylog-10G-4M.vhdx';

async function streamMd5(node: Awaited<ReturnType<typeof openImage>>, offset: number, length: number): Promise<string> {
  const h = createHash('md5');
  for (let p = 0; p < length; p += CHUNK) h.update(await node.read(offset + p, Math.min(CHUNK, length - p)));
  return h.digest('hex');
}

/** Above this, hashing the whole disk costs seconds: check the recorded nonzero runs instead
 *  (fixtures.json raw_nonzero_runs, which qemu-img's raw output gave). */
const MD5_LIMIT = 64 << 20;

/** Runs of one fill byte read as that byte; everything between reads as zeros (zero extents
 *  reported by block status are taken as read). */
async function verifyRuns(node: Awaited<ReturnType<typeof openImage>>, runs: [number, number, string][], id: string, fmt: string, path: string, tmp: string): Promise<void> {
  let pos = 0;
  const zerosUpTo = async (end: number) => {
    while (pos < end) {
      const st = await node.blockStatus(pos, end - pos);
      if (!st.zero) {
        const n = Math.min(st.length, CHUNK);
        assert.ok((await node.read(pos, n)).equals(Buffer.alloc(n)), `${id}: zeros at ${pos}`);
        pos += n;
      } else pos += st.length;
    }
  };
  for (const [o, l, fill] of runs) {
    await zerosUpTo(o);
    if (fill === 'mixed') {
      // No hash of a mixed run is recorded: compare it with the bytes qemu-img dd reads there.
      const out = `${tmp}/run.raw`;
      run('qemu-img', ['dd', '-f', fmt, '-O', 'raw', `if=${path}`, `of=${out}`, 'bs=512', `skip=${o / 512}`, `count=${l / 512}`]);
      assert.ok((await node.read(o, l)).equals(readFileSync(out)), `${id}: mixed run at ${o}`);
      pos = o + l;
      continue;
    }
    for (let p = o; p < o + l; p += CHUNK) {
      const n = Math.min(CHUNK, o + l - p);
      assert.ok((await node.read(p, n)).equals(Buffer.alloc(n, Number(fill))), `${id}: ${fill} at ${p}`);
    }
    pos = o + l;
  }
  await zerosUpTo(node.size);
}

const unpack = (f: any, dir: string) => fixture(f.open, dir);

test('vhdx fixtures read with the md5 and virtual size qemu-img reports (qemu-img convert -O raw, qemu-img info)', { skip: SKIP_NO_FIXTURES }, async () => {
  const t = tempDir();
  try {
    for (const f of facts.filter((x) => x.qemu_opens && !x.replay_log_first)) {
      const path = unpack(f, t.dir);
      const node = await openImage(path, { readOnly: true, format: 'vhdx' });
      try {
        assert.equal(node.size, f.virtual_size, `${f.id}: virtual size`);
        if (f.raw_md5 && node.size <= MD5_LIMIT) assert.equal(await streamMd5(node, 0, node.size), f.raw_md5, `${f.id}: md5`);
        else if (f.raw_md5) await verifyRuns(node, f.raw_nonzero_runs, f.id, 'vhdx', path, t.dir);
        for (const [o, l, h] of f.raw_data_ranges_md5 ?? []) assert.equal(await streamMd5(node, o, l), h, `${f.id}: md5 of [${o}, +${l})`);
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

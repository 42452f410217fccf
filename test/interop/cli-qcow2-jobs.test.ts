// Interop for the jobs that need a format with backing files and snapshots (qcow2): platter
// commit / rebase / snapshot / check / info --backing-chain / convert -B / amend, checked with
// qemu-img (compare, map, info, snapshot -l, check) and qemu-io on the same files.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tempDir, SKIP_NO_QEMU } from '../helpers/qemu.ts';
import { platterInProcess, qemuImgRaw, qemuImg, qemuWrite } from './harness.ts';

const SKIP = SKIP_NO_QEMU;
const KiB = 1024;

/** Emptying the overlay needs the driver's makeEmpty (core/block/types.ts); until the qcow2 driver
 *  has it, commit keeps the overlay's data and fails with qemu-img's "Could not empty" words. */
function qcow2MakeEmptyTodo(): string | undefined {
  const src = readFileSync(new URL('../../core/formats/qcow2/node.ts', import.meta.url), 'utf8');
  return /\bmakeEmpty\s*\(/.test(src) ? undefined : 'the qcow2 driver does not implement makeEmpty yet';
}

describe('qcow2 jobs: platter vs qemu-img', { skip: SKIP }, () => {
  let t: ReturnType<typeof tempDir>;
  before(() => {
    t = tempDir();
  });
  after(() => t.cleanup());

  /** base (pattern 1 at 0, pattern 2 at 256k) <- top (pattern 3 at 64k). */
  function chain(prefix: string): { base: string; top: string } {
    const base = t.path(`${prefix}-base.qcow2`);
    const top = t.path(`${prefix}-top.qcow2`);
    qemuImg('create', '-f', 'qcow2', base, '1M');
    qemuWrite(base, 'qcow2', [[0, 128 * KiB, 1], [256 * KiB, 64 * KiB, 2]]);
    qemuImg('create', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top);
    qemuWrite(top, 'qcow2', [[64 * KiB, 64 * KiB, 3], [256 * KiB, 4 * KiB, -1]]);
    return { base, top };
  }

  test('info --backing-chain --output=json equals qemu-img info --backing-chain', async () => {
    const { top } = chain('info');
    const q = JSON.parse(qemuImg('info', '--backing-chain', '--output=json', top));
    const p = await platterInProcess(['info', '--backing-chain', '--output=json', top]);
    assert.equal(p.status, 0, p.stderr);
    assert.deepEqual(JSON.parse(p.stdout), q);
    assert.equal((await platterInProcess(['info', '--backing-chain', top])).stdout, qemuImg('info', '--backing-chain', top));
  });

  test('map of an overlay (depths, zero clusters) equals qemu-img map, JSON and human', async () => {
    const { top } = chain('map');
    assert.equal((await platterInProcess(['map', '--output=json', top])).stdout, qemuImg('map', '--output=json', top));
    assert.equal((await platterInProcess(['map', top])).stdout, qemuImg('map', top));
  });

  test('map of a compressed image equals qemu-img 7.2 map (no "compressed" key; human table refused)', async () => {
    const raw = t.path('forc.raw');
    qemuImg('create', '-f', 'raw', raw, '1M');
    qemuWrite(raw, 'raw', [[128 * KiB, 64 * KiB, 5], [512 * KiB, 64 * KiB, 6]]);
    const c = t.path('c.qcow2');
    qemuImg('convert', '-c', '-f', 'raw', '-O', 'qcow2', raw, c);
    assert.equal((await platterInProcess(['map', '--output=json', c])).stdout, qemuImg('map', '--output=json', c));
    const q = qemuImgRaw('map', c);
    const p = await platterInProcess(['map', c]);
    assert.equal(p.status, q.status);
    assert.equal(p.stderr, q.stderr.replace(/^qemu-img:/gm, 'platter:'));
  });

  test('check --output=json of a clean image equals qemu-img check, exit 0', async () => {
    const { top } = chain('check');
    const q = qemuImgRaw('check', '--output=json', top);
    const p = await platterInProcess(['check', '--output=json', top]);
    assert.equal(p.status, q.status);
    assert.deepEqual(JSON.parse(p.stdout), JSON.parse(q.stdout));
    assert.equal((await platterInProcess(['check', top])).stdout, qemuImg('check', top));
  });

  test('commit copies the overlay into its base and empties the overlay (qemu-img compare, map)', { todo: qcow2MakeEmptyTodo() }, async () => {
    const { base, top } = chain('commit');
    const before = t.path('commit-before.raw');
    qemuImg('convert', '-O', 'raw', top, before);
    const r = await platterInProcess(['commit', top]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'Image committed.\n');
    assert.equal(qemuImgRaw('compare', '-F', 'raw', base, before).status, 0);
    assert.equal(qemuImgRaw('compare', '-F', 'raw', top, before).status, 0);
    assert.equal(qemuImgRaw('check', base).status, 0);
    const topMap = JSON.parse(qemuImg('map', '--output=json', top)) as { depth: number; data: boolean }[];
    assert.ok(topMap.every((e) => e.depth > 0 || !e.data), JSON.stringify(topMap));
  });

  test('commit -d keeps the overlay data', async () => {
    const { top } = chain('commitd');
    const r = await platterInProcess(['commit', '-d', top]);
    assert.equal(r.status, 0, r.stderr);
    const topMap = JSON.parse(qemuImg('map', '--output=json', top)) as { start: number; depth: number; data: boolean }[];
    assert.ok(topMap.some((e) => e.depth === 0 && e.data && e.start === 64 * KiB), JSON.stringify(topMap));
  });

  test('commit of an image without backing fails like qemu-img commit', async () => {
    const lone = t.path('lone.qcow2');
    qemuImg('create', '-f', 'qcow2', lone, '1M');
    const q = qemuImgRaw('commit', lone);
    const p = await platterInProcess(['commit', lone]);
    assert.equal(p.status, q.status);
    assert.equal(p.stderr, q.stderr.replace(/^qemu-img:/gm, 'platter:'));
  });

  test('safe rebase onto a different base keeps what the guest sees (qemu-img compare); -u only rewrites the header', async () => {
    const { top } = chain('rebase');
    const other = t.path('rebase-other.qcow2');
    qemuImg('create', '-f', 'qcow2', other, '1M');
    qemuWrite(other, 'qcow2', [[0, 64 * KiB, 9]]);
    const before = t.path('rebase-before.raw');
    qemuImg('convert', '-O', 'raw', top, before);
    const r = await platterInProcess(['rebase', '-b', other, '-F', 'qcow2', top]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(qemuImg('info', '--output=json', top))['backing-filename'], other);
    const cmp = qemuImgRaw('compare', '-F', 'raw', top, before);
    assert.equal(cmp.status, 0, cmp.stdout);
    assert.equal(qemuImgRaw('check', top).status, 0);
    const u = await platterInProcess(['rebase', '-u', '-b', 'elsewhere.qcow2', '-F', 'qcow2', top]);
    assert.equal(u.status, 0, u.stderr);
    const info = JSON.parse(qemuImg('info', '--output=json', top));
    assert.equal(info['backing-filename'], 'elsewhere.qcow2');
  });

  test('snapshot -c / -l / -a / -d: qemu-img snapshot -l sees the same table platter prints', async () => {
    const img = t.path('snap.qcow2');
    qemuImg('create', '-f', 'qcow2', img, '1M');
    qemuWrite(img, 'qcow2', [[0, 64 * KiB, 1]]);
    assert.equal((await platterInProcess(['snapshot', '-c', 'first', img])).status, 0);
    qemuWrite(img, 'qcow2', [[0, 64 * KiB, 2]]);
    const list = await platterInProcess(['snapshot', '-l', img]);
    assert.equal(list.stdout, qemuImg('snapshot', '-l', img));
    assert.match(list.stdout, /^Snapshot list:\nID {8}TAG {15}VM SIZE {16}DATE {5}VM CLOCK {5}ICOUNT\n1 {9}first /);
    assert.equal((await platterInProcess(['snapshot', '-a', 'first', img])).status, 0);
    const raw1 = t.path('snap1.raw');
    qemuImg('convert', '-O', 'raw', img, raw1);
    const expect = t.path('expect.raw');
    qemuImg('create', '-f', 'raw', expect, '1M');
    qemuWrite(expect, 'raw', [[0, 64 * KiB, 1]]);
    assert.equal(qemuImgRaw('compare', '-f', 'raw', '-F', 'raw', raw1, expect).status, 0);
    assert.equal((await platterInProcess(['snapshot', '-d', 'first', img])).status, 0);
    assert.equal(qemuImg('snapshot', '-l', img), '');
    assert.equal(qemuImgRaw('check', img).status, 0);
  });

  test('convert -B writes only the top layer and records the backing file (qemu-img compare, info)', async () => {
    const { base, top } = chain('convB');
    const out = t.path('convB-out.qcow2');
    const r = await platterInProcess(['convert', '-O', 'qcow2', '-B', base, '-F', 'qcow2', top, out]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(qemuImgRaw('compare', top, out).status, 0);
    const info = JSON.parse(qemuImg('info', '--output=json', out));
    assert.equal(info['backing-filename'], base);
    const m = JSON.parse(qemuImg('map', '--output=json', out)) as { start: number; length: number; depth: number; present: boolean }[];
    // Only the overlay's clusters are in the new image: the base's pattern-1 cluster at 0 is not.
    assert.ok(m.some((e) => e.start === 0 && e.depth === 1), JSON.stringify(m));
  });

  test('amend on raw is refused with qemu-img amend words', async () => {
    const raw = t.path('am.raw');
    qemuImg('create', '-f', 'raw', raw, '1M');
    const q = qemuImgRaw('amend', '-f', 'raw', '-o', 'size=2M', raw);
    const p = await platterInProcess(['amend', '-f', 'raw', '-o', 'size=2M', raw]);
    assert.equal(p.status, q.status);
    assert.equal(p.stderr, q.stderr.replace(/^qemu-img:/gm, 'platter:'));
  });
});

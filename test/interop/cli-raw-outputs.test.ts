// Interop: platter info/map/check/compare on raw images print what qemu-img 7.2 prints (human
// and --output=json), with the same exit codes. Images are made by qemu-img and qemu-io.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tempDir, SKIP_NO_QEMU } from '../helpers/qemu.ts';
import { platterInProcess, qemuImgRaw, qemuImg, qemuWrite } from './harness.ts';

const MiB = 1 << 20;

describe('platter vs qemu-img on raw images', { skip: SKIP_NO_QEMU }, () => {
  let t: ReturnType<typeof tempDir>;
  let img: string;
  let empty: string;
  before(() => {
    t = tempDir();
    img = t.path('disk.raw');
    qemuImg('create', '-f', 'raw', img, '8M');
    qemuWrite(img, 'raw', [
      [MiB, 64 * 1024, 1],
      [3 * MiB, 4096, 2],
      [5 * MiB + 512, 1000, 3],
    ]);
    empty = t.path('empty.raw');
    writeFileSync(empty, '');
  });
  after(() => t.cleanup());

  test('info --output=json equals qemu-img info --output=json', async () => {
    const q = JSON.parse(qemuImg('info', '-f', 'raw', '--output=json', img));
    const p = await platterInProcess(['info', '-f', 'raw', '--output=json', img]);
    assert.equal(p.status, 0, p.stderr);
    assert.deepEqual(JSON.parse(p.stdout), q);
  });

  test('info human text equals qemu-img info', async () => {
    const q = qemuImg('info', '-f', 'raw', img);
    const p = await platterInProcess(['info', '-f', 'raw', img]);
    assert.equal(p.stdout, q);
  });

  test('info of a zero-length file equals qemu-img info (probed raw, no warning)', async () => {
    const q = qemuImgRaw('info', empty);
    const p = await platterInProcess(['info', empty]);
    assert.equal(p.status, q.status);
    assert.equal(p.stdout, q.stdout);
    assert.equal(p.stderr, '');
  });

  test('map --output=json equals qemu-img map --output=json byte for byte', async () => {
    const q = qemuImg('map', '-f', 'raw', '--output=json', img);
    const p = await platterInProcess(['map', '-f', 'raw', '--output=json', img]);
    assert.equal(p.stdout, q);
  });

  test('map human table equals qemu-img map', async () => {
    const q = qemuImg('map', '-f', 'raw', img);
    const p = await platterInProcess(['map', '-f', 'raw', img]);
    assert.equal(p.stdout, q);
  });

  test('map --start-offset/--max-length equals qemu-img map with the same window', async () => {
    const args = ['map', '-f', 'raw', '--output=json', '--start-offset=1M', '--max-length=3M', img];
    assert.equal((await platterInProcess(args)).stdout, qemuImg(...args));
  });

  test('check on raw fails like qemu-img check: exit 63, "does not support checks"', async () => {
    for (const extra of [[], ['--output=json']]) {
      const q = qemuImgRaw('check', '-f', 'raw', ...extra, img);
      const p = await platterInProcess(['check', '-f', 'raw', ...extra, img]);
      assert.equal(q.status, 63);
      assert.equal(p.status, q.status);
      assert.equal(p.stdout, q.stdout);
      assert.equal(p.stderr, q.stderr.replace(/^qemu-img:/gm, 'platter:'));
    }
  });

  test('compare: identical, content mismatch offset, size mismatch and strict mode match qemu-img compare', async () => {
    const a = t.path('a.raw');
    const b = t.path('b.raw');
    const c = t.path('c.raw');
    qemuImg('create', '-f', 'raw', a, '2M');
    qemuImg('create', '-f', 'raw', b, '2M');
    qemuImg('create', '-f', 'raw', c, '3M');
    qemuWrite(a, 'raw', [[4096, 4096, 9]]);
    qemuWrite(b, 'raw', [[4096, 4096, 9]]);
    const cases: string[][] = [
      ['compare', '-f', 'raw', '-F', 'raw', a, b],
      ['compare', '-f', 'raw', '-F', 'raw', a, img],
      ['compare', '-f', 'raw', '-F', 'raw', a, c],
      ['compare', '-s', '-f', 'raw', '-F', 'raw', a, c],
      ['compare', '-f', 'raw', '-F', 'raw', c, a],
    ];
    qemuWrite(c, 'raw', [[4096, 4096, 9], [2 * MiB + 1536, 10, 4]]);
    for (const args of cases) {
      const q = qemuImgRaw(...args);
      const p = await platterInProcess(args);
      assert.equal(p.status, q.status, `${args.join(' ')}: ${p.stderr}`);
      assert.equal(p.stdout, q.stdout, args.join(' '));
    }
  });

  test('compare exits 2 on a missing file, as qemu-img compare does', async () => {
    const q = qemuImgRaw('compare', img, t.path('missing.raw'));
    const p = await platterInProcess(['compare', img, t.path('missing.raw')]);
    assert.equal(q.status, 2);
    assert.equal(p.status, 2);
    // qemu-img's words exactly: its own prefix over file-posix's ("Could not open 'x': Could not open 'x': ...").
    assert.equal(p.stderr.replace(/^platter: /, ''), q.stderr.replace(/^qemu-img: /, ''));
  });

  test('measure --size and measure of a raw source equal qemu-img measure', async () => {
    for (const args of [['measure', '-O', 'raw', '--size', '1G'], ['measure', '--output=json', '-O', 'raw', '-f', 'raw', img]]) {
      assert.equal((await platterInProcess(args)).stdout, qemuImg(...args));
    }
  });

  test('create prints the "Formatting" line of qemu-img create and makes the same file', async () => {
    const q = qemuImg('create', '-f', 'raw', t.path('q.raw'), '3M').replace(t.path('q.raw'), 'X');
    const p = await platterInProcess(['create', '-f', 'raw', t.path('p.raw'), '3M']);
    assert.equal(p.status, 0, p.stderr);
    assert.equal(p.stdout.replace(t.path('p.raw'), 'X'), q);
    assert.deepEqual(JSON.parse(qemuImg('info', '--output=json', '-f', 'raw', t.path('p.raw')))['virtual-size'], 3 * MiB);
  });

  test('resize +1M / --shrink -1M on raw behaves like qemu-img resize', async () => {
    const f = t.path('r.raw');
    qemuImg('create', '-f', 'raw', f, '2M');
    const grow = await platterInProcess(['resize', '-f', 'raw', f, '+1M']);
    assert.equal(grow.status, 0, grow.stderr);
    assert.equal(grow.stdout, 'Image resized.\n');
    assert.equal(JSON.parse(qemuImg('info', '--output=json', '-f', 'raw', f))['virtual-size'], 3 * MiB);
    const refused = await platterInProcess(['resize', '-f', 'raw', f, '-1M']);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /^platter: Use the --shrink option to perform a shrink operation\.\n/);
    assert.equal(JSON.parse(qemuImg('info', '--output=json', '-f', 'raw', f))['virtual-size'], 3 * MiB);
    const shrink = await platterInProcess(['resize', '-f', 'raw', '--shrink', f, '-1M']);
    assert.equal(shrink.status, 0, shrink.stderr);
    assert.equal(JSON.parse(qemuImg('info', '--output=json', '-f', 'raw', f))['virtual-size'], 2 * MiB);
  });

  test('snapshot -c on raw fails like qemu-img snapshot; -l prints nothing', async () => {
    const q = qemuImgRaw('snapshot', '-c', 's1', img);
    const p = await platterInProcess(['snapshot', '-c', 's1', img]);
    assert.equal(p.status, q.status);
    assert.equal(p.stderr, q.stderr.replace(/^qemu-img:/gm, 'platter:'));
    const l = await platterInProcess(['snapshot', '-l', img]);
    assert.equal(l.status, 0);
    assert.equal(l.stdout, qemuImg('snapshot', '-l', img));
  });
});

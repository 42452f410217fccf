// qcow2 persistent dirty bitmaps compared with QEMU: the same `qemu-img bitmap` sequence (add,
// clear, enable, disable, merge, remove, with qemu-io writes between) run by Platter and by
// qemu-img gives byte-identical images; bitmaps Platter changes or writes are read back by
// `qemu-img info` and `qemu-img check` (clean), and their bits by qemu-nbd -B plus
// `qemu-img map` of the x-dirty-bitmap export (QEMU's own reader of bitmap contents); guest
// writes Platter makes (commit) and resizes update the bitmaps as qemu-img's do; `convert
// --bitmaps` copies them as qemu-img does, refusing or skipping inconsistent ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import { tempDir, qemuImg, qemuIo, run, runOk, SKIP_NO_QEMU, have } from '../helpers/qemu.ts';
import { platterInProcess } from './harness.ts';

const SKIP = SKIP_NO_QEMU || (have('qemu-nbd') ? false : 'qemu-nbd not installed (apt-get install qemu-utils)');
const MiB = 1 << 20;

/** Dirty ranges [start, end) of bitmap `name`, as QEMU reads them: qemu-nbd exports the bitmap
 *  and qemu-img map of x-dirty-bitmap reports dirty ranges as "data": false. */
function qemuBits(img: string, name: string, dir: string): [number, number][] {
  const sock = `${dir}/nbd-${name}-${Math.random().toString(36).slice(2)}.sock`;
  runOk('qemu-nbd', ['--fork', '-r', '-f', 'qcow2', '-B', name, '-k', sock, img]);
  const map = JSON.parse(qemuImg('map', '--output=json', '--image-opts', `driver=nbd,server.type=unix,server.path=${sock},x-dirty-bitmap=qemu:dirty-bitmap:${name}`)) as { start: number; length: number; data: boolean }[];
  return map.filter((e) => !e.data).map((e) => [e.start, e.start + e.length]);
}

function bitmapsOf(img: string): unknown {
  return JSON.parse(qemuImg('info', '--output=json', img))['format-specific'].data.bitmaps ?? [];
}

function checkClean(img: string): void {
  const r = run('qemu-img', ['check', '--output=json', img]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j['corruptions'] ?? 0, 0);
  assert.equal(j['leaks'] ?? 0, 0);
}

async function platter(...args: string[]): Promise<{ status: number; stderr: string }> {
  return platterInProcess(args);
}

type Step = { bitmap: string[] } | { write: string };

test('qemu-img bitmap: Platter and qemu-img leave byte-identical images for the same operations', { skip: SKIP }, async () => {
  const t = tempDir();
  try {
    // Each step's bitmap name comes last: the image is inserted before it.
    const steps: Step[] = [
      { bitmap: ['--add', 'b0'] },
      { write: 'write 1M 1M' },
      { bitmap: ['--add', '-g', '512k', '--disable', 'b1'] },
      { write: 'write 3M 1M' },
      { bitmap: ['--clear', 'b0'] },
      { write: 'write 5M 64k' },
      { bitmap: ['--disable', 'b0'] },
      { bitmap: ['--enable', 'b1'] },
      { bitmap: ['--add', '--merge', 'b0', 'tmp'] },
      { bitmap: ['--merge', 'b1', 'tmp'] },
      { write: 'write 7M 4k' },
      { bitmap: ['--remove', 'b0'] },
      { bitmap: ['--add', '--disable', '-g', '4k', 'b0'] },
      { bitmap: ['--remove', '--add', 'tmp'] },
      { bitmap: ['--merge', 'b1', 'nope'] },
      { bitmap: ['--clear', '--merge', 'x', 'b0'] },
      { bitmap: ['--merge', 'x', 'b1'] },
    ];
    const withImage = (s: Step, img: string): Step => ('bitmap' in s ? { bitmap: [...s.bitmap.slice(0, -1), img, s.bitmap[s.bitmap.length - 1]!] } : s);
    const q = t.path('q.qcow2');
    const p = t.path('p.qcow2');
    // Both runs take the image as the next-to-last argument (before the bitmap name).
    const play = async (tool: 'qemu' | 'platter', img: string) => {
      qemuImg('create', '-q', '-f', 'qcow2', img, '10M');
      let errors = '';
      for (const s0 of steps) {
        const s = withImage(s0, img);
        if ('write' in s) qemuIo('-f', 'qcow2', '-c', s.write, img);
        else if (tool === 'qemu') errors += run('qemu-img', ['bitmap', ...s.bitmap]).stderr;
        else errors += (await platter('bitmap', ...s.bitmap)).stderr;
      }
      return errors;
    };
    const qErr = await play('qemu', q);
    const pErr = await play('platter', p);
    assert.equal(pErr.replaceAll('platter:', 'qemu-img:').replaceAll(p, q), qErr);
    assert.deepEqual(bitmapsOf(p), bitmapsOf(q));
    assert.ok(readFileSync(p).equals(readFileSync(q)), 'the images differ byte for byte');
    checkClean(p);
    for (const name of ['b0', 'b1', 'tmp']) assert.deepEqual(qemuBits(p, name, t.dir), qemuBits(q, name, t.dir), `bits of ${name}`);
    // b1 (512 KiB granularity) was added disabled and enabled before the 7M write: QEMU's reader
    // sees that write's 512 KiB and nothing else.
    assert.deepEqual(qemuBits(p, 'b1', t.dir), [[7 * MiB, 7 * MiB + 512 * 1024]]);
  } finally {
    t.cleanup();
  }
});

test('qemu-img bitmap: the errors and refusals of qemu-img, word for word', { skip: SKIP }, async () => {
  const t = tempDir();
  try {
    const img = t.path('a.qcow2');
    const mine = t.path('p.qcow2');
    const v2 = t.path('v2.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', img, '1M');
    qemuImg('create', '-q', '-f', 'qcow2', mine, '1M');
    qemuImg('create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', v2, '1M');
    const cases: string[][] = [
      ['--clear', img, 'b'],
      ['--add', '-g', '100', img, 'b'],
      ['--add', '-g', '4G', img, 'b'],
      ['--add', img, ''],
      [img, 'b'],
      ['--add', img],
      ['-g', '1k', '--remove', img, 'b'],
      ['-F', 'raw', '--remove', img, 'b'],
      ['-b', 'x', '--remove', img, 'b'],
      ['--add', '-g', 'x1', img, 'b'],
      ['--merge', 'zz', img, 'b'],
      ['--add', '--add', img, 'dup'],
      ['--add', '-g', '2147483648', img, 'big'],
    ];
    for (const c of cases) {
      const q = run('qemu-img', ['bitmap', ...c]);
      const p = await platter('bitmap', ...c.map((a) => (a === img ? mine : a)));
      assert.equal(p.stderr.replaceAll('platter:', 'qemu-img:').replaceAll(mine, img), q.stderr, c.join(' '));
      assert.equal(p.status, q.status ?? -1, c.join(' '));
    }
    assert.deepEqual(bitmapsOf(mine), bitmapsOf(img));
    // Node names differ (QEMU's are generated): compare the rest of the v2 refusal.
    const p = await platter('bitmap', '--add', v2, 'b');
    assert.match(p.stderr, /Operation add on bitmap b failed: Can't make bitmap 'b' persistent in '.*': Cannot store dirty bitmaps in qcow2 v2 files/);
  } finally {
    t.cleanup();
  }
});

test('guest writes by Platter (commit) and resize update bitmaps as qemu-img does', { skip: SKIP }, async () => {
  const t = tempDir();
  try {
    const setup = (dir: string) => {
      const base = `${dir}-base.qcow2`;
      const top = `${dir}-top.qcow2`;
      qemuImg('create', '-q', '-f', 'qcow2', base, '10M');
      qemuImg('bitmap', '--add', base, 'on');
      qemuImg('bitmap', '--add', '-g', '1M', base, 'coarse');
      qemuImg('bitmap', '--add', '--disable', base, 'off');
      qemuIo('-f', 'qcow2', '-c', 'write 0 64k', base);
      qemuImg('create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top);
      qemuIo('-f', 'qcow2', '-c', 'write 2M 100k', '-c', 'write 6M 1M', '-c', 'write -z 9M 128k', top);
      return { base, top };
    };
    const q = setup(t.path('q'));
    const p = setup(t.path('p'));
    qemuImg('commit', '-q', q.top);
    const r = await platter('commit', '-q', p.top);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(bitmapsOf(p.base), bitmapsOf(q.base));
    checkClean(p.base);
    for (const name of ['on', 'coarse', 'off']) assert.deepEqual(qemuBits(p.base, name, t.dir), qemuBits(q.base, name, t.dir), `bits of ${name} after commit`);
    assert.deepEqual(qemuBits(p.base, 'off', t.dir), [], 'a disabled bitmap records nothing');
    assert.deepEqual(qemuBits(p.base, 'on', t.dir).slice(1), [[2 * MiB, 2 * MiB + 128 * 1024], [6 * MiB, 7 * MiB], [9 * MiB, 9 * MiB + 128 * 1024]], 'the committed ranges are dirty');

    qemuImg('resize', q.base, '12M');
    const rs = await platter('resize', p.base, '12M');
    assert.equal(rs.status, 0, rs.stderr);
    assert.deepEqual(bitmapsOf(p.base), bitmapsOf(q.base));
    checkClean(p.base);
    for (const name of ['on', 'coarse']) assert.deepEqual(qemuBits(p.base, name, t.dir), qemuBits(q.base, name, t.dir), `bits of ${name} after resize`);
  } finally {
    t.cleanup();
  }
});

test('convert --bitmaps copies bitmaps as qemu-img does; inconsistent ones are refused or skipped', { skip: SKIP }, async () => {
  const t = tempDir();
  try {
    const src = t.path('src.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', src, '10M');
    qemuImg('bitmap', '--add', '-g', '512k', src, 'b1');
    qemuImg('bitmap', '--add', '--disable', src, 'b2');
    qemuIo('-f', 'qcow2', '-c', 'write 1M 1M', src);
    qemuImg('bitmap', '--add', src, 'b3');
    const q = t.path('q.qcow2');
    const p = t.path('p.qcow2');
    qemuImg('convert', '--bitmaps', '-O', 'qcow2', src, q);
    const r = await platter('convert', '--bitmaps', '-O', 'qcow2', src, p);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(bitmapsOf(p), bitmapsOf(q));
    checkClean(p);
    for (const name of ['b1', 'b2', 'b3']) assert.deepEqual(qemuBits(p, name, t.dir), qemuBits(q, name, t.dir), `bits of ${name}`);

    const raw = await platter('convert', '--bitmaps', '-O', 'raw', src, t.path('x.raw'));
    assert.equal(raw.stderr, "platter: Format driver 'raw' does not support bitmaps\n");

    // A QEMU process killed while the image was open leaves its bitmaps in use.
    run('qemu-io', ['-c', 'abort', src]);
    const broken = t.path('broken.qcow2');
    const refuse = await platter('convert', '--bitmaps', '-O', 'qcow2', src, broken);
    const qRefuse = run('qemu-img', ['convert', '--bitmaps', '-O', 'qcow2', src, broken]);
    assert.equal(refuse.stderr.replaceAll('platter:', 'qemu-img:'), qRefuse.stderr);
    const skip = await platter('convert', '--bitmaps', '--skip-broken-bitmaps', '-O', 'qcow2', src, broken);
    const qSkip = run('qemu-img', ['convert', '--bitmaps', '--skip-broken-bitmaps', '-O', 'qcow2', src, t.path('qbroken.qcow2')]);
    assert.equal(skip.stderr.replaceAll('platter:', 'qemu-img:'), qSkip.stderr);
    assert.deepEqual(bitmapsOf(broken), []);
    // Inconsistent bitmaps cannot be changed, only removed.
    copyFileSync(src, t.path('src2.qcow2'));
    for (const args of [['--clear'], ['--enable'], ['--merge', 'b1']]) {
      const c = [...args, t.path('src2.qcow2'), 'b3'];
      const qr = run('qemu-img', ['bitmap', ...c]);
      const pr = await platter('bitmap', ...c);
      assert.equal(pr.stderr.replaceAll('platter:', 'qemu-img:'), qr.stderr, c.join(' '));
    }
    const rm = await platter('bitmap', '--remove', src, 'b1');
    assert.equal(rm.status, 0, rm.stderr);
    qemuImg('bitmap', '--remove', t.path('src2.qcow2'), 'b1');
    assert.deepEqual(bitmapsOf(src), bitmapsOf(t.path('src2.qcow2')));
    checkClean(src);
  } finally {
    t.cleanup();
  }
});

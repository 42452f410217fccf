// Interop for the remaining qemu-img subcommands and global options: dd (against qemu-img dd),
// bench (its report lines), --image-opts (against qemu-img info --image-opts), --object secrets on
// a LUKS image (against qemu-img convert), and convert -l from an internal snapshot.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { SKIP_NO_QEMU, md5File } from '../helpers/qemu.ts';
import { scratchWithSource } from '../helpers/scratch-source.ts';
import { platterInProcess, qemuImgRaw, qemuImg, qemuWrite } from './harness.ts';

const KiB = 1024;

describe('platter dd, bench, --image-opts, --object, convert -l vs qemu-img', { skip: SKIP_NO_QEMU }, () => {
  const fx = scratchWithSource((src) => {
    const b = Buffer.alloc(1024 * KiB);
    for (let i = 0; i < b.length; i++) b[i] = (i * 13) & 0xff;
    writeFileSync(src, b);
  });

  test('dd bs= count= skip= makes the same file as qemu-img dd, and warns as it does when skip passes the end', async () => {
    for (const ops of [['bs=4k', 'count=100', 'skip=3'], ['bs=512', 'skip=7'], ['bs=64k', 'count=2']]) {
      const q = fx.t.path('dd.q');
      const p = fx.t.path('dd.p');
      qemuImg('dd', '-f', 'raw', '-O', 'raw', ...ops, `if=${fx.src}`, `of=${q}`);
      const r = await platterInProcess(['dd', '-f', 'raw', '-O', 'raw', ...ops, `if=${fx.src}`, `of=${p}`]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(md5File(p), md5File(q), ops.join(' '));
    }
    // skip past the end of the input (or of count blocks): an empty output, qemu-img's warning
    // (qemu-img dd goes on, as dd(1) does) and status 0.
    for (const ops of [['bs=512', 'skip=4096'], ['bs=4k', 'count=3', 'skip=5']]) {
      const q = fx.t.path('dd-past.q');
      const p = fx.t.path('dd-past.p');
      const qr = qemuImgRaw('dd', '-f', 'raw', '-O', 'raw', ...ops, `if=${fx.src}`, `of=${q}`);
      assert.equal(qr.status, 0, qr.stderr);
      const r = await platterInProcess(['dd', '-f', 'raw', '-O', 'raw', ...ops, `if=${fx.src}`, `of=${p}`]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, qr.stderr.replace(/^qemu-img: /gm, 'platter: '), ops.join(' '));
      assert.match(r.stderr, /cannot skip to specified offset/);
      assert.equal(readFileSync(p).length, 0);
      assert.equal(md5File(p), md5File(q), ops.join(' '));
    }
    const bad = await platterInProcess(['dd', 'bs=4k', `if=${fx.src}`]);
    assert.equal(bad.status, 1);
    assert.equal(bad.stderr, 'platter: Must specify both input and output files\n');
  });

  test('bench prints qemu-img bench\'s request line and a completion line', async () => {
    const args = ['bench', '-c', '50', '-d', '4', '-s', '8k', '-f', 'raw', fx.src];
    const q = qemuImg(...args).split('\n')[0];
    const r = await platterInProcess(args);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.equal(lines[0], q);
    assert.match(lines[1]!, /^Run completed in \d+\.\d{3} seconds\.$/);
    const w = fx.t.path('w.raw');
    writeFileSync(w, Buffer.alloc(64 * KiB, 1));
    const wr = await platterInProcess(['bench', '-w', '-c', '16', '-d', '2', '--pattern=7', '-f', 'raw', w]);
    assert.equal(wr.status, 0, wr.stderr);
    assert.deepEqual([...new Set(readFileSync(w))], [7], 'bench -w --pattern=7 wrote other bytes');
  });

  test('info --image-opts equals qemu-img info --image-opts', async () => {
    const spec = `driver=raw,file.driver=file,file.filename=${fx.src}`;
    assert.equal((await platterInProcess(['info', '--image-opts', spec])).stdout, qemuImg('info', '--image-opts', spec));
    const both = await platterInProcess(['info', '--image-opts', '-f', 'raw', spec]);
    assert.equal(both.status, 1);
    assert.equal(both.stderr, 'platter: --image-opts and --format are mutually exclusive\n');
  });

  test('--object secret opens a LUKS image for convert, as qemu-img convert --object does', async () => {
    const luks = fx.t.path('d.luks');
    const obj = 'secret,id=sec0,data=correct horse';
    qemuImg('create', '-f', 'luks', '--object', obj, '-o', 'key-secret=sec0,iter-time=10', luks, '1M');
    qemuImg('dd', '-f', 'raw', '-O', 'raw', 'bs=64k', 'count=16', `if=${fx.src}`, `of=${fx.t.path('plain.raw')}`);
    qemuImg('convert', '-n', '--object', obj, '-f', 'raw', '--target-image-opts', fx.t.path('plain.raw'), `driver=luks,key-secret=sec0,file.filename=${luks}`);
    const out = fx.t.path('dec.raw');
    const r = await platterInProcess(['convert', '--object', obj, '--image-opts', `driver=luks,key-secret=sec0,file.filename=${luks}`, '-O', 'raw', out]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(md5File(out), md5File(fx.t.path('plain.raw')));
    // qemu-img info opens a luks image without its key (no I/O): a wrong passphrase does not
    // matter there; convert, which reads, fails in one line.
    const info = await platterInProcess(['info', '--object', 'secret,id=sec0,data=wrong', '--image-opts', `driver=luks,key-secret=sec0,file.filename=${luks}`]);
    assert.equal(info.status, qemuImgRaw('info', '--object', 'secret,id=sec0,data=wrong', '--image-opts', `driver=luks,key-secret=sec0,file.filename=${luks}`).status);
    const wrong = await platterInProcess(['convert', '--object', 'secret,id=sec0,data=wrong', '--image-opts', `driver=luks,key-secret=sec0,file.filename=${luks}`, '-O', 'raw', fx.t.path('wrong.raw')]);
    assert.equal(wrong.status, 1);
    assert.equal(wrong.stderr.split('\n').filter(Boolean).length, 1, wrong.stderr);
    assert.doesNotMatch(wrong.stderr + wrong.stdout, /correct horse|wrong/);
  });

  test('convert -l converts an internal snapshot, as qemu-img convert -l does', async () => {
    const img = fx.t.path('s.qcow2');
    qemuImg('create', '-f', 'qcow2', img, '1M');
    qemuWrite(img, 'qcow2', [[0, 64 * KiB, 1]]);
    qemuImg('snapshot', '-c', 'snap1', img);
    qemuWrite(img, 'qcow2', [[0, 64 * KiB, 2], [512 * KiB, 4 * KiB, 3]]);
    const q = fx.t.path('l.q.raw');
    const p = fx.t.path('l.p.raw');
    qemuImg('convert', '-l', 'snap1', '-O', 'raw', img, q);
    const r = await platterInProcess(['convert', '-l', 'snap1', '-O', 'raw', img, p]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(md5File(p), md5File(q));
    const byId = await platterInProcess(['convert', '-l', 'snapshot.id=1', '-O', 'raw', img, fx.t.path('l2.raw')]);
    assert.equal(byId.status, 0, byId.stderr);
    assert.equal(md5File(fx.t.path('l2.raw')), md5File(q));
    const missing = await platterInProcess(['convert', '-l', 'nope', '-O', 'raw', img, fx.t.path('l3.raw')]);
    const qm = qemuImgRaw('convert', '-l', 'nope', '-O', 'raw', img, fx.t.path('l4.raw'));
    assert.equal(missing.status, qm.status);
    assert.equal(missing.stderr, qm.stderr.replace(/^qemu-img:/gm, 'platter:'));
  });
});

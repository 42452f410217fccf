// Interop: what qemu-img 7.2 prints where qemu-iotests look at it byte for byte: -p progress
// steps, the qcow2 "Formatting" line, convert's zero detection (-S), map at the unaligned end of
// a raw file, a qcow2 shrink, and map through null-co, quorum, blkdebug and vpc's
// force_size_calc. Each case runs the same command through qemu-img and platter (images made by
// qemu-img and qemu-io) and compares the output.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, SKIP_NO_QEMU } from '../helpers/qemu.ts';
import { platterInProcess, qemuImg, qemuImgRaw, qemuWrite } from './harness.ts';

const KiB = 1024;
const MiB = 1 << 20;

/** qemu-img map --output=json with host offsets left out (layouts may differ; extents may not). */
function mapWithoutOffsets(file: string, format: string): string {
  return qemuImg('map', '-f', format, '--output=json', file).replace(/, "offset": \d+/g, '');
}

describe('platter prints what qemu-img prints', { skip: SKIP_NO_QEMU }, () => {
  let t: ReturnType<typeof tempDir>;
  before(() => {
    t = tempDir();
  });
  after(() => t.cleanup());

  test('convert -p: the same progress steps (share of the data copied, 1% steps, 100% twice)', async () => {
    const src = t.path('p.qcow2');
    qemuImg('create', '-f', 'qcow2', src, '128M');
    qemuWrite(src, 'qcow2', [[0, MiB, 1], [2 * MiB, MiB, 2], [4 * MiB, MiB, 3], [32 * MiB, MiB, 4]]);
    const q = qemuImgRaw('convert', '-p', '-O', 'qcow2', src, t.path('p-q.qcow2'));
    const p = await platterInProcess(['convert', '-p', '-O', 'qcow2', src, t.path('p-p.qcow2')]);
    assert.equal(p.status, 0, p.stderr);
    assert.equal(p.stdout, q.stdout);
  });

  test('create -f qcow2: the Formatting line lists options in QEMU order with its defaults', async () => {
    for (const o of [[], ['-o', 'cluster_size=1k'], ['-o', 'compat=0.10,lazy_refcounts=off'], ['-o', 'preallocation=metadata'], ['-o', 'size=1.5M']]) {
      const img = t.path('f.qcow2');
      const args = ['create', '-f', 'qcow2', ...o, img, ...(o.join().includes('size=') ? [] : ['64M'])];
      const q = qemuImgRaw(...args);
      const p = await platterInProcess(args);
      assert.equal(p.stdout, q.stdout, o.join(' '));
      assert.equal(p.status, q.status);
    }
  });

  test('create -f qcow2 -o compat=0.42: the Formatting line first, then the error under its QAPI name', async () => {
    const img = t.path('bad.qcow2');
    const args = ['create', '-f', 'qcow2', '-o', 'compat=0.42', img, '1M'];
    const q = qemuImgRaw(...args);
    const p = await platterInProcess(args);
    assert.equal(p.stdout, q.stdout);
    assert.equal(p.stderr, q.stderr.replace(/^qemu-img:/gm, 'platter:'));
    assert.notEqual(p.status, 0);
  });

  test('check of an overlay whose backing file is gone: qemu-img check fails to open it (the backing chain is opened), and so does platter', async () => {
    const base = t.path('gone-base.qcow2');
    const top = t.path('gone-top.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', base, '1M');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top);
    rmSync(base);
    const q = qemuImgRaw('check', top);
    const p = await platterInProcess(['check', top]);
    assert.equal(q.status, 1);
    assert.equal(p.status, q.status);
    assert.equal(p.stdout, q.stdout);
    assert.equal(p.stderr, q.stderr.replace(/^qemu-img:/gm, 'platter:'));
  });

  test('--image-opts / json: naming a protocol at the top (driver=file, driver=vvfat): info and map describe that node in whole sectors, no format probed above it', async () => {
    const img = t.path('top-proto.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', img, '1M'); // a qcow2 file: probing would find qcow2
    const dir = t.path('top-proto-dir');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a.txt'), 'hello\n');
    const odd = t.path('top-proto-1000-bytes.raw');
    writeFileSync(odd, Buffer.alloc(1000, 0x5a));
    const forms = [
      ['info', '--image-opts', `driver=file,filename=${img}`],
      ['info', '--output=json', '--image-opts', `driver=file,filename=${img}`],
      ['info', `json:{"driver":"file","filename":"${img}"}`],
      ['map', '--output=json', '--image-opts', `driver=vvfat,dir=${dir}`],
      ['info', '--image-opts', `driver=vvfat,dir=${dir}`],
      ['info', '--output=json', `json:{"driver":"vvfat","dir":"${dir}"}`],
      ['info', `fat:${dir}`],
      // A file that ends inside a sector: QEMU's length is whole sectors, the tail reads as zeros.
      ['map', '--output=json', '--image-opts', `driver=file,filename=${odd}`],
      ['map', '--image-opts', `driver=file,filename=${odd}`],
      ['info', '--output=json', '--image-opts', `driver=file,filename=${odd}`],
    ];
    for (const args of forms) {
      const q = qemuImgRaw(...args);
      const p = await platterInProcess(args);
      assert.equal(q.status, 0, q.stderr);
      assert.equal(p.status, 0, p.stderr);
      assert.equal(p.stdout, q.stdout, args.join(' '));
    }
  });

  test('convert -S 4k, -S 8k and -S 0: the same extents in the target as qemu-img convert', async () => {
    const src = t.path('s.qcow2');
    qemuImg('create', '-f', 'qcow2', '-o', 'cluster_size=1k', src, '64M');
    qemuWrite(src, 'qcow2', [[0, 64 * KiB, 0], [0, KiB, 7], [8 * KiB, KiB, 8], [17 * KiB, KiB, 9], [65 * KiB, KiB, 0]]);
    for (const s of ['4k', '8k', '0']) {
      qemuImg('convert', '-O', 'qcow2', '-o', 'cluster_size=1k', '-S', s, src, t.path('s-q.qcow2'));
      const p = await platterInProcess(['convert', '-O', 'qcow2', '-o', 'cluster_size=1k', '-S', s, src, t.path('s-p.qcow2')]);
      assert.equal(p.status, 0, p.stderr);
      assert.equal(mapWithoutOffsets(t.path('s-p.qcow2'), 'qcow2'), mapWithoutOffsets(t.path('s-q.qcow2'), 'qcow2'), `-S ${s}`);
    }
  });

  test('map of a raw file whose size is not a multiple of 512: the last sector is whole', async () => {
    const img = t.path('u.raw');
    qemuImg('create', '-f', 'raw', img, '64k');
    truncateSync(img, 65537);
    qemuWrite(img, 'raw', [[65536, 1, 5]]);
    truncateSync(img, 65537);
    const q = qemuImg('map', '-f', 'raw', '--output=json', img);
    const p = await platterInProcess(['map', '-f', 'raw', '--output=json', img]);
    assert.equal(p.stdout, q);
  });

  test('resize --shrink of allocated qcow2 clusters discards them; growing again over a backing file reads zeros', async () => {
    const base = t.path('r.base.qcow2');
    qemuImg('create', '-f', 'qcow2', base, '1M');
    qemuWrite(base, 'qcow2', [[0, MiB, 0x11]]);
    const mk = (name: string) => {
      const top = t.path(name);
      qemuImg('create', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top);
      qemuWrite(top, 'qcow2', [[0, MiB, 0x22]]);
      return top;
    };
    const q = mk('r-q.qcow2');
    qemuImg('resize', '--shrink', q, '520k');
    qemuImg('resize', q, '567k');
    const p = mk('r-p.qcow2');
    assert.equal((await platterInProcess(['resize', '--shrink', p, '520k'])).stdout, 'Image resized.\n');
    assert.equal((await platterInProcess(['resize', p, '567k'])).stdout, 'Image resized.\n');
    assert.equal((await platterInProcess(['map', p])).stdout.replace(p, 'X'), qemuImg('map', q).replace(q, 'X'));
    assert.equal(qemuImgRaw('compare', q, p).status, 0);
    assert.equal(qemuImgRaw('check', p).status, 0);
  });

  test('map through null-co, quorum, blkdebug and vpc force_size_calc', async () => {
    const a = t.path('qa.qcow2');
    qemuImg('create', '-f', 'qcow2', a, '1M');
    qemuWrite(a, 'qcow2', [[64 * KiB, 64 * KiB, 1]]);
    const b = t.path('qb.qcow2');
    copyFileSync(a, b);
    const vhd = t.path('v.vhd');
    qemuImg('create', '-f', 'vpc', vhd, '100M');
    const specs = [
      ['json:{"driver": "null-co", "size": 1048576, "read-zeroes": true}'],
      ['--image-opts', 'driver=blkdebug,align=4096,image.driver=qcow2,image.file.driver=file,image.file.filename=' + a],
      [`json:{"driver": "qcow2", "file": {"driver": "quorum", "vote-threshold": 2, "children": [{"driver": "file", "filename": "${a}"}, {"driver": "file", "filename": "${b}"}]}}`],
      ['--image-opts', `driver=vpc,force_size_calc=current_size,file.filename=${vhd}`],
      ['--image-opts', `driver=vpc,force_size_calc=chs,file.filename=${vhd}`],
    ];
    for (const spec of specs) {
      const q = qemuImgRaw('map', '--output=json', ...spec);
      const p = await platterInProcess(['map', '--output=json', ...spec]);
      assert.equal(q.status, 0, q.stderr);
      assert.equal(p.stdout, q.stdout, spec.join(' '));
    }
  });
});

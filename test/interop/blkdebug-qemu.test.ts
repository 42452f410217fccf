// blkdebug against QEMU's own: the same rules (config files and json: options), the same images,
// run through `platter` and through qemu-img / qemu-io, must fail the same way (message, exit
// status) and leave images that qemu-img check and qemu-io's repair see the same. Covers errors
// on a format's events (read_aio, write_aio, cluster_free, empty_image_prepare), on requests by
// sector and type ('none' rules), compare's read errors, and convert --salvage.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { SKIP_NO_QEMU, tempDir, run } from '../helpers/qemu.ts';
import { platterInProcess, qemuImgRaw, qemuImg, qemuWrite, type CliResult } from './harness.ts';

const MiB = 1 << 20;
const SECTOR = 512;

/** Output with the program's name taken out of its messages ("platter: x" / "qemu-img: x"). */
const unnamed = (text: string) => text.replace(/^(platter|qemu-img): /gm, '');

/** Same exit status and the same messages from both tools. */
function assertSameFailure(p: CliResult, q: CliResult, what: string): void {
  assert.equal(unnamed(p.stderr), unnamed(q.stderr), `${what}: stderr`);
  assert.equal(p.stdout, q.stdout, `${what}: stdout`);
  assert.equal(p.status, q.status, `${what}: exit status`);
}

describe('blkdebug error injection vs qemu-img / qemu-io', { skip: SKIP_NO_QEMU }, () => {
  const t = tempDir('platter-blkdebug-interop-');
  test.after(() => t.cleanup());

  /** Two copies of one image, each for one tool. */
  function twin(path: string): [string, string] {
    const p = `${path}.platter`;
    const q = `${path}.qemu`;
    copyFileSync(path, p);
    copyFileSync(path, q);
    return [p, q];
  }

  test('convert of blkdebug:CONFIG:IMAGE with an EIO on read_aio (a qcow2 source): same message, same status', async () => {
    const img = t.path('read.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', img, '4M');
    qemuWrite(img, 'qcow2', [[MiB, 64 << 10, 7]]);
    const conf = t.path('read.conf');
    writeFileSync(conf, '[inject-error]\nevent = "read_aio"\nerrno = "5"\n');
    const p = await platterInProcess(['convert', '-O', 'raw', `blkdebug:${conf}:${img}`, t.path('read.p.raw')]);
    const q = qemuImgRaw('convert', '-O', 'raw', `blkdebug:${conf}:${img}`, t.path('read.q.raw'));
    assert.notEqual(q.status, 0);
    assertSameFailure(p, q, 'convert');
  });

  test('compare with a sector rule on the first image: "Error while reading offset ..." and exit 4, as qemu-img', async () => {
    const a = t.path('cmp.raw');
    writeFileSync(a, Buffer.alloc(MiB, 0x11));
    const b = t.path('cmp2.raw');
    copyFileSync(a, b);
    const spec = `json:${JSON.stringify({ driver: 'raw', file: { driver: 'blkdebug', image: { driver: 'file', filename: a }, 'inject-error': [{ event: 'none', iotype: 'read', sector: 1000, errno: 28 }] } })}`;
    const p = await platterInProcess(['compare', spec, b]);
    const q = qemuImgRaw('compare', spec, b);
    assert.equal(q.status, 4);
    assertSameFailure(p, q, 'compare');
  });

  test('convert --salvage: the same warnings (each unreadable status twice, each unreadable sector once) and the same output image', async () => {
    const src = t.path('salvage.raw');
    writeFileSync(src, Buffer.alloc(8 * MiB, 0x2a));
    const statusSector = (2 * MiB + 4096) / SECTOR;
    const readSectors = [(5 * MiB) / SECTOR, (5 * MiB) / SECTOR + 1, (7 * MiB + 512) / SECTOR];
    const rules = [
      { event: 'none', iotype: 'block-status', errno: 5, sector: statusSector },
      ...readSectors.map((sector) => ({ event: 'none', iotype: 'read', errno: 5, sector })),
    ];
    const spec = `json:${JSON.stringify({ driver: 'blkdebug', image: { driver: 'raw', file: { driver: 'file', filename: src } }, 'inject-error': rules })}`;
    const p = await platterInProcess(['convert', '--salvage', '-O', 'raw', spec, t.path('salvage.p')]);
    const q = qemuImgRaw('convert', '--salvage', '-O', 'raw', spec, t.path('salvage.q'));
    assert.equal(q.status, 0, q.stderr);
    assert.equal(p.status, 0, p.stderr);
    // qemu-img's copy runs 8 coroutines, so its warnings come in their order (iotest 251 pins
    // one where that is the image's order, which Platter keeps): compare them as a collection.
    const lines = (r: CliResult) => unnamed(r.stderr).split('\n').filter(Boolean).sort();
    assert.deepEqual(lines(p), lines(q));
    assert.match(q.stderr, /warning: error while reading block status at offset 2101248: Input\/output error/);
    assert.ok(readFileSync(t.path('salvage.p')).equals(readFileSync(t.path('salvage.q'))), 'output images differ');
  });

  test('commit into a json: backing of blkdebug over a file (ENOSPC once on write_aio): "Block job failed", as qemu-img', async () => {
    for (const format of ['qcow2', 'qed']) {
      const base = t.path(`commit-base.${format}`);
      qemuImg('create', '-q', '-f', format, base, '1M');
      const backing = `json:{'driver': '${format}', 'file': {'driver': 'blkdebug', 'inject-error': [{'event': 'write_aio', 'errno': 28, 'once': true}], 'image': {'driver': 'file', 'filename': '${base}'}}}`;
      const top = t.path(`commit-top.${format}`);
      qemuImg('create', '-q', '-f', format, '-b', backing, '-F', format, top);
      qemuWrite(top, format, [[0, 64 << 10, 5]]);
      const [pTop, qTop] = twin(top);
      const p = await platterInProcess(['commit', pTop]);
      const q = qemuImgRaw('commit', qTop);
      assert.equal(q.status, 1, q.stderr);
      assertSameFailure(p, q, `commit (${format})`);
    }
  });

  test('snapshot -d with an EIO on cluster_free: the same messages, and qemu-img check finds the same leaks', async () => {
    const img = t.path('snap.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', img, '64M');
    qemuWrite(img, 'qcow2', [[0, 64 << 10, 3]]);
    qemuImg('snapshot', '-c', 'foo', img);
    const conf = t.path('snap.conf');
    writeFileSync(conf, '[inject-error]\nevent = "cluster_free"\nerrno = "5"\n');
    const [pImg, qImg] = twin(img);
    const p = await platterInProcess(['snapshot', '-d', 'foo', `blkdebug:${conf}:${pImg}`]);
    const q = qemuImgRaw('snapshot', '-d', 'foo', `blkdebug:${conf}:${qImg}`);
    assert.equal(q.status, 1);
    assertSameFailure(p, { ...q, stderr: q.stderr.replaceAll(qImg, pImg) }, 'snapshot -d');
    const checkP = qemuImgRaw('check', pImg);
    const checkQ = qemuImgRaw('check', qImg);
    assert.equal(checkP.status, 3, checkP.stdout + checkP.stderr);
    assert.equal(checkP.stdout + checkP.stderr, checkQ.stdout + checkQ.stderr);
  });

  test('commit whose emptying of the top fails at each qcow2 event: the same message, and the same repair by qemu-io', async () => {
    for (const event of ['l1_update', 'empty_image_prepare', 'reftable_update', 'refblock_alloc']) {
      const base = t.path(`empty-${event}.base`);
      const top = t.path(`empty-${event}.qcow2`);
      qemuImg('create', '-q', '-f', 'qcow2', base, '64M');
      qemuImg('create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top, '64M');
      qemuWrite(top, 'qcow2', [[0, 64 << 10, 9]]);
      const conf = t.path(`empty-${event}.conf`);
      writeFileSync(conf, `[inject-error]\nevent = "${event}"\n`);
      const [pTop, qTop] = twin(top);
      const p = await platterInProcess(['commit', `blkdebug:${conf}:${pTop}`]);
      const q = qemuImgRaw('commit', `blkdebug:${conf}:${qTop}`);
      assert.equal(q.status, 1, `${event}: ${q.stderr}`);
      assertSameFailure(p, { ...q, stderr: q.stderr.replaceAll(qTop, pTop) }, `commit (${event})`);
      // QEMU repairs what each left on opening it (the dirty bit is set): the same findings.
      const repairP = run('qemu-io', ['-c', 'close', pTop]);
      const repairQ = run('qemu-io', ['-c', 'close', qTop]);
      assert.equal(repairP.stdout + repairP.stderr, repairQ.stdout + repairQ.stderr, `${event}: qemu-io repair`);
      assert.equal(qemuImgRaw('check', pTop).status, 0, event);
    }
  });
});

// Interop: convert onto a host block device (a loop device over a scratch file, set up by the
// test and detached after it). A device holds old data and cannot be created or grown, so: the
// source's zero ranges are written (a device does not read as zeros), "creating" an image there
// checks its size and touches only its first sector, a device too small fails as qemu-img fails
// ("Cannot grow device files"), and a failed convert never removes the device node. Compared
// with qemu-img compare / check. Skips, saying so, where loop devices cannot be set up (not root).

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync, statSync, truncateSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';
import { platterInProcess, qemuImg, qemuImgRaw, qemuWrite } from './harness.ts';

const MiB = 1 << 20;

/** A new file of `size` bytes (a hole). */
function sizedFile(path: string, size: number): void {
  closeSync(openSync(path, 'w'));
  truncateSync(path, size);
}

function setUpLoop(backing: string): string | undefined {
  const r = spawnSync('losetup', ['-f', '--show', backing], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

const probe = tempDir('platter-loop-probe-');
sizedFile(probe.path('p.img'), MiB);
const probeDev = SKIP_NO_QEMU ? undefined : setUpLoop(probe.path('p.img'));
if (probeDev) spawnSync('losetup', ['-d', probeDev]);
probe.cleanup();
const SKIP = SKIP_NO_QEMU || (probeDev ? false : 'loop devices cannot be set up here (needs root and losetup)');

describe('convert onto a host block device (loop device), compared with qemu-img', { skip: SKIP }, () => {
  const t = tempDir('platter-loop-');
  let dev = '';
  before(() => {
    sizedFile(t.path('disk.img'), 8 * MiB);
    dev = setUpLoop(t.path('disk.img'))!;
  });
  after(() => {
    if (dev) spawnSync('losetup', ['-d', dev]);
    t.cleanup();
  });

  function makeSource(name: string, size = '8M'): string {
    const src = t.path(name);
    qemuImg('create', '-q', '-f', 'raw', src, size);
    qemuWrite(src, 'raw', [[MiB, MiB, 0x44]]);
    return src;
  }

  test('convert -O raw onto a device full of old data: the zeros are written too (qemu-img compare)', async () => {
    const src = makeSource('s.raw');
    qemuWrite(dev, 'raw', [[0, 8 * MiB, 0xee]]);
    const r = await platterInProcess(['convert', '-f', 'raw', '-O', 'raw', src, dev]);
    assert.equal(r.status, 0, r.stderr);
    const cmp = qemuImgRaw('compare', '-f', 'raw', '-F', 'raw', src, dev);
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
  });

  test('convert -O qcow2 onto a device: qemu-img check is clean and compare identical', async () => {
    const src = makeSource('s2.raw');
    qemuWrite(dev, 'raw', [[0, 8 * MiB, 0xee]]);
    const r = await platterInProcess(['convert', '-f', 'raw', '-O', 'qcow2', src, dev]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(qemuImgRaw('check', '-f', 'qcow2', dev).status, 0);
    const cmp = qemuImgRaw('compare', '-f', 'raw', '-F', 'qcow2', src, dev);
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
  });

  test('a source larger than the device fails as qemu-img does, and the device node stays', async () => {
    const src = t.path('big.raw');
    qemuImg('create', '-q', '-f', 'raw', src, '16M');
    const theirs = qemuImgRaw('convert', '-f', 'raw', '-O', 'raw', src, dev);
    const r = await platterInProcess(['convert', '-f', 'raw', '-O', 'raw', src, dev]);
    assert.equal(r.status, 1);
    assert.equal(r.stderr.replace(/^platter: /, ''), theirs.stderr.replace(/^qemu-img: /, ''));
    assert.match(r.stderr, /Cannot grow device files/);
    assert.ok(existsSync(dev) && statSync(dev).isBlockDevice(), 'the device node is still there');
  });
});

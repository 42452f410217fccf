// Interop: the host_device and host_cdrom protocols on real Linux block devices (loop devices over
// scratch files, attached by the test and always detached), compared with qemu-img 7.2 on the same
// devices: info (human and JSON), map, --image-opts driver=host_device|host_cdrom, the 'file'
// driver's refusal, convert from and onto a device (zeros written over old data), an image format
// living on a device (qemu-img check of the device), the lock interplay with qemu-nbd, and bad
// input: a missing device, a device without permission (run as nobody via setpriv), a device the
// kernel marks read-only, and a device that shrinks away mid-copy (clear error, nothing written
// elsewhere). Skips, saying so, where loop devices cannot be set up (not root).

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, constants, existsSync, readdirSync, statSync, truncateSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { have, platter, REPO_ROOT, run, SKIP_NO_QEMU, startProcess, tempDir } from '../helpers/qemu.ts';
import { attachLoop, detachLoop, LOOP_SKIP, refreshLoopCapacity, sizedFile } from '../helpers/loop-device.ts';
import { platterInProcess, qemuImg, qemuImgRaw, qemuWrite } from './harness.ts';
import { openFlagsDuringConvert } from '../helpers/open-flags.ts';
import { convert } from '../../core/jobs/convert.ts';
import { defaultEnv } from '../../core/jobs/common.ts';
import { openImage } from '../../core/drivers/open.ts';
import { BlockError } from '../../core/errors.ts';

const MiB = 1 << 20;
const SKIP = SKIP_NO_QEMU || LOOP_SKIP;

/** Platter's stderr in qemu-img's words (the program name is the only difference). */
const asQemu = (s: string) => s.replace(/^platter: /gm, 'qemu-img: ');

/** Run both tools with the same arguments; assert equal status, stdout and stderr. */
async function same(...args: string[]): Promise<void> {
  const theirs = qemuImgRaw(...args);
  const ours = await platterInProcess(args);
  assert.equal(ours.status, theirs.status, `${args.join(' ')}: ${ours.stderr} / ${theirs.stderr}`);
  assert.equal(ours.stdout, theirs.stdout, args.join(' '));
  assert.equal(asQemu(ours.stderr), theirs.stderr, args.join(' '));
}

async function waitFor(path: string): Promise<void> {
  for (let i = 0; i < 100 && !existsSync(path); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(existsSync(path), `${path} did not appear`);
}

describe('host_device on loop devices, compared with qemu-img', { skip: SKIP }, () => {
  const t = tempDir('platter-hostdev-');
  let dev = '';
  before(() => {
    sizedFile(t.path('disk.img'), 16 * MiB);
    dev = attachLoop(t.path('disk.img'))!;
    assert.ok(dev, 'losetup failed');
  });
  after(() => {
    if (dev) detachLoop(dev);
    t.cleanup();
  });

  /** A raw source: 0x44 at 1 MiB, 0x55 at 9 MiB, zeros elsewhere. */
  function source(name: string, size = '16M'): string {
    const src = t.path(name);
    qemuImg('create', '-q', '-f', 'raw', src, size);
    qemuWrite(src, 'raw', [[MiB, MiB, 0x44], [9 * MiB, 512 * 1024, 0x55]]);
    return src;
  }

  test('info (human and JSON), map and check of a device equal qemu-img: a plain device name probes as host_device', async () => {
    qemuWrite(dev, 'raw', [[0, 16 * MiB, 0x11]]);
    await same('info', dev);
    await same('info', '--output=json', dev);
    await same('map', '--output=json', dev);
    await same('info', `host_device:${dev}`);
    await same('info', '--output=json', `host_cdrom:${dev}`);
  });

  test('--image-opts driver=host_device|host_cdrom: the device itself is the image ("file format: host_device"), as qemu-img', async () => {
    for (const d of ['host_device', 'host_cdrom']) {
      await same('info', '--image-opts', `driver=${d},filename=${dev}`);
      await same('info', '--output=json', '--image-opts', `driver=${d},filename=${dev}`);
    }
    await same('info', '--image-opts', `driver=raw,file.driver=host_device,file.filename=${dev}`);
    await same('map', '--output=json', '--image-opts', `driver=host_device,filename=${dev},locking=off`);
  });

  test("driver=file on a device fails with QEMU's \"'file' driver requires ... to be a regular file\"; host_device on a regular file with its own words", async () => {
    await same('info', '--image-opts', `driver=file,filename=${dev}`);
    await same('info', `file:${dev}`);
    await same('info', 'host_device:/dev/platter-no-such-device');
    const ours = await platterInProcess(['info', '--image-opts', `driver=file,filename=${dev}`]);
    assert.match(ours.stderr, new RegExp(`'file' driver requires '${dev}' to be a regular file`));
    await same('info', '--image-opts', `driver=host_device,filename=${t.path('disk.img')}`);
    await same('info', '--image-opts', `driver=host_cdrom,filename=${t.path('disk.img')}`);
  });

  test('convert from a device to qcow2: qemu-img compare equal, check clean', async () => {
    qemuWrite(dev, 'raw', [[0, 16 * MiB, -1], [2 * MiB, 3 * MiB, 0x21], [12 * MiB, 64 * 1024, 0x22]]);
    const out = t.path('from-dev.qcow2');
    const r = await platterInProcess(['convert', '-O', 'qcow2', dev, out]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(qemuImgRaw('check', out).status, 0);
    const cmp = qemuImgRaw('compare', '-f', 'raw', '-F', 'qcow2', dev, out);
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
    // The same through --image-opts driver=host_device as the source.
    const out2 = t.path('from-dev-opts.qcow2');
    const r2 = await platterInProcess(['convert', '--image-opts', `driver=host_device,filename=${dev}`, '-O', 'qcow2', out2]);
    assert.equal(r2.status, 0, r2.stderr);
    assert.equal(qemuImgRaw('compare', '-f', 'qcow2', '-F', 'qcow2', out, out2).status, 0);
  });

  test('convert reads a device with O_DIRECT unless -T says otherwise (/proc fdinfo of the running CLI), and the copy is exact', async () => {
    qemuWrite(dev, 'raw', [[0, 16 * MiB, -1], [MiB, 5 * MiB, 0x31]]);
    for (const [given, direct] of [[[], true], [['-T', 'writeback'], false], [['-T', 'none'], true]] as const) {
      const out = t.path(`direct-${given.join('') || 'default'}.raw`);
      const r = await openFlagsDuringConvert(['convert', '-r', '1M', ...given, '-f', 'raw', '-O', 'raw', dev, out], dev);
      assert.ok(r.flags.length > 0, `${given.join(' ')}: the device was not seen open (${r.stderr})`);
      for (const f of r.flags) assert.equal((f & constants.O_DIRECT) !== 0, direct, `${given.join(' ') || 'no -T'}: flags ${f.toString(8)}`);
      assert.deepEqual(r.leftovers, []);
    }
    const out = t.path('direct-read.qcow2');
    const r = await platterInProcess(['convert', '-f', 'raw', '-O', 'qcow2', dev, out]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(qemuImgRaw('compare', '-f', 'raw', '-F', 'qcow2', dev, out).status, 0);
  });

  test('convert -O raw onto a device full of old data: zeros land as zeros (qemu-img compare)', async () => {
    const src = source('s.raw');
    qemuWrite(dev, 'raw', [[0, 16 * MiB, 0xee]]);
    const r = await platterInProcess(['convert', '-f', 'raw', '-O', 'raw', src, dev]);
    assert.equal(r.status, 0, r.stderr);
    const cmp = qemuImgRaw('compare', '-f', 'raw', '-F', 'raw', src, dev);
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
    // -n with --target-image-opts driver=host_device too.
    qemuWrite(dev, 'raw', [[0, 16 * MiB, 0xef]]);
    const r2 = await platterInProcess(['convert', '-n', '-f', 'raw', '--target-image-opts', src, `driver=host_device,filename=${dev}`]);
    assert.equal(r2.status, 0, r2.stderr);
    assert.equal(qemuImgRaw('compare', '-f', 'raw', '-F', 'raw', src, dev).status, 0);
  });

  test('convert -O qcow2 img DEV: an image living on the device passes qemu-img check and compares equal', async () => {
    const src = source('s2.raw');
    qemuWrite(dev, 'raw', [[0, 16 * MiB, 0xee]]);
    const r = await platterInProcess(['convert', '-f', 'raw', '-O', 'qcow2', src, dev]);
    assert.equal(r.status, 0, r.stderr);
    const check = qemuImgRaw('check', '-f', 'qcow2', dev);
    assert.equal(check.status, 0, check.stdout + check.stderr);
    const cmp = qemuImgRaw('compare', '-f', 'raw', '-F', 'qcow2', src, dev);
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
    // Platter reads it back as qcow2 as qemu-img does, and the other jobs agree on it.
    await same('info', '--output=json', dev);
    await same('check', dev);
    await same('map', dev);
    await same('measure', '-O', 'qcow2', dev);
    await same('compare', '-F', 'raw', dev, src);
  });

  test('resize of a device as raw: "Cannot resize device files" for any other size, as qemu-img (exact truncate)', async () => {
    await same('resize', '-f', 'raw', dev, '32M');
    await same('resize', '-f', 'raw', dev, '+1M');
    await same('resize', '-f', 'raw', dev, '8M');
    await same('resize', '-f', 'raw', '--shrink', dev, '8M');
    await same('resize', '-f', 'raw', dev, '16M');
    await same('create', '-f', 'raw', dev, '32M');
  });

  test('qemu-nbd -k holding the device: Platter refuses info and convert with qemu-img\'s words', async () => {
    qemuImg('create', '-q', '-f', 'raw', t.path('zero.raw'), '1M');
    const sock = t.path('nbd.sock');
    const nbd = startProcess('qemu-nbd', ['-k', sock, '-f', 'raw', dev]);
    try {
      await waitFor(sock);
      await same('info', dev);
      await same('convert', '-f', 'raw', '-O', 'raw', t.path('zero.raw'), dev);
      await same('convert', '-O', 'qcow2', dev, t.path('never.qcow2'));
      assert.ok(!existsSync(t.path('never.qcow2')));
    } finally {
      await nbd.kill();
    }
  });

  test('Platter holding the device: qemu-img convert onto it and qemu-img resize are refused', async () => {
    qemuImg('create', '-q', '-f', 'raw', t.path('one.raw'), '1M');
    const node = await openImage(dev, { format: 'raw' });
    try {
      const conv = qemuImgRaw('convert', '-f', 'raw', '-O', 'raw', t.path('one.raw'), dev);
      assert.notEqual(conv.status, 0);
      assert.match(conv.stderr, /Failed to get "(write|resize)" lock/);
      const rs = qemuImgRaw('resize', '-f', 'raw', dev, '8M');
      assert.notEqual(rs.status, 0);
      assert.match(rs.stderr, /Failed to get .*lock/);
    } finally {
      await node.close();
    }
    // Released: qemu-img opens it again.
    assert.equal(qemuImgRaw('info', dev).status, 0);
  });

  test('a missing device fails as qemu-img does', async () => {
    await same('info', '/dev/platter-no-such-device');
    await same('info', '--image-opts', 'driver=host_device,filename=/dev/platter-no-such-device');
    await same('convert', '-O', 'raw', '/dev/platter-no-such-device', t.path('nope.raw'));
    assert.ok(!existsSync(t.path('nope.raw')));
  });

  test('a device the user may not write (run as nobody) and one the kernel marks read-only: qemu-img\'s errors, device untouched', { skip: have('setpriv') ? false : 'setpriv not installed' }, async () => {
    const src = source('perm.raw');
    chmodSync(t.dir, 0o755);
    chmodSync(src, 0o644);
    qemuWrite(dev, 'raw', [[0, 16 * MiB, 0x31]]);
    const nobody = ['--reuid=nobody', '--regid=nogroup', '--clear-groups'];
    const theirs = run('setpriv', [...nobody, 'qemu-img', 'convert', '-f', 'raw', '-O', 'raw', src, dev]);
    const ours = run('setpriv', [...nobody, process.execPath, join(REPO_ROOT, 'bin/platter.mjs'), 'convert', '-f', 'raw', '-O', 'raw', src, dev]);
    assert.notEqual(theirs.status, 0);
    assert.equal(ours.status, theirs.status);
    assert.equal(asQemu(ours.stderr), theirs.stderr);
    assert.match(ours.stderr, /Permission denied/);
    spawnSync('blockdev', ['--setro', dev]);
    try {
      const a = qemuImgRaw('convert', '-f', 'raw', '-O', 'raw', src, dev);
      const b = platter(['convert', '-f', 'raw', '-O', 'raw', src, dev]);
      assert.equal(b.status, a.status);
      assert.equal(asQemu(b.stderr), a.stderr);
      assert.match(b.stderr, /The device is not writable/);
    } finally {
      spawnSync('blockdev', ['--setrw', dev]);
    }
    // The old data is still there.
    assert.equal(qemuImgRaw('compare', '-f', 'raw', '-F', 'raw', src, dev).status, 1);
  });
});

describe('a device that shrinks away mid-copy', { skip: SKIP }, () => {
  test('convert onto it fails with a clear error at the write, and nothing is written elsewhere', async () => {
    const t = tempDir('platter-hostdev-gone-');
    const backing = t.path('vanishing.img');
    sizedFile(backing, 32 * MiB);
    const dev = attachLoop(backing)!;
    try {
      const src = t.path('src.raw');
      qemuImg('create', '-q', '-f', 'raw', src, '32M');
      qemuWrite(src, 'raw', [[0, 32 * MiB, 0x5a]]);
      const before = readdirSync(t.dir).sort();
      let shrunk = false;
      const err = await convert({ sources: [{ filename: src, format: 'raw' }], target: { filename: dev, format: 'raw' }, noCreate: true }, defaultEnv(), {
        onProgress: () => {
          if (shrunk) return;
          shrunk = true;
          truncateSync(backing, 0); // the device loses its storage: capacity 0 from now on
          refreshLoopCapacity(dev);
        },
      }).then(() => undefined, (e: unknown) => e);
      assert.ok(shrunk, 'no progress was reported');
      assert.ok(err instanceof BlockError, `expected a BlockError, got ${String(err)}`);
      assert.match(err.message, /No space left on device/);
      assert.match(err.message, /error while writing at byte \d+/);
      assert.deepEqual(readdirSync(t.dir).sort(), before, 'no file appeared next to the source');
      assert.ok(statSync(dev).isBlockDevice(), 'the device node is still the device');
    } finally {
      detachLoop(dev);
      t.cleanup();
    }
  });
});

// The Linux device calls of core/host (BLKPBSZGET, BLKROGET, BLKZEROOUT, BLKDISCARD,
// CDROM_DRIVE_STATUS) and the host_device / host_cdrom probes (QEMU's hdev_probe_device and
// cdrom_probe_device), on a real loop device the test attaches and detaches. Skips, saying so,
// where loop devices cannot be set up.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tempDir } from '../helpers/qemu.ts';
import { attachLoop, detachLoop, LOOP_SKIP, sizedFile } from '../helpers/loop-device.ts';
import { hostOps } from '../../core/host/index.ts';
import { probeHostCdrom, probeHostDevice } from '../../core/protocols/host-device/index.ts';
import { probeDeviceDriver } from '../../core/drivers/registry.ts';

const MiB = 1 << 20;

test('device ioctls and probes on a loop device', { skip: LOOP_SKIP }, async () => {
  const t = tempDir('platter-hostdev-unit-');
  sizedFile(t.path('d.img'), 4 * MiB);
  const dev = attachLoop(t.path('d.img'))!;
  const fd = openSync(dev, 'r+');
  try {
    const host = hostOps();
    const d = host.device!;
    assert.ok(d, 'the Linux host has device calls');
    assert.equal(host.deviceSize(fd), 4 * MiB);
    assert.equal(host.deviceBlockSize(fd), 512);
    assert.equal(d.physicalBlockSize(fd), 512);
    assert.equal(d.isReadOnly(fd), false);
    spawnSync('blockdev', ['--setro', dev]);
    try {
      assert.equal(d.isReadOnly(fd), true);
    } finally {
      spawnSync('blockdev', ['--setrw', dev]);
    }
    // BLKZEROOUT over old data: it reads back as zeros (through the page cache, too).
    writeSync(fd, Buffer.alloc(MiB, 0xab), 0, MiB, MiB);
    assert.equal(await d.zeroOut(fd, MiB, MiB), true);
    const back = Buffer.alloc(MiB);
    readSync(fd, back, 0, MiB, MiB);
    assert.ok(back.every((b) => b === 0), 'zeroed');
    // BLKDISCARD: a loop device passes it to its file (a hole); either it works or says unsupported.
    assert.equal(typeof (await d.discard(fd, 0, MiB)), 'boolean');
    // Not a CD-ROM drive: CDROM_DRIVE_STATUS fails, the tray calls say no.
    assert.equal(d.cdromStatus(fd), undefined);
    assert.equal(d.cdromLockDoor(fd, false), false);
    // Probes: a block device is host_device's (100), not host_cdrom's; a regular file nobody's;
    // "/dev/cdrom..." names score 50 for host_device (a real drive's probe scores 100).
    assert.equal(probeHostDevice(dev), 100);
    assert.equal(probeHostCdrom(dev), 0);
    assert.equal(probeHostDevice(t.path('d.img')), 0);
    assert.equal(probeHostDevice('/dev/cdrom-platter-none'), 50);
    assert.equal(probeHostDevice('/dev/null'), 100);
    assert.equal(probeDeviceDriver(dev), 'host_device');
    assert.equal(probeDeviceDriver(t.path('d.img')), undefined);
    assert.equal(probeDeviceDriver('/dev/platter-missing'), undefined);
  } finally {
    closeSync(fd);
    detachLoop(dev);
    t.cleanup();
  }
});

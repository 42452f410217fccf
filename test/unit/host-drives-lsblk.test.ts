// The Drives view's listing from lsblk(8) --json --bytes output (core/host/drives.ts): whole disks,
// loop devices and optical drives only; mount points gathered from partitions (and LVM/crypt
// children below them); the system disk is the one holding /, /boot, /boot/efi, /usr, /var or
// swap; vendor ids such as "0x1af4" are no model; zero-sized devices (an empty card reader,
// zram) are left out; lsblk before 2.37 (one "mountpoint") is read too.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLsblk } from '../../core/host/drives.ts';

const doc = {
  blockdevices: [
    {
      name: 'nvme0n1', path: '/dev/nvme0n1', type: 'disk', size: 512110190592, model: 'Samsung SSD 980 PRO 512GB', vendor: null, rm: false, ro: false, mountpoints: [null],
      children: [
        { name: 'nvme0n1p1', path: '/dev/nvme0n1p1', type: 'part', size: 536870912, mountpoints: ['/boot/efi'] },
        { name: 'nvme0n1p2', path: '/dev/nvme0n1p2', type: 'part', size: 511571132416, mountpoints: [null], children: [{ name: 'cryptroot', type: 'crypt', size: 511554355200, mountpoints: ['/'] }] },
      ],
    },
    {
      name: 'sdb', path: '/dev/sdb', type: 'disk', size: 30752000000, model: 'Ultra Fit', vendor: 'SanDisk ', rm: true, ro: false, mountpoints: [null],
      children: [{ name: 'sdb1', path: '/dev/sdb1', type: 'part', size: 30751000000, mountpoints: ['/media/user/STICK'] }],
    },
    { name: 'sdc', path: '/dev/sdc', type: 'disk', size: 0, model: 'Card Reader', vendor: 'Generic', rm: true, ro: false, mountpoints: [null] },
    { name: 'sr0', path: '/dev/sr0', type: 'rom', size: 734003200, model: 'DVD-RW DRU-870S', vendor: 'SONY', rm: true, ro: false, mountpoints: [null] },
    { name: 'vda', path: '/dev/vda', type: 'disk', size: 274877906944, model: null, vendor: '0x1af4', rm: false, ro: false, mountpoints: ['/srv'] },
    { name: 'loop3', path: '/dev/loop3', type: 'loop', size: 16777216, model: null, vendor: null, rm: false, ro: true, mountpoints: [null] },
    { name: 'zram0', path: '/dev/zram0', type: 'disk', size: 0, mountpoints: ['[SWAP]'] },
  ],
};

test('lsblk --json: models, sizes, removable, mounted partitions, and the system disk', () => {
  const drives = parseLsblk(JSON.stringify(doc), (name) => (name === 'loop3' ? '/srv/stick.img' : undefined));
  assert.deepEqual(drives.map((d) => d.path), ['/dev/nvme0n1', '/dev/sdb', '/dev/sr0', '/dev/vda', '/dev/loop3']);
  const [nvme, stick, dvd, vda, loop] = drives;
  assert.equal(nvme!.model, 'Samsung SSD 980 PRO 512GB');
  assert.deepEqual(nvme!.mountpoints, ['/boot/efi', '/']);
  assert.equal(nvme!.system, true);
  assert.deepEqual({ model: stick!.model, removable: stick!.removable, mountpoints: stick!.mountpoints, system: stick!.system, size: stick!.size }, { model: 'SanDisk Ultra Fit', removable: true, mountpoints: ['/media/user/STICK'], system: false, size: 30752000000 });
  assert.deepEqual({ type: dvd!.type, model: dvd!.model, system: dvd!.system }, { type: 'rom', model: 'SONY DVD-RW DRU-870S', system: false });
  assert.deepEqual({ model: vda!.model, mountpoints: vda!.mountpoints, system: vda!.system }, { model: 'Disk', mountpoints: ['/srv'], system: false });
  assert.deepEqual({ type: loop!.type, model: loop!.model, readOnly: loop!.readOnly }, { type: 'loop', model: 'Loop device (/srv/stick.img)', readOnly: true });
});

test('lsblk before 2.37 ("mountpoint", flags as "0"/"1" strings) and output that is no JSON', () => {
  const old = { blockdevices: [{ name: 'sda', type: 'disk', size: '1000204886016', model: 'WDC WD10EZEX', rm: '0', ro: '0', mountpoint: null, children: [{ name: 'sda1', type: 'part', mountpoint: '/' }, { name: 'sda2', type: 'part', mountpoint: '[SWAP]' }] }] };
  const [sda] = parseLsblk(JSON.stringify(old), () => undefined);
  assert.deepEqual(sda, { path: '/dev/sda', name: 'sda', type: 'disk', size: 1000204886016, model: 'WDC WD10EZEX', removable: false, readOnly: false, mountpoints: ['/', '[SWAP]'], system: true });
  assert.deepEqual(parseLsblk('lsblk: unknown column', () => undefined), []);
  assert.deepEqual(parseLsblk('{"blockdevices": "x"}', () => undefined), []);
});

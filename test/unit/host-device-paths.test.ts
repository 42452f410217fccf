// Host device names, ioctl request numbers and structure layouts for the three OSes, checked on any
// OS: Windows' "d:", "\\.\d:", "\\.\PhysicalDriveN" and "/dev/cdrom" (QEMU file-win32.c), macOS'
// /dev/diskN and /dev/rdiskN, the winioctl.h CTL_CODE values and DISK_GEOMETRY_EX layout, the
// <sys/disk.h> and <linux/fs.h> / <linux/cdrom.h> numbers as their _IO/_IOR macros give them, and
// QEMU's wording of a failed Windows device open.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDarwinDisk, parseWindowsDevice } from '../../core/protocols/host-device/paths.ts';
import { windowsOpenPath } from '../../core/protocols/host-device/windows.ts';
import { ctlCode, decodeDiskGeometryEx, decodeLengthInfo, DISK_GEOMETRY_EX_BUFFER, IOCTL_DISK_GET_DRIVE_GEOMETRY_EX, IOCTL_DISK_GET_LENGTH_INFO, WIN32_ERRORS, win32OpenErrorText } from '../../core/host/win32-device.ts';
import { BLKDISCARD, BLKGETSIZE64, BLKPBSZGET, BLKROGET, BLKSSZGET, BLKZEROOUT, CDROM_DRIVE_STATUS, CDROM_LOCKDOOR, CDROMCLOSETRAY, CDROMEJECT, CDSL_CURRENT } from '../../core/host/linux.ts';
import { DKIOCEJECT, DKIOCGETBLOCKCOUNT, DKIOCGETBLOCKSIZE, DKIOCGETPHYSICALBLOCKSIZE } from '../../core/host/darwin.ts';
import { hostDeviceDriverFor, isWindowsDrive, protocolPrefix } from '../../core/block/filename.ts';

test('Windows names: d: and \\\\.\\d: are volumes, \\\\.\\PhysicalDriveN a disk (any case), //./ the same as \\\\.\\, /dev/cdrom the first CD-ROM', () => {
  assert.deepEqual(parseWindowsDevice('d:'), { kind: 'volume', letter: 'D', path: '\\\\.\\d:' });
  assert.deepEqual(parseWindowsDevice('\\\\.\\E:'), { kind: 'volume', letter: 'E', path: '\\\\.\\E:' });
  assert.deepEqual(parseWindowsDevice('\\\\.\\PhysicalDrive2'), { kind: 'physical-drive', index: 2, path: '\\\\.\\PhysicalDrive2' });
  assert.deepEqual(parseWindowsDevice('//./physicaldrive10'), { kind: 'physical-drive', index: 10, path: '\\\\.\\physicaldrive10' });
  assert.deepEqual(parseWindowsDevice('\\\\.\\CdRom0'), { kind: 'other', path: '\\\\.\\CdRom0' });
  assert.deepEqual(parseWindowsDevice('/dev/cdrom'), { kind: 'cdrom-alias' });
  for (const plain of ['c:\\disk.img', 'd:x', 'disk.img', '/dev/sdb', 'dd:']) assert.equal(parseWindowsDevice(plain), undefined, plain);
  assert.equal(windowsOpenPath('d:', () => undefined), '\\\\.\\d:');
  assert.equal(windowsOpenPath('/dev/cdrom', () => '\\\\.\\F:'), '\\\\.\\F:');
  assert.equal(windowsOpenPath('/dev/cdrom', () => undefined), undefined);
  assert.equal(windowsOpenPath('c:\\x.img', () => undefined), 'c:\\x.img');
});

test("QEMU's is_windows_drive probes host_device on Windows only; a drive letter is never a protocol prefix", () => {
  for (const n of ['d:', '\\\\.\\d:', '\\\\.\\PhysicalDrive0', '//./PhysicalDrive1']) {
    assert.ok(isWindowsDrive(n), n);
    assert.equal(hostDeviceDriverFor(n, 'win32'), 'host_device', n);
    assert.equal(hostDeviceDriverFor(n, 'linux'), undefined, n);
  }
  assert.equal(hostDeviceDriverFor('/dev/cdrom', 'win32'), 'host_device');
  assert.equal(hostDeviceDriverFor('c:\\disk.img', 'win32'), undefined);
  assert.equal(protocolPrefix('d:'), undefined);
});

test('macOS disk names: /dev/diskN[sM] and its raw twin /dev/rdiskN[sM]', () => {
  assert.deepEqual(parseDarwinDisk('/dev/disk2'), { disk: 2, slice: undefined, raw: false, blockPath: '/dev/disk2', rawPath: '/dev/rdisk2' });
  assert.deepEqual(parseDarwinDisk('/dev/rdisk3s1'), { disk: 3, slice: 1, raw: true, blockPath: '/dev/disk3s1', rawPath: '/dev/rdisk3s1' });
  for (const n of ['/dev/disk', '/dev/diskX', '/dev/sda', '/dev/cdrom', 'disk2']) assert.equal(parseDarwinDisk(n), undefined, n);
});

test('winioctl.h: CTL_CODE values of IOCTL_DISK_GET_LENGTH_INFO and IOCTL_DISK_GET_DRIVE_GEOMETRY_EX', () => {
  assert.equal(IOCTL_DISK_GET_LENGTH_INFO, 0x0007405c);
  assert.equal(IOCTL_DISK_GET_DRIVE_GEOMETRY_EX, 0x000700a0);
  assert.equal(ctlCode(0x2d, 0x0200, 0, 1), 0x002d4800); // IOCTL_STORAGE_CHECK_VERIFY, a documented value
});

test('GET_LENGTH_INFORMATION and DISK_GEOMETRY_EX decode at their documented offsets; short or absurd answers are refused', () => {
  const len = Buffer.alloc(8);
  len.writeBigInt64LE(32_017_047_552n);
  assert.equal(decodeLengthInfo(len, 8), 32_017_047_552n);
  assert.equal(decodeLengthInfo(len, 4), undefined);
  len.writeBigInt64LE(-1n);
  assert.equal(decodeLengthInfo(len, 8), undefined);

  const g = Buffer.alloc(DISK_GEOMETRY_EX_BUFFER);
  g.writeBigInt64LE(3892n, 0); // Cylinders
  g.writeInt32LE(12, 8); // MediaType: FixedMedia
  g.writeUInt32LE(255, 12);
  g.writeUInt32LE(63, 16);
  g.writeUInt32LE(4096, 20); // BytesPerSector
  g.writeBigInt64LE(32_017_047_552n, 24); // DiskSize
  assert.deepEqual(decodeDiskGeometryEx(g, 32), { cylinders: 3892n, mediaType: 12, tracksPerCylinder: 255, sectorsPerTrack: 63, bytesPerSector: 4096, diskSize: 32_017_047_552n });
  assert.equal(decodeDiskGeometryEx(g, 24), undefined, 'DiskSize missing');
  g.writeUInt32LE(1000, 20);
  assert.equal(decodeDiskGeometryEx(g, 32), undefined, 'a sector size that is no power of two');
});

test("a failed Windows device open is worded as QEMU's hdev_open: EACCES for access denied, EINVAL otherwise", () => {
  assert.equal(win32OpenErrorText(5), 'Could not open device: Permission denied');
  assert.equal(win32OpenErrorText('EPERM'), 'Could not open device: Permission denied'); // libuv's name for ERROR_ACCESS_DENIED
  assert.equal(win32OpenErrorText(2), 'Could not open device: Invalid argument');
  assert.equal(win32OpenErrorText('EBUSY'), 'Could not open device: Invalid argument');
  assert.equal(WIN32_ERRORS[32]?.errno, 'EBUSY');
  assert.equal(WIN32_ERRORS[21]?.errno, 'ENOMEDIUM');
});

/** The Linux/BSD _IOC encoding: dir << 30 | size << 16 | type << 8 | nr. */
const ioc = (dir: number, type: number, nr: number, size: number) => ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;

test('Linux block and CD-ROM ioctl numbers as <linux/fs.h> / <linux/cdrom.h> define them (LP64)', () => {
  assert.equal(BLKSSZGET, ioc(0, 0x12, 104, 0));
  assert.equal(BLKROGET, ioc(0, 0x12, 94, 0));
  assert.equal(BLKDISCARD, ioc(0, 0x12, 119, 0));
  assert.equal(BLKPBSZGET, ioc(0, 0x12, 123, 0));
  assert.equal(BLKZEROOUT, ioc(0, 0x12, 127, 0));
  assert.equal(BLKGETSIZE64, ioc(2, 0x12, 114, 8)); // _IOR(0x12, 114, size_t)
  assert.deepEqual([CDROMEJECT, CDROMCLOSETRAY, CDROM_DRIVE_STATUS, CDROM_LOCKDOOR, CDSL_CURRENT], [0x5309, 0x5319, 0x5326, 0x5329, 0x7fffffff]);
});

test('macOS <sys/disk.h> numbers (IOC_OUT = 0x40000000, IOC_VOID = 0x20000000)', () => {
  const bsd = (inout: number, nr: number, size: number) => (inout | (size << 16) | (0x64 << 8) | nr) >>> 0;
  assert.equal(DKIOCGETBLOCKSIZE, bsd(0x40000000, 24, 4));
  assert.equal(DKIOCGETBLOCKCOUNT, bsd(0x40000000, 25, 8));
  assert.equal(DKIOCGETPHYSICALBLOCKSIZE, bsd(0x40000000, 77, 4));
  assert.equal(DKIOCEJECT, bsd(0x20000000, 21, 0));
});

// The Drives view's listing on macOS and Windows (core/host/drives-darwin-win32.ts), from sample
// outputs WRITTEN BY HAND here (no Mac or Windows machine runs these tests) following the tools'
// documented formats: `diskutil list -plist` / `diskutil info -plist` (Apple's plist DTD, the keys
// diskutil prints), and the JSON of WINDOWS_DISKS_SCRIPT (Get-Disk / Get-Partition /
// Win32_CDROMDrive properties through ConvertTo-Json). What is proven: which devices become
// drives, their paths, models, sizes, removable and read-only flags, mount points (APFS volumes
// credited to the physical disk holding their container) and the system disk.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDiskutil, parseWindowsDisks, WINDOWS_DISKS_SCRIPT } from '../../core/host/drives-darwin-win32.ts';

const plist = (body: string) => `<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n<plist version="1.0">\n${body}\n</plist>\n`;
const kv = (o: Record<string, unknown>): string =>
  `<dict>${Object.entries(o)
    .map(([k, v]) => `<key>${k}</key>${typeof v === 'string' ? `<string>${v}</string>` : typeof v === 'number' ? `<integer>${v}</integer>` : typeof v === 'boolean' ? `<${v}/>` : Array.isArray(v) ? `<array>${v.map((x) => (typeof x === 'string' ? `<string>${x}</string>` : kv(x as Record<string, unknown>))).join('')}</array>` : kv(v as Record<string, unknown>)}`)
    .join('')}</dict>`;

// A MacBook: internal SSD disk0 (EFI + the APFS store of container disk3), a USB stick disk2 with
// a mounted FAT partition, a DVD disk4, and the synthesized container disk3.
const LIST = plist(
  kv({
    AllDisks: ['disk0', 'disk0s1', 'disk0s2', 'disk2', 'disk2s1', 'disk3', 'disk3s1', 'disk3s1s1', 'disk3s5', 'disk3s6', 'disk4'],
    AllDisksAndPartitions: [
      { Content: 'GUID_partition_scheme', DeviceIdentifier: 'disk0', OSInternal: false, Size: 500277790720, Partitions: [{ Content: 'EFI', DeviceIdentifier: 'disk0s1', DiskUUID: 'A1', Size: 314572800, VolumeName: 'EFI' }, { Content: 'Apple_APFS', DeviceIdentifier: 'disk0s2', DiskUUID: 'A2', Size: 499963174912 }] },
      { Content: 'FDisk_partition_scheme', DeviceIdentifier: 'disk2', OSInternal: false, Size: 31914983424, Partitions: [{ Content: 'DOS_FAT_32', DeviceIdentifier: 'disk2s1', MountPoint: '/Volumes/STICK', Size: 31913934848, VolumeName: 'STICK' }] },
      {
        APFSPhysicalStores: [{ DeviceIdentifier: 'disk0s2' }],
        APFSVolumes: [
          { DeviceIdentifier: 'disk3s1', DiskUUID: 'B1', MountedSnapshots: [{ Sealed: 'Yes', SnapshotBSD: 'disk3s1s1', SnapshotMountPoint: '/', SnapshotName: 'com.apple.os.update-X', SnapshotUUID: 'S1' }], OSInternal: false, Size: 499963174912, VolumeName: 'Macintosh HD' },
          { DeviceIdentifier: 'disk3s5', MountPoint: '/System/Volumes/Data', OSInternal: false, Size: 499963174912, VolumeName: 'Macintosh HD - Data' },
          { DeviceIdentifier: 'disk3s6', MountPoint: '/System/Volumes/VM', OSInternal: false, Size: 499963174912, VolumeName: 'VM' },
        ],
        Content: 'EF57347C-0000-11AA-AA11-00306543ECAC',
        DeviceIdentifier: 'disk3',
        OSInternal: false,
        Size: 499963174912,
      },
      { Content: '', DeviceIdentifier: 'disk4', OSInternal: false, Size: 4697620480 },
    ],
    VolumesFromDisks: ['STICK', 'Macintosh HD', 'Macintosh HD - Data', 'VM'],
    WholeDisks: ['disk0', 'disk2', 'disk3', 'disk4'],
  }),
);
const INFO: Record<string, string> = {
  disk0: plist(kv({ BusProtocol: 'Apple Fabric', DeviceIdentifier: 'disk0', DeviceNode: '/dev/disk0', Ejectable: false, Internal: true, IORegistryEntryName: 'APPLE SSD AP0512Q Media', MediaName: 'APPLE SSD AP0512Q', Removable: false, RemovableMedia: false, Size: 500277790720, TotalSize: 500277790720, VirtualOrPhysical: 'Physical', WholeDisk: true, WritableMedia: true })),
  disk2: plist(kv({ BusProtocol: 'USB', DeviceIdentifier: 'disk2', DeviceNode: '/dev/disk2', Ejectable: true, Internal: false, MediaName: 'SanDisk Cruzer Blade', Removable: true, RemovableMedia: true, Size: 31914983424, TotalSize: 31914983424, VirtualOrPhysical: 'Physical', WholeDisk: true, WritableMedia: true })),
  disk3: plist(kv({ DeviceIdentifier: 'disk3', DeviceNode: '/dev/disk3', MediaName: '', Size: 499963174912, TotalSize: 499963174912, VirtualOrPhysical: 'Virtual', WholeDisk: true, WritableMedia: true })),
  disk4: plist(kv({ BusProtocol: 'USB', DeviceIdentifier: 'disk4', DeviceNode: '/dev/disk4', Ejectable: true, MediaName: 'HL-DT-ST DVDRAM GP65NB60', OpticalDeviceType: 'DVD-RW', OpticalMediaType: 'DVD-ROM', Removable: true, RemovableMedia: true, Size: 4697620480, TotalSize: 4697620480, WholeDisk: true, WritableMedia: false })),
};

test('diskutil: physical whole disks; APFS volumes count for the disk holding their container; the system disk', () => {
  const drives = parseDiskutil(LIST, (id) => INFO[id]);
  assert.deepEqual(drives, [
    { path: '/dev/disk0', name: 'disk0', type: 'disk', size: 500277790720, model: 'APPLE SSD AP0512Q', removable: false, readOnly: false, mountpoints: ['/', '/System/Volumes/Data', '/System/Volumes/VM'], system: true },
    { path: '/dev/disk2', name: 'disk2', type: 'disk', size: 31914983424, model: 'SanDisk Cruzer Blade', removable: true, readOnly: false, mountpoints: ['/Volumes/STICK'], system: false },
    { path: '/dev/disk4', name: 'disk4', type: 'rom', size: 4697620480, model: 'HL-DT-ST DVDRAM GP65NB60', removable: true, readOnly: true, mountpoints: [], system: false },
  ]);
  // A disk whose info cannot be read is left out; garbage lists give no drives.
  assert.deepEqual(parseDiskutil(LIST, (id) => (id === 'disk2' ? INFO[id] : 'not a plist')).map((d) => d.name), ['disk2']);
  assert.deepEqual(parseDiskutil('diskutil: error', () => undefined), []);
});

test('Windows: disks as \\\\.\\PhysicalDriveN with their letters, the boot/system disk, USB removable, optical drives as \\\\.\\D:', () => {
  assert.match(WINDOWS_DISKS_SCRIPT, /Get-Disk .*Get-Partition .*Win32_CDROMDrive.*ConvertTo-Json/);
  const json = JSON.stringify({
    disks: [
      { Number: 0, FriendlyName: 'Samsung SSD 970 EVO Plus 1TB', Size: 1000204886016, BusType: 'NVMe', IsBoot: true, IsSystem: true, IsReadOnly: false },
      { Number: 1, FriendlyName: 'Kingston DataTraveler 3.0', Size: 15502147584, BusType: 'USB', IsBoot: false, IsSystem: false, IsReadOnly: false },
      { Number: 2, FriendlyName: 'WDC WD20EZRZ-00Z5HB0', Size: 2000398934016, BusType: '11', IsBoot: false, IsSystem: false, IsReadOnly: true },
      { Number: 3, FriendlyName: 'Generic SD Reader', Size: 0, BusType: 'SD', IsBoot: false, IsSystem: false, IsReadOnly: false },
    ],
    partitions: [
      { DiskNumber: 0, DriveLetter: '', IsBoot: false, IsSystem: true },
      { DiskNumber: 0, DriveLetter: 'C', IsBoot: true, IsSystem: false },
      { DiskNumber: 1, DriveLetter: 'e', IsBoot: false, IsSystem: false },
      { DiskNumber: 2, DriveLetter: 'F', IsBoot: false, IsSystem: false },
    ],
    cdroms: { Drive: 'D:', Caption: 'HL-DT-ST DVDRAM GH24NSD1', Size: 4700372992 },
    systemDrive: 'C:',
  });
  assert.deepEqual(parseWindowsDisks(json), [
    { path: '\\\\.\\PhysicalDrive0', name: 'PhysicalDrive0', type: 'disk', size: 1000204886016, model: 'Samsung SSD 970 EVO Plus 1TB', removable: false, readOnly: false, mountpoints: ['C:'], system: true },
    { path: '\\\\.\\PhysicalDrive1', name: 'PhysicalDrive1', type: 'disk', size: 15502147584, model: 'Kingston DataTraveler 3.0', removable: true, readOnly: false, mountpoints: ['E:'], system: false },
    { path: '\\\\.\\PhysicalDrive2', name: 'PhysicalDrive2', type: 'disk', size: 2000398934016, model: 'WDC WD20EZRZ-00Z5HB0', removable: false, readOnly: true, mountpoints: ['F:'], system: false },
    { path: '\\\\.\\D:', name: 'D:', type: 'rom', size: 4700372992, model: 'HL-DT-ST DVDRAM GH24NSD1', removable: true, readOnly: true, mountpoints: [], system: false },
  ]);
  // The disk holding %SystemDrive% is the system disk even when Windows flags another.
  const moved = JSON.parse(json);
  moved.systemDrive = 'E:';
  assert.equal(parseWindowsDisks(JSON.stringify(moved))[1]!.system, true);
  // An optical drive without a disc (no Size), and unreadable output, give nothing.
  assert.equal(parseWindowsDisks(JSON.stringify({ disks: [], cdroms: [{ Drive: 'D:', Caption: 'DVD', Size: null }] })).length, 0);
  assert.deepEqual(parseWindowsDisks('Get-Disk : Access denied'), []);
});

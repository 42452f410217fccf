// The `host_device` and `host_cdrom` protocols (QEMU 7.2 block/file-posix.c bdrv_host_device and
// bdrv_host_cdrom; qemu-block-drivers(7) "Using host drives"): a whole disk, partition, loop
// device, floppy (/dev/fd0: QEMU 7.2 has no host_floppy, it is a host_device) or CD-ROM drive as
// a fixed-size byte array. The I/O, locking (QEMU's lock bytes 100..203 on the device node, as
// for files) and cache options are the file protocol's (openPosix); what differs:
// - probing: a plain name that is a block or character device opens as host_device (score 100;
//   "/dev/cdrom..." 50), a block device that answers CDROM_DRIVE_STATUS as host_cdrom (100, and
//   it wins the tie), as QEMU's hdev_probe_device / cdrom_probe_device;
// - open: the node must be a character or block device ("'host_device' driver requires 'x' to
//   be either a character or block device"); a device the kernel marks read-only (BLKROGET)
//   refuses a writable open ("The device is not writable");
// - size from BLKGETSIZE64, block sizes from BLKSSZGET / BLKPBSZGET, write-zeroes through
//   BLKZEROOUT, discard through BLKDISCARD (core/host), no zero-init (old data stays), never
//   grown ("Cannot grow device files"), images created onto it as bdrv_co_create_opts_simple;
// - host_cdrom opens with O_NONBLOCK (a drive without a disc opens), and has QEMU's medium
//   calls: isInserted (CDROM_DRIVE_STATUS == CDS_DISC_OK), eject (CDROMEJECT/CDROMCLOSETRAY),
//   lockMedium (CDROM_LOCKDOOR, failures ignored as QEMU does).
// Options: filename, locking=on|off|auto, aio (accepted), cache.direct, cache.no-flush (as file).
// Windows (\\.\PhysicalDriveN, \\.\d:, d:, /dev/cdrom): windows.ts (untested on real Windows).
// macOS: /dev/diskN and /dev/rdiskN open here as on Linux, sized by DKIOCGETBLOCKCOUNT x
// DKIOCGETBLOCKSIZE (core/host/darwin.ts; untested on a real Mac); its /dev/cdrom alias is the
// first ejectable DVD/CD medium in the I/O Registry, as QEMU looks it up (darwin.ts).

import { constants, fstatSync, openSync, closeSync, statSync } from 'node:fs';
import type { ProtocolDriver } from '../../block/types.ts';
import type { OptionsTree } from '../../block/options-tree.ts';
import { hostOps, type CdromStatus } from '../../host/index.ts';
import { FileNode, openPosix, type FileNodeInit } from '../file/index.ts';
import { openWindowsDevice } from './windows.ts';
import { openDarwinDevice } from './darwin.ts';

/** bdrv_parse_filename_strip_prefix: "host_device:/dev/sdb" is /dev/sdb. */
function stripPrefix(filename: string, prefix: string): OptionsTree {
  return { filename: filename.startsWith(prefix) ? filename.slice(prefix.length) : filename };
}

/** QEMU's hdev_probe_device (POSIX). */
export function probeHostDevice(filename: string): number {
  if (filename.startsWith('/dev/cdrom')) return 50; // leaves the dedicated CD-ROM driver room
  try {
    const st = statSync(filename);
    return st.isCharacterDevice() || st.isBlockDevice() ? 100 : 0;
  } catch {
    return 0;
  }
}

/** QEMU's cdrom_probe_device (Linux): a block device that answers CDROM_DRIVE_STATUS. */
export function probeHostCdrom(filename: string): number {
  const device = hostOps().device;
  if (!device || process.platform !== 'linux') return 0;
  // Only block devices can answer; checking first spares opening every plain file (QEMU opens
  // then fstats: the same answer).
  try {
    if (!statSync(filename).isBlockDevice()) return 0;
  } catch {
    return 0;
  }
  let fd = -1;
  try {
    fd = openSync(filename, constants.O_RDONLY | constants.O_NONBLOCK);
    if (!fstatSync(fd).isBlockDevice()) return 0;
    return device.cdromStatus(fd) !== undefined ? 100 : 0;
  } catch {
    return 0;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** A CD-ROM drive's node: the file node plus QEMU's removable-medium calls. */
export class CdromNode extends FileNode {
  constructor(init: FileNodeInit) {
    super(init);
  }

  /** The drive's state (CDROM_DRIVE_STATUS), undefined when it does not answer. */
  mediumStatus(): CdromStatus | undefined {
    return hostOps().device?.cdromStatus(this.fd);
  }

  /** QEMU's cdrom_is_inserted: a disc is in and readable. */
  isInserted(): boolean {
    return this.mediumStatus() === 'disc-ok';
  }

  /** QEMU's cdrom_eject: open the tray (true) or close it; false when the drive refused. */
  eject(open: boolean): boolean {
    return hostOps().device?.cdromEject(this.fd, open) ?? false;
  }

  /** QEMU's cdrom_lock_medium: lock or unlock the door; a refusal (an automounted disc) is not an
   *  error, as in QEMU, and is returned as false. */
  lockMedium(locked: boolean): boolean {
    return hostOps().device?.cdromLockDoor(this.fd, locked) ?? false;
  }
}

export const hostDeviceDriver: ProtocolDriver = {
  kind: 'protocol',
  name: 'host_device',
  description: 'A host disk, partition or other block/character device',
  prefixes: ['host_device'],
  createOptions: [],
  createSimple: true,
  parseFilename: (filename) => stripPrefix(filename, 'host_device:'),
  probeDevice: probeHostDevice,
  open: (ctx) => (process.platform === 'win32' ? openWindowsDevice(ctx) : process.platform === 'darwin' ? openDarwinDevice(ctx) : openPosix(ctx, 'host_device')),
};

export const hostCdromDriver: ProtocolDriver = {
  kind: 'protocol',
  name: 'host_cdrom',
  description: 'A host CD-ROM/DVD drive',
  noDriverInfo: true, // QEMU's host_cdrom has no bdrv_get_info: info shows no dirty flag
  prefixes: ['host_cdrom'],
  createOptions: [],
  createSimple: true,
  parseFilename: (filename) => stripPrefix(filename, 'host_cdrom:'),
  probeDevice: probeHostCdrom,
  // O_NONBLOCK: the open does not fail without a disc (QEMU's cdrom_open).
  open: (ctx) => openPosix(ctx, 'host_cdrom', { extraFlags: constants.O_NONBLOCK ?? 0, construct: (init) => new CdromNode(init) }),
};

// macOS's "/dev/cdrom" (qemu-block-drivers(7) "Using host drives"; QEMU 7.2 block/file-posix.c
// hdev_open on __APPLE__): there is no such node, so host_device looks the optical drive up in
// the I/O Registry. The facts of QEMU's lookup, followed here:
// - the media classes are tried in order IODVDMedia, then IOCDMedia, each matched (with its
//   subclasses) only where the property "Ejectable" is true; the first class with a match wins;
// - the first match's "BSD Name" (disk2) gives /dev/disk2, or /dev/rdisk2 (the raw node) when
//   the node is opened with cache.direct=on (BDRV_O_NOCACHE);
// - a CD (IOCDMedia, not a DVD) opens through its first partition that opens read-only, trying
//   s0 then s1 (/dev/disk2s0, /dev/disk2s1);
// - the failures: no optical medium "Please make sure your CD/DVD is in the optical drive", no
//   BSD name "Could not get BSD path for optical drive", no working partition "Failed to find a
//   working partition on disc", printed after three lines of directions for unmounting the disc.
//   (A registry lookup that answers "no match" with an empty iterator rather than none, as
//   IOKit's documentation allows either, would make QEMU stop at the DVD class with "Could not
//   get BSD path"; Platter follows the documented reading: no match, try the next class.)
// Only the name "/dev/cdrom" itself is the alias (an exact comparison in QEMU).
// QEMU asks IOKit directly (IOServiceMatching + IOServiceGetMatchingServices); Platter asks the
// same registry through ioreg(8), `ioreg -r -a -c CLASS` (the matching objects as an XML property
// list), and reads the answer with the plist reader: the same query, with no hand-managed
// CoreFoundation objects in FFI code that cannot be tested here. Pure parts are unit-tested on Linux.

import { closeSync, constants, openSync } from 'node:fs';
import { BlockError } from '../errors.ts';
import { isDict, parsePlist, type PlistValue } from './plist.ts';
import { nodeChildProcess } from './lazy-node-modules.ts';

export const DARWIN_CDROM_ALIAS = '/dev/cdrom';
/** QEMU's matching order (kIODVDMediaClass, kIOCDMediaClass). */
export const OPTICAL_MEDIA_CLASSES = ['IODVDMedia', 'IOCDMedia'] as const;
export type OpticalMediaClass = (typeof OPTICAL_MEDIA_CLASSES)[number];

export const NO_OPTICAL_MEDIUM = 'Please make sure your CD/DVD is in the optical drive';
export const NO_BSD_PATH = 'Could not get BSD path for optical drive';
export const NO_WORKING_PARTITION = 'Failed to find a working partition on disc';

/** QEMU's print_unmounting_directions: the lines printed before an open failure of a disk. */
export function unmountingDirections(path: string): string[] {
  return [`If device ${path} is mounted on the desktop, unmount it first before using it in QEMU`, `Command to unmount device: diskutil unmountDisk ${path}`, `Command to mount device: diskutil mountDisk ${path}`];
}

/** The first registry object of `ioreg -r -a -c CLASS`'s answer that is ejectable: its BSD name
 *  ('' when it has none), or undefined when no object is ejectable. */
export function firstEjectableBsdName(answer: PlistValue): string | undefined {
  const entries = Array.isArray(answer) ? answer : [answer];
  for (const e of entries) {
    if (!isDict(e) || e['Ejectable'] !== true) continue;
    const name = e['BSD Name'];
    return typeof name === 'string' ? name : '';
  }
  return undefined;
}

/** /dev/NAME, or /dev/rNAME for cache.direct=on (QEMU's GetBSDPath with BDRV_O_NOCACHE). */
export function bsdDevicePath(bsdName: string, direct: boolean): string {
  if (!/^disk\d+(s\d+)?$/.test(bsdName)) throw new BlockError('NotFound', NO_BSD_PATH);
  return `/dev/${direct ? 'r' : ''}${bsdName}`;
}

export interface CdromLookup {
  /** `ioreg -r -a -c CLASS` output ('' when ioreg found nothing or failed). */
  ioreg(cls: OpticalMediaClass): Promise<string>;
  /** Does this node open read-only? (QEMU's setup_cdrom test.) */
  opens(path: string): boolean;
}

function runIoreg(cls: OpticalMediaClass): Promise<string> {
  return new Promise((resolve) => {
    nodeChildProcess().execFile('/usr/sbin/ioreg', ['-r', '-a', '-c', cls], { timeout: 10_000, maxBuffer: 8 << 20 }, (err, stdout) => resolve(err ? '' : stdout));
  });
}

function opensReadOnly(path: string): boolean {
  try {
    closeSync(openSync(path, constants.O_RDONLY));
    return true;
  } catch {
    return false;
  }
}

export const systemCdromLookup: CdromLookup = { ioreg: runIoreg, opens: opensReadOnly };

const fail = (message: string, reportedBefore?: string[]) => new BlockError('NotFound', message, { path: DARWIN_CDROM_ALIAS, op: 'open' }, reportedBefore ? { reportedBefore } : {});

/** The node "/dev/cdrom" stands for on macOS, found as QEMU finds it (see the head). */
export async function resolveDarwinCdrom(direct: boolean, lookup: CdromLookup = systemCdromLookup): Promise<string> {
  for (const cls of OPTICAL_MEDIA_CLASSES) {
    const out = await lookup.ioreg(cls);
    if (!out.trim()) continue;
    let answer: PlistValue;
    try {
      answer = parsePlist(out);
    } catch {
      continue;
    }
    const name = firstEjectableBsdName(answer);
    if (name === undefined) continue;
    let path: string;
    try {
      path = bsdDevicePath(name, direct);
    } catch {
      throw fail(NO_BSD_PATH);
    }
    if (cls === 'IOCDMedia') {
      const part = [0, 1].map((i) => `${path}s${i}`).find((p) => lookup.opens(p));
      if (!part) throw fail(NO_WORKING_PARTITION, unmountingDirections(path));
      return part;
    }
    return path;
  }
  throw fail(NO_OPTICAL_MEDIUM);
}

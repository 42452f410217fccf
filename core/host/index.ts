// Host OS operations Node lacks (docs/architecture.md core/host): sparse-file queries, hole punching,
// preallocation, byte-range locks, NOCOW, device sizes, aligned buffers for direct I/O. One module
// per OS behind this interface (linux.ts, darwin.ts, win32.ts; portable.ts when none loads);
// drivers never call the OS directly. Every operation has a portable answer when the OS module
// cannot do it (undefined / false), so callers degrade as QEMU does.

export type LockType = 'read' | 'write' | 'unlock';

export interface HostOps {
  readonly platform: string;
  /** SEEK_DATA: offset of the next data at or after `offset`; -1 when there is none (ENXIO);
   *  undefined when the OS/filesystem cannot tell. */
  seekData(fd: number, offset: number): number | undefined;
  /** SEEK_HOLE: offset of the next hole at or after `offset` (end of file counts as a hole). */
  seekHole(fd: number, offset: number): number | undefined;
  /** Deallocate a range, keeping the size (FALLOC_FL_PUNCH_HOLE). False if unsupported;
   *  throws (an errno-coded Error) on a real I/O failure. */
  punchHole(fd: number, offset: number, length: number): Promise<boolean>;
  /** Make a range read as zeros, allocated (FALLOC_FL_ZERO_RANGE). False if unsupported. */
  zeroRange(fd: number, offset: number, length: number): Promise<boolean>;
  /** posix_fallocate: allocate blocks for [offset, offset+length), growing the file. False if
   *  the filesystem cannot (EOPNOTSUPP/ENOSYS); throws on other errors (ENOSPC, EIO). */
  allocate(fd: number, offset: number, length: number): Promise<boolean>;
  /** Set the btrfs NOCOW attribute (FS_NOCOW_FL) on an empty file; false where it does not apply. */
  setNoCow(fd: number): boolean;
  /**
   * Byte-range lock, non-blocking. `ofd` selects open-file-description locks (F_OFD_SETLK) over
   * POSIX process locks. Returns false on conflict (EAGAIN/EACCES); throws on other errors.
   */
  setLock(fd: number, start: number, length: number, type: LockType, ofd: boolean): boolean;
  /** Would a lock of this type conflict? Returns true on conflict (F_OFD_GETLK/F_GETLK). */
  testLock(fd: number, start: number, length: number, type: 'read' | 'write', ofd: boolean): boolean;
  /** Whether OFD locks work here (QEMU's qemu_probe_lock_ops). */
  readonly ofdLocksSupported: boolean;
  /** Whether this OS module takes real byte-range locks at all (false: locking is a no-op). */
  readonly locksSupported: boolean;
  /** testLock reports locks this same fd holds as conflicts (Windows): callers test first. */
  readonly testSeesOwnLocks?: boolean;
  /** Size of a block device, or undefined when fd is not one. */
  deviceSize(fd: number): number | undefined;
  /** Logical block size of a block device (BLKSSZGET), or undefined when fd is not one. */
  deviceBlockSize(fd: number): number | undefined;
  /** Host block device and CD-ROM calls (core/protocols/host-device). Optional: an OS module
   *  without them leaves the driver to its portable answers (write zeros, no discard, no tray). */
  readonly device?: DeviceOps;
  /** Turn direct (uncached) I/O on for an open fd where the OS does it by fcntl rather than an open
   *  flag (macOS F_NOCACHE). False when the OS has no such call. */
  setDirectIo(fd: number): boolean;
  /**
   * Mark every thread of this process except the calling main thread as batch work (Linux
   * SCHED_BATCH): a woken helper thread (libuv's I/O pool, V8's compiler and GC helpers) then
   * waits for the next scheduling tick instead of preempting the thread that feeds it. For a
   * command-line process, whose main thread dispatches every request. Returns how many threads
   * were changed (0 where the OS has no such policy).
   */
  batchHelperThreads(): number;
}

/** CD-ROM drive states (<linux/cdrom.h> CDS_*), as CDROM_DRIVE_STATUS answers. */
export type CdromStatus = 'no-info' | 'no-disc' | 'tray-open' | 'not-ready' | 'disc-ok';

/** Block device and CD-ROM ioctls (Linux <linux/fs.h>, <linux/cdrom.h>). */
export interface DeviceOps {
  /** Physical block size (BLKPBSZGET); undefined when fd is not a block device. */
  physicalBlockSize(fd: number): number | undefined;
  /** The kernel's read-only flag of a block device (BLKROGET, set by blockdev --setro). */
  isReadOnly(fd: number): boolean;
  /** BLKDISCARD of a byte range: false when the device cannot (EOPNOTSUPP, ENOTTY); throws on I/O errors. */
  discard(fd: number, offset: number, length: number): Promise<boolean>;
  /** BLKZEROOUT of a byte range: false when unsupported; throws on I/O errors. */
  zeroOut(fd: number, offset: number, length: number): Promise<boolean>;
  /** CDROM_DRIVE_STATUS(CDSL_CURRENT): undefined when fd is no CD-ROM drive (the ioctl fails). */
  cdromStatus(fd: number): CdromStatus | undefined;
  /** CDROMEJECT (eject true) or CDROMCLOSETRAY: false when the drive refused. */
  cdromEject(fd: number, eject: boolean): boolean;
  /** CDROM_LOCKDOOR: false when the drive refused (an automounted disc, say). */
  cdromLockDoor(fd: number, locked: boolean): boolean;
  /** Windows: the first CD-ROM drive as "\\.\X:" (QEMU's find_cdrom), for the /dev/cdrom alias. */
  firstCdrom?(): string | undefined;
}

import { createLinuxHost } from './linux.ts';
import { createDarwinHost } from './darwin.ts';
import { createWin32Host } from './win32.ts';
import { createPortableHost } from './portable.ts';

let host: HostOps | undefined;

/** The HostOps for this process's OS (loaded once; portable when the OS module cannot load). */
export function hostOps(): HostOps {
  if (!host) {
    try {
      if (process.platform === 'linux') host = createLinuxHost();
      else if (process.platform === 'darwin') host = createDarwinHost();
      else if (process.platform === 'win32') host = createWin32Host();
      else host = createPortableHost();
    } catch {
      host = createPortableHost();
    }
  }
  return host;
}

export { alignedBuffer, canAlignBuffers, isAligned, PAGE_ALIGNMENT } from './aligned.ts';

// Linux HostOps through koffi (FFI into glibc): lseek(SEEK_DATA/SEEK_HOLE), fallocate(2)
// (PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE), posix_fallocate(3), fcntl(2) record locks (F_OFD_SETLK /
// F_OFD_GETLK, F_SETLK / F_GETLK fallback), ioctl_iflags(2) FS_IOC_GETFLAGS/SETFLAGS for
// FS_NOCOW_FL, block device ioctls BLKGETSIZE64/BLKSSZGET (<linux/fs.h>), and
// sched_setscheduler(2) SCHED_BATCH for a CLI's helper threads.
// Only LP64 targets (x86-64, aarch64) are handled: the struct layout and ioctl numbers below are
// theirs; any other arch makes createLinuxHost throw and the portable host is used instead.
// Slow calls (fallocate of large ranges) use koffi's async form so the event loop keeps running.
import { koffi } from './ffi.ts';
import { openSync, closeSync, fstatSync, readdirSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import type { DeviceOps, HostOps, LockType } from './index.ts';
import { errnoError } from './errno.ts';
import { encodeFlock, decodeFlockType, F_RDLCK, F_WRLCK, F_UNLCK } from './flock.ts';

/** lseek(2) whence values (<unistd.h>, same on every Linux arch). */
const SEEK_DATA = 3;
const SEEK_HOLE = 4;

/** fcntl(2) commands (<asm-generic/fcntl.h>; x86-64 and aarch64 use the generic numbers). */
const F_GETLK = 5;
const F_SETLK = 6;
const F_OFD_GETLK = 36;
const F_OFD_SETLK = 37;

/** fallocate(2) mode bits (<linux/falloc.h>). */
const FALLOC_FL_KEEP_SIZE = 0x01;
const FALLOC_FL_PUNCH_HOLE = 0x02;
const FALLOC_FL_ZERO_RANGE = 0x10;

/** ioctl numbers (<linux/fs.h>) as _IOR/_IOW encode them on LP64 (sizeof(long) = 8). */
const FS_IOC_GETFLAGS = 0x80086601; // _IOR('f', 1, long)
const FS_IOC_SETFLAGS = 0x40086602; // _IOW('f', 2, long)
export const BLKGETSIZE64 = 0x80081272; // _IOR(0x12, 114, size_t)
export const BLKSSZGET = 0x1268; // _IO(0x12, 104), result is an int
export const BLKPBSZGET = 0x127b; // _IO(0x12, 123), result is an unsigned int
export const BLKROGET = 0x125e; // _IO(0x12, 94), result is an int
export const BLKDISCARD = 0x1277; // _IO(0x12, 119), arg: uint64_t range[2] = { start, length }
export const BLKZEROOUT = 0x127f; // _IO(0x12, 127), arg: uint64_t range[2] = { start, length }
/** CD-ROM ioctls (<linux/cdrom.h>): plain numbers, the argument passed by value. */
export const CDROMEJECT = 0x5309;
export const CDROMCLOSETRAY = 0x5319;
export const CDROM_DRIVE_STATUS = 0x5326;
export const CDROM_LOCKDOOR = 0x5329;
/** CDSL_CURRENT: ((int)(~0U >> 1)), "the current slot". */
export const CDSL_CURRENT = 0x7fffffff;
/** CDROM_DRIVE_STATUS answers, CDS_NO_INFO (0) .. CDS_DISC_OK (4). */
export const CDS_STATES = ['no-info', 'no-disc', 'tray-open', 'not-ready', 'disc-ok'] as const;
/** Ranges above this go to koffi's thread pool (a zero-out of gigabytes takes a while). */
const SYNC_DEVICE_RANGE_MAX = 16 << 20;
/** sched_setscheduler(2) policy (<linux/sched.h>): no wakeup preemption, for batch work. */
const SCHED_BATCH = 3;

/** The btrfs "no copy on write" inode flag (FS_NOCOW_FL). */
const FS_NOCOW_FL = 0x00800000;

const E = osConstants.errno;
/** errno values meaning "this filesystem/kernel cannot do that" rather than an I/O failure. */
const UNSUPPORTED_ERRNOS = new Set<number>([E.EOPNOTSUPP, E.ENOTSUP, E.ENOSYS, E.EINVAL, E.ENOTTY].filter((v) => v !== undefined));

/** Largest range handed to one synchronous fallocate; bigger ones go to koffi's thread pool. */
const SYNC_FALLOCATE_MAX = 64 << 20;

/** Both supported architectures share one struct flock layout (see flock.ts). */
function checkArch(): void {
  if (process.arch !== 'x64' && process.arch !== 'arm64') {
    throw new Error(`Linux host module supports x64 and arm64, not ${process.arch}`);
  }
}

export function createLinuxHost(): HostOps {
  checkArch();
  const ffi = koffi();
  const libc = ffi.load('libc.so.6');
  const lseek = libc.func('int64_t lseek(int fd, int64_t offset, int whence)');
  const fallocate = libc.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)');
  const posixFallocate = libc.func('int posix_fallocate(int fd, int64_t offset, int64_t len)');
  const fcntlLock = libc.func('int fcntl(int fd, int cmd, void *lock)');
  const ioctlPtr = libc.func('int ioctl(int fd, unsigned long request, void *arg)');
  const ioctlLong = libc.func('ioctl', 'int', ['int', 'unsigned long', 'long']);
  const setScheduler = libc.func('int sched_setscheduler(int pid, int policy, void *param)');
  const errnoLocation = libc.func('int *__errno_location()');
  /** errno of this thread, read right after the failing call (nothing else runs in between). */
  const errno = (): number => ffi.decode(errnoLocation(), 'int') as number;

  const seek = (fd: number, offset: number, whence: number): number | undefined => {
    const r = Number(lseek(fd, offset, whence));
    if (r >= 0) return r;
    return errno() === E.ENXIO ? -1 : undefined;
  };

  /**
   * fallocate(fd, mode, offset, len): true on success, false when unsupported, throws otherwise.
   * Big ranges run on koffi's worker thread; errno there belongs to that thread, so a failure is
   * repeated synchronously to read it (a failing fallocate returns at once, and a retried punch or
   * zero-range is idempotent).
   */
  const doFallocate = async (fd: number, mode: number, offset: number, length: number): Promise<boolean> => {
    if (length <= 0) return true;
    let r: number;
    if (length > SYNC_FALLOCATE_MAX) {
      r = await new Promise<number>((res, rej) => fallocate.async(fd, mode, offset, length, (err: unknown, v: number) => (err ? rej(err) : res(v))));
      if (r === 0) return true;
    }
    r = fallocate(fd, mode, offset, length) as number;
    if (r === 0) return true;
    const e = errno();
    if (UNSUPPORTED_ERRNOS.has(e)) return false;
    throw errnoError(e, 'fallocate');
  };

  const lockCall = (fd: number, cmd: number, start: number, length: number, type: number): Buffer => {
    const fl = encodeFlock(type, start, length);
    const r = fcntlLock(fd, cmd, fl) as number;
    if (r === -1) {
      const e = errno();
      const err = errnoError(e, 'fcntl');
      (err as { lockConflict?: boolean }).lockConflict = e === E.EAGAIN || e === E.EACCES;
      throw err;
    }
    return fl;
  };

  const probeOfd = (): boolean => {
    // QEMU's qemu_probe_lock_ops: F_OFD_GETLK on any fd fails with EINVAL where OFD is missing.
    let fd = -1;
    try {
      fd = openSync('/dev/null', 'r');
      lockCall(fd, F_OFD_GETLK, 0, 0, F_WRLCK);
      return true;
    } catch {
      return false;
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  };
  const ofd = probeOfd();

  const isBlockDevice = (fd: number): boolean => {
    try {
      return fstatSync(fd).isBlockDevice();
    } catch {
      return false;
    }
  };

  /** A range ioctl (BLKDISCARD, BLKZEROOUT): true on success, false when the device cannot,
   *  throws on other errors. Large ranges run on koffi's pool; a failure there is repeated
   *  synchronously to read errno (both ioctls are idempotent). */
  const rangeIoctl = async (fd: number, request: number, name: string, offset: number, length: number): Promise<boolean> => {
    if (length <= 0) return true;
    const range = Buffer.alloc(16);
    range.writeBigUInt64LE(BigInt(offset), 0);
    range.writeBigUInt64LE(BigInt(length), 8);
    if (length > SYNC_DEVICE_RANGE_MAX) {
      const r = await new Promise<number>((res, rej) => ioctlPtr.async(fd, request, range, (err: unknown, v: number) => (err ? rej(err) : res(v))));
      if (r === 0) return true;
    }
    for (;;) {
      if ((ioctlPtr(fd, request, range) as number) === 0) return true;
      const e = errno();
      if (e === E.EINTR) continue;
      if (UNSUPPORTED_ERRNOS.has(e) || e === E.ENODEV) return false;
      throw errnoError(e, name);
    }
  };

  const device: DeviceOps = {
    physicalBlockSize(fd) {
      if (!isBlockDevice(fd)) return undefined;
      const out = Buffer.alloc(8);
      if ((ioctlPtr(fd, BLKPBSZGET, out) as number) !== 0) return undefined;
      const v = out.readUInt32LE(0);
      return v > 0 ? v : undefined;
    },
    isReadOnly(fd) {
      if (!isBlockDevice(fd)) return false;
      const out = Buffer.alloc(8);
      if ((ioctlPtr(fd, BLKROGET, out) as number) !== 0) return false;
      return out.readInt32LE(0) !== 0;
    },
    discard: (fd, offset, length) => rangeIoctl(fd, BLKDISCARD, 'ioctl(BLKDISCARD)', offset, length),
    zeroOut: (fd, offset, length) => rangeIoctl(fd, BLKZEROOUT, 'ioctl(BLKZEROOUT)', offset, length),
    cdromStatus(fd) {
      const r = ioctlLong(fd, CDROM_DRIVE_STATUS, CDSL_CURRENT) as number;
      if (r < 0) return undefined;
      return CDS_STATES[r] ?? 'no-info';
    },
    cdromEject: (fd, eject) => (ioctlLong(fd, eject ? CDROMEJECT : CDROMCLOSETRAY, 0) as number) >= 0,
    cdromLockDoor: (fd, locked) => (ioctlLong(fd, CDROM_LOCKDOOR, locked ? 1 : 0) as number) >= 0,
  };

  return {
    platform: 'linux',
    device,
    ofdLocksSupported: ofd,
    locksSupported: true,
    seekData: (fd, offset) => seek(fd, offset, SEEK_DATA),
    seekHole: (fd, offset) => seek(fd, offset, SEEK_HOLE),
    punchHole: (fd, offset, length) => doFallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length),
    zeroRange: (fd, offset, length) => doFallocate(fd, FALLOC_FL_ZERO_RANGE, offset, length),
    async allocate(fd, offset, length) {
      if (length <= 0) return true;
      // posix_fallocate returns the error number instead of setting errno: safe on any thread.
      // glibc emulates it by writing one byte per block where fallocate is missing: slow, so async.
      const r = await new Promise<number>((res, rej) => posixFallocate.async(fd, offset, length, (err: unknown, v: number) => (err ? rej(err) : res(v))));
      if (r === 0) return true;
      if (UNSUPPORTED_ERRNOS.has(r)) return false;
      throw errnoError(r, 'posix_fallocate');
    },
    setNoCow(fd) {
      // Only meaningful before data is written (chattr(1) +C); other filesystems refuse or ignore
      // the flag, which we report as false by reading it back.
      const flags = Buffer.alloc(8);
      if ((ioctlPtr(fd, FS_IOC_GETFLAGS, flags) as number) !== 0) return false;
      flags.writeInt32LE(flags.readInt32LE(0) | FS_NOCOW_FL, 0);
      if ((ioctlPtr(fd, FS_IOC_SETFLAGS, flags) as number) !== 0) return false;
      const check = Buffer.alloc(8);
      if ((ioctlPtr(fd, FS_IOC_GETFLAGS, check) as number) !== 0) return false;
      return (check.readInt32LE(0) & FS_NOCOW_FL) !== 0;
    },
    setLock(fd: number, start: number, length: number, type: LockType, useOfd: boolean): boolean {
      const t = type === 'read' ? F_RDLCK : type === 'write' ? F_WRLCK : F_UNLCK;
      try {
        lockCall(fd, useOfd ? F_OFD_SETLK : F_SETLK, start, length, t);
        return true;
      } catch (e) {
        if ((e as { lockConflict?: boolean }).lockConflict) return false;
        throw e;
      }
    },
    testLock(fd, start, length, type, useOfd) {
      const fl = lockCall(fd, useOfd ? F_OFD_GETLK : F_GETLK, start, length, type === 'read' ? F_RDLCK : F_WRLCK);
      return decodeFlockType(fl) !== F_UNLCK;
    },
    deviceSize(fd) {
      if (!isBlockDevice(fd)) return undefined;
      const out = Buffer.alloc(8);
      if ((ioctlPtr(fd, BLKGETSIZE64, out) as number) !== 0) return undefined;
      const size = out.readBigUInt64LE(0);
      return size <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(size) : undefined;
    },
    deviceBlockSize(fd) {
      if (!isBlockDevice(fd)) return undefined;
      const out = Buffer.alloc(8);
      if ((ioctlPtr(fd, BLKSSZGET, out) as number) !== 0) return undefined;
      const v = out.readInt32LE(0);
      return v > 0 ? v : undefined;
    },
    setDirectIo: () => false, // Linux uses the O_DIRECT open flag instead
    batchHelperThreads() {
      // Per thread: sched_setscheduler(tid) changes that thread only. The main thread's tid is the
      // pid. struct sched_param is one int (the static priority, 0 for SCHED_BATCH).
      let tids: string[];
      try {
        tids = readdirSync('/proc/self/task');
      } catch {
        return 0;
      }
      const param = Buffer.alloc(4);
      let changed = 0;
      for (const t of tids) {
        const tid = Number(t);
        if (Number.isInteger(tid) && tid !== process.pid && (setScheduler(tid, SCHED_BATCH, param) as number) === 0) changed++;
      }
      return changed;
    },
  };
}

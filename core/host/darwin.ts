// macOS HostOps through koffi (FFI into libSystem): lseek(SEEK_DATA/SEEK_HOLE), fcntl(2)
// F_SETLK/F_GETLK POSIX record locks (macOS has no OFD locks), F_PREALLOCATE (fstore_t),
// F_PUNCHHOLE (fpunchhole_t, APFS) and F_NOCACHE for direct I/O (<sys/fcntl.h>), ioctl(2)
// DKIOCGETBLOCKCOUNT/DKIOCGETBLOCKSIZE for disk devices (<sys/disk.h>).
// Apple arm64 passes variadic arguments on the stack, so fcntl/ioctl are declared variadic and
// every call names the type of its third argument. Untested here (no macOS in CI): written from
// the headers; any load failure falls back to the portable host.
import { koffi } from './ffi.ts';
import { fstatSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import type { DeviceOps, HostOps, LockType } from './index.ts';
import { encodeDarwinFlock, decodeDarwinFlockType, DARWIN_F_RDLCK, DARWIN_F_UNLCK, DARWIN_F_WRLCK } from './flock.ts';
import { errnoError } from './errno.ts';

/** lseek(2) whence values on macOS (note: the reverse of Linux). */
const SEEK_HOLE = 3;
const SEEK_DATA = 4;
/** fcntl(2) commands (<sys/fcntl.h>). */
const F_GETLK = 7;
const F_SETLK = 8;
const F_PREALLOCATE = 42;
const F_NOCACHE = 48;
const F_PUNCHHOLE = 99;
/** fstore_t flags / position modes. */
const F_ALLOCATEALL = 0x4;
const F_PEOFPOSMODE = 3;
/** sizeof(fstore_t): u32 fst_flags, i32 fst_posmode, off_t fst_offset, off_t fst_length, off_t fst_bytesalloc. */
const FSTORE_SIZE = 32;
/** sizeof(fpunchhole_t): u32 fp_flags, u32 reserved, off_t fp_offset, off_t fp_length. */
const FPUNCHHOLE_SIZE = 24;
/** <sys/disk.h> ioctls (_IOR('d', 25, uint64_t), _IOR('d', 24, uint32_t)). */
export const DKIOCGETBLOCKCOUNT = 0x40086419;
export const DKIOCGETBLOCKSIZE = 0x40046418;
/** DKIOCGETPHYSICALBLOCKSIZE: _IOR('d', 77, uint32_t); DKIOCEJECT: _IO('d', 21) (<sys/disk.h>). */
export const DKIOCGETPHYSICALBLOCKSIZE = 0x4004644d;
export const DKIOCEJECT = 0x20006415;

const E = osConstants.errno;
const UNSUPPORTED_ERRNOS = new Set<number>([E.EOPNOTSUPP, E.ENOTSUP, E.ENOSYS, E.EINVAL, E.ENOTTY].filter((v) => v !== undefined));

export function createDarwinHost(): HostOps {
  const ffi = koffi();
  const libc = ffi.load('/usr/lib/libSystem.B.dylib');
  const lseek = libc.func('int64_t lseek(int fd, int64_t offset, int whence)');
  const fcntl = libc.func('int fcntl(int fd, int cmd, ...)');
  const ioctl = libc.func('int ioctl(int fd, unsigned long request, ...)');
  const ftruncate = libc.func('int ftruncate(int fd, int64_t length)');
  const errnoLocation = libc.func('int *__error()');
  const errno = (): number => ffi.decode(errnoLocation(), 'int') as number;

  const seek = (fd: number, offset: number, whence: number): number | undefined => {
    const r = Number(lseek(fd, offset, whence));
    if (r >= 0) return r;
    return errno() === E.ENXIO ? -1 : undefined;
  };
  const fcntlPtr = (fd: number, cmd: number, arg: Buffer): number => fcntl(fd, cmd, 'void *', arg) as number;

  const lockCall = (fd: number, cmd: number, start: number, length: number, type: number): Buffer => {
    const fl = encodeDarwinFlock(type, start, length);
    if (fcntlPtr(fd, cmd, fl) === -1) {
      const e = errno();
      const err = errnoError(e, 'fcntl');
      (err as { lockConflict?: boolean }).lockConflict = e === E.EAGAIN || e === E.EACCES;
      throw err;
    }
    return fl;
  };

  const isDisk = (fd: number): boolean => {
    try {
      const st = fstatSync(fd);
      return st.isBlockDevice() || st.isCharacterDevice();
    } catch {
      return false;
    }
  };

  return {
    platform: 'darwin',
    ofdLocksSupported: false,
    locksSupported: true,
    seekData: (fd, offset) => seek(fd, offset, SEEK_DATA),
    seekHole: (fd, offset) => seek(fd, offset, SEEK_HOLE),
    async punchHole(fd, offset, length) {
      if (length <= 0) return true;
      const arg = Buffer.alloc(FPUNCHHOLE_SIZE);
      arg.writeBigInt64LE(BigInt(offset), 8);
      arg.writeBigInt64LE(BigInt(length), 16);
      if (fcntlPtr(fd, F_PUNCHHOLE, arg) === 0) return true;
      const e = errno();
      if (UNSUPPORTED_ERRNOS.has(e)) return false;
      throw errnoError(e, 'fcntl(F_PUNCHHOLE)');
    },
    zeroRange: async () => false, // no zero-range call on macOS: callers punch or write zeros
    async allocate(fd, offset, length) {
      if (length <= 0) return true;
      const end = offset + length;
      const size = fstatSync(fd).size;
      if (end > size) {
        // Reserve the blocks past the physical end of file, then set the logical size.
        const store = Buffer.alloc(FSTORE_SIZE);
        store.writeUInt32LE(F_ALLOCATEALL, 0);
        store.writeInt32LE(F_PEOFPOSMODE, 4);
        store.writeBigInt64LE(0n, 8);
        store.writeBigInt64LE(BigInt(end - size), 16);
        if (fcntlPtr(fd, F_PREALLOCATE, store) === -1) {
          const e = errno();
          if (UNSUPPORTED_ERRNOS.has(e)) return false;
          throw errnoError(e, 'fcntl(F_PREALLOCATE)');
        }
        if ((ftruncate(fd, end) as number) !== 0) throw errnoError(errno(), 'ftruncate');
      }
      return true;
    },
    setNoCow: () => false, // btrfs only
    setLock(fd: number, start: number, length: number, type: LockType, _ofd: boolean): boolean {
      const t = type === 'read' ? DARWIN_F_RDLCK : type === 'write' ? DARWIN_F_WRLCK : DARWIN_F_UNLCK;
      try {
        lockCall(fd, F_SETLK, start, length, t);
        return true;
      } catch (e) {
        if ((e as { lockConflict?: boolean }).lockConflict) return false;
        throw e;
      }
    },
    testLock(fd, start, length, type, _ofd) {
      const fl = lockCall(fd, F_GETLK, start, length, type === 'read' ? DARWIN_F_RDLCK : DARWIN_F_WRLCK);
      return decodeDarwinFlockType(fl) !== DARWIN_F_UNLCK;
    },
    deviceSize(fd) {
      if (!isDisk(fd)) return undefined;
      const count = Buffer.alloc(8);
      const bsize = Buffer.alloc(4);
      if ((ioctl(fd, DKIOCGETBLOCKCOUNT, 'void *', count) as number) !== 0) return undefined;
      if ((ioctl(fd, DKIOCGETBLOCKSIZE, 'void *', bsize) as number) !== 0) return undefined;
      const size = count.readBigUInt64LE(0) * BigInt(bsize.readUInt32LE(0));
      return size <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(size) : undefined;
    },
    device: {
      physicalBlockSize(fd) {
        if (!isDisk(fd)) return undefined;
        const out = Buffer.alloc(4);
        if ((ioctl(fd, DKIOCGETPHYSICALBLOCKSIZE, 'void *', out) as number) !== 0) return undefined;
        return out.readUInt32LE(0) || undefined;
      },
      isReadOnly: () => false, // open(2) of a write-protected disk fails itself
      discard: async () => false,
      zeroOut: async () => false,
      cdromStatus: () => undefined,
      // DKIOCEJECT ejects the medium; macOS has no "close tray" nor door lock call for disks.
      cdromEject: (fd, eject) => eject && (ioctl(fd, DKIOCEJECT, 'void *', null) as number) === 0,
      cdromLockDoor: () => false,
    } satisfies DeviceOps,
    deviceBlockSize(fd) {
      if (!isDisk(fd)) return undefined;
      const bsize = Buffer.alloc(4);
      if ((ioctl(fd, DKIOCGETBLOCKSIZE, 'void *', bsize) as number) !== 0) return undefined;
      return bsize.readUInt32LE(0) || undefined;
    },
    batchHelperThreads: () => 0,
    setDirectIo(fd) {
      return (fcntl(fd, F_NOCACHE, 'int', 1) as number) !== -1;
    },
  };
}

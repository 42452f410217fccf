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
import type { DeviceOps, HostOps, LockType } from './index.ts';
import { decodeDiskGeometryEx, decodeLengthInfo, DISK_GEOMETRY_EX_BUFFER, DRIVE_CDROM, GET_LENGTH_INFORMATION_SIZE, IOCTL_DISK_GET_DRIVE_GEOMETRY_EX, IOCTL_DISK_GET_LENGTH_INFO } from './win32-device.ts';

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

  const DeviceIoControl = kernel32.func('__stdcall', 'DeviceIoControl', 'int', ['void *', 'uint32_t', 'void *', 'uint32_t', 'void *', 'uint32_t', 'void *', 'void *']);
  const GetLogicalDriveStringsW = kernel32.func('__stdcall', 'GetLogicalDriveStringsW', 'uint32_t', ['uint32_t', 'void *']);
  const GetDriveTypeW = kernel32.func('__stdcall', 'GetDriveTypeW', 'uint32_t', ['str16']);

  /** DeviceIoControl with no input: the output buffer and how much of it came back, or undefined. */
  const ioctlOut = (fd: number, code: number, size: number): { buf: Buffer; n: number } | undefined => {
    let h: unknown;
    try {
      h = handleOf(fd);
    } catch {
      return undefined;
    }
    const buf = Buffer.alloc(size);
    const returned = Buffer.alloc(4);
    if ((DeviceIoControl(h, code, null, 0, buf, size, returned, null) as number) === 0) return undefined;
    return { buf, n: returned.readUInt32LE(0) };
  };
  const geometry = (fd: number) => {
    const r = ioctlOut(fd, IOCTL_DISK_GET_DRIVE_GEOMETRY_EX, DISK_GEOMETRY_EX_BUFFER);
    return r ? decodeDiskGeometryEx(r.buf, r.n) : undefined;
  };
  const device: DeviceOps = {
    physicalBlockSize: (fd) => geometry(fd)?.bytesPerSector,
    isReadOnly: () => false, // CreateFileW itself fails on a write-protected disk
    discard: async () => false,
    zeroOut: async () => false,
    cdromStatus: () => undefined,
    cdromEject: () => false,
    cdromLockDoor: () => false,
    firstCdrom() {
      // GetLogicalDriveStringsW: "C:\\<NUL>D:\\<NUL><NUL>" in UTF-16.
      const buf = Buffer.alloc(512);
      const n = GetLogicalDriveStringsW(256, buf) as number;
      if (n === 0 || n > 256) return undefined;
      for (const root of buf.toString('utf16le', 0, n * 2).split('\0').filter(Boolean)) {
        if ((GetDriveTypeW(root) as number) === DRIVE_CDROM) return `\\\\.\\${root[0]}:`;
      }
      return undefined;
    },
  };

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
    device,
    deviceSize(fd) {
      // QEMU's raw_getlength (file-win32.c): IOCTL_DISK_GET_LENGTH_INFO, else the geometry's DiskSize.
      const r = ioctlOut(fd, IOCTL_DISK_GET_LENGTH_INFO, GET_LENGTH_INFORMATION_SIZE);
      const len = r ? decodeLengthInfo(r.buf, r.n) : geometry(fd)?.diskSize;
      return len !== undefined && len <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(len) : undefined;
    },
    deviceBlockSize: (fd) => geometry(fd)?.bytesPerSector,
    batchHelperThreads: () => 0,
    setDirectIo: () => false,
  };
}

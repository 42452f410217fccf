// Windows disk devices (winioctl.h): the IOCTL codes, the structures DeviceIoControl fills, and
// the error numbers of CreateFileW / DeviceIoControl, as QEMU's block/file-win32.c uses them
// (raw_getlength, hdev_open). Pure data and decoders here, unit-tested on any OS; win32.ts makes
// the calls through koffi. UNTESTED ON REAL WINDOWS HARDWARE: written from the Win32 docs.

/** CTL_CODE(DeviceType, Function, Method, Access) (winioctl.h). */
export function ctlCode(deviceType: number, fn: number, method: number, access: number): number {
  return ((deviceType << 16) | (access << 14) | (fn << 2) | method) >>> 0;
}

/** IOCTL_DISK_BASE = FILE_DEVICE_DISK (7); METHOD_BUFFERED 0; FILE_ANY_ACCESS 0, FILE_READ_ACCESS 1. */
const IOCTL_DISK_BASE = 0x7;
const METHOD_BUFFERED = 0;
const FILE_ANY_ACCESS = 0;
const FILE_READ_ACCESS = 1;

/** IOCTL_DISK_GET_LENGTH_INFO: CTL_CODE(IOCTL_DISK_BASE, 0x0017, METHOD_BUFFERED, FILE_READ_ACCESS) = 0x7405c. */
export const IOCTL_DISK_GET_LENGTH_INFO = ctlCode(IOCTL_DISK_BASE, 0x17, METHOD_BUFFERED, FILE_READ_ACCESS);
/** IOCTL_DISK_GET_DRIVE_GEOMETRY_EX: CTL_CODE(IOCTL_DISK_BASE, 0x0028, METHOD_BUFFERED, FILE_ANY_ACCESS) = 0x700a0. */
export const IOCTL_DISK_GET_DRIVE_GEOMETRY_EX = ctlCode(IOCTL_DISK_BASE, 0x28, METHOD_BUFFERED, FILE_ANY_ACCESS);

/** sizeof(GET_LENGTH_INFORMATION): one LARGE_INTEGER Length. */
export const GET_LENGTH_INFORMATION_SIZE = 8;
/** DISK_GEOMETRY: LARGE_INTEGER Cylinders @0, MEDIA_TYPE MediaType @8, DWORD TracksPerCylinder @12,
 *  DWORD SectorsPerTrack @16, DWORD BytesPerSector @20; 24 bytes. DISK_GEOMETRY_EX adds
 *  LARGE_INTEGER DiskSize @24 and a variable Data[] (partition and detection info) from 32. */
export const DISK_GEOMETRY_SIZE = 24;
export const DISK_GEOMETRY_EX_MIN_SIZE = 32;
/** Output buffer handed to IOCTL_DISK_GET_DRIVE_GEOMETRY_EX (room for Data[]). */
export const DISK_GEOMETRY_EX_BUFFER = 256;

export interface DiskGeometryEx {
  cylinders: bigint;
  mediaType: number;
  tracksPerCylinder: number;
  sectorsPerTrack: number;
  bytesPerSector: number;
  diskSize: bigint;
}

/** GET_LENGTH_INFORMATION.Length; undefined when fewer bytes came back or it is negative. */
export function decodeLengthInfo(buf: Buffer, bytesReturned: number): bigint | undefined {
  if (bytesReturned < GET_LENGTH_INFORMATION_SIZE || buf.length < GET_LENGTH_INFORMATION_SIZE) return undefined;
  const v = buf.readBigInt64LE(0);
  return v >= 0n ? v : undefined;
}

/** DISK_GEOMETRY_EX (the fixed part); undefined when too short or inconsistent. */
export function decodeDiskGeometryEx(buf: Buffer, bytesReturned: number): DiskGeometryEx | undefined {
  if (bytesReturned < DISK_GEOMETRY_EX_MIN_SIZE || buf.length < DISK_GEOMETRY_EX_MIN_SIZE) return undefined;
  const g: DiskGeometryEx = {
    cylinders: buf.readBigInt64LE(0),
    mediaType: buf.readInt32LE(8),
    tracksPerCylinder: buf.readUInt32LE(12),
    sectorsPerTrack: buf.readUInt32LE(16),
    bytesPerSector: buf.readUInt32LE(20),
    diskSize: buf.readBigInt64LE(24),
  };
  // A sector is a power of two from 512 to 64 KiB; the size is never negative.
  if (g.diskSize < 0n || g.bytesPerSector < 512 || g.bytesPerSector > 65536 || (g.bytesPerSector & (g.bytesPerSector - 1)) !== 0) return undefined;
  return g;
}

/** GetDriveTypeW answers (fileapi.h). */
export const DRIVE_REMOVABLE = 2;
export const DRIVE_FIXED = 3;
export const DRIVE_CDROM = 5;

/** Win32 error codes (winerror.h) and the errno QEMU or libuv reports for each. */
export const WIN32_ERRORS: Readonly<Record<number, { name: string; errno: string }>> = {
  2: { name: 'ERROR_FILE_NOT_FOUND', errno: 'ENOENT' },
  3: { name: 'ERROR_PATH_NOT_FOUND', errno: 'ENOENT' },
  5: { name: 'ERROR_ACCESS_DENIED', errno: 'EACCES' },
  19: { name: 'ERROR_WRITE_PROTECT', errno: 'EROFS' },
  21: { name: 'ERROR_NOT_READY', errno: 'ENOMEDIUM' },
  32: { name: 'ERROR_SHARING_VIOLATION', errno: 'EBUSY' },
  50: { name: 'ERROR_NOT_SUPPORTED', errno: 'ENOTSUP' },
  87: { name: 'ERROR_INVALID_PARAMETER', errno: 'EINVAL' },
  1117: { name: 'ERROR_IO_DEVICE', errno: 'EIO' },
};

/**
 * QEMU's hdev_open on Windows: CreateFile failing with ERROR_ACCESS_DENIED is EACCES, any other
 * failure EINVAL, worded "Could not open device: <strerror>". Node reports CreateFileW failures
 * as libuv errno codes (ERROR_ACCESS_DENIED becomes EPERM there), so both forms are taken.
 */
export function win32OpenErrorText(err: number | string): string {
  const denied = err === 5 || err === 'EPERM' || err === 'EACCES';
  return `Could not open device: ${denied ? 'Permission denied' : 'Invalid argument'}`;
}

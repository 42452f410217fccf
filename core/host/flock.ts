// struct flock codecs for fcntl(2) record locks. Linux LP64 (x86-64 and aarch64 share the
// asm-generic layout) and macOS/arm64+x86-64 differ, so each OS module picks its layout here.
//
// Linux <asm-generic/fcntl.h> struct flock (32 bytes):
//   0 short l_type; 2 short l_whence; 8 off_t l_start; 16 off_t l_len; 24 pid_t l_pid; 28 pad
// macOS <sys/fcntl.h> struct flock (24 bytes):
//   0 off_t l_start; 8 off_t l_len; 16 pid_t l_pid; 20 short l_type; 22 short l_whence

/** Lock types (<fcntl.h>): Linux numbering. */
export const F_RDLCK = 0;
export const F_WRLCK = 1;
export const F_UNLCK = 2;
/** l_whence: offsets count from the start of the file. */
const SEEK_SET = 0;

/** sizeof(struct flock) on Linux LP64. */
export const FLOCK_SIZE = 32;
const L_TYPE = 0;
const L_WHENCE = 2;
const L_START = 8;
const L_LEN = 16;
const L_PID = 24;

/** A Linux struct flock for [start, start+length) (length 0 = to EOF and beyond). l_pid must be
 *  0 for OFD commands; for F_GETLK the kernel fills it in. */
export function encodeFlock(type: number, start: number, length: number): Buffer {
  const b = Buffer.alloc(FLOCK_SIZE);
  b.writeInt16LE(type, L_TYPE);
  b.writeInt16LE(SEEK_SET, L_WHENCE);
  b.writeBigInt64LE(BigInt(start), L_START);
  b.writeBigInt64LE(BigInt(length), L_LEN);
  b.writeInt32LE(0, L_PID);
  return b;
}

/** l_type of a Linux struct flock after F_GETLK (F_UNLCK when nothing conflicts). */
export function decodeFlockType(b: Buffer): number {
  return b.readInt16LE(L_TYPE);
}

/** Lock types (<sys/fcntl.h>): macOS numbering (F_RDLCK 1, F_UNLCK 2, F_WRLCK 3). */
export const DARWIN_F_RDLCK = 1;
export const DARWIN_F_UNLCK = 2;
export const DARWIN_F_WRLCK = 3;
/** sizeof(struct flock) on macOS. */
export const DARWIN_FLOCK_SIZE = 24;
const D_START = 0;
const D_LEN = 8;
const D_PID = 16;
const D_TYPE = 20;
const D_WHENCE = 22;

export function encodeDarwinFlock(type: number, start: number, length: number): Buffer {
  const b = Buffer.alloc(DARWIN_FLOCK_SIZE);
  b.writeBigInt64LE(BigInt(start), D_START);
  b.writeBigInt64LE(BigInt(length), D_LEN);
  b.writeInt32LE(0, D_PID);
  b.writeInt16LE(type, D_TYPE);
  b.writeInt16LE(SEEK_SET, D_WHENCE);
  return b;
}

export function decodeDarwinFlockType(b: Buffer): number {
  return b.readInt16LE(D_TYPE);
}

// Memory-aligned Buffers for direct I/O (O_DIRECT needs the user buffer, the file offset and the
// length aligned to the device's logical block size; open(2) "O_DIRECT" notes), and for bulk
// buffered I/O: the kernel's page-cache copies (rep movsb) into a destination that is not
// page-aligned cost about three times as much (measured: a 1.25 GiB convert spent 0.87 s of
// system time in pread copies into malloc'd Buffers, which start 16 bytes past a page boundary,
// and 0.29 s into page-aligned ones; qemu-img aligns its buffers too, qemu_blockalign). Node does not
// promise any alignment for Buffer memory, so we over-allocate and slice at an aligned address,
// asking koffi for the address of the memory.
import { koffi } from './ffi.ts';

/** Address of a Buffer's first byte, or undefined if koffi cannot tell. */
function addressOf(buf: Buffer): bigint | undefined {
  try {
    return koffi().address(buf);
  } catch {
    return undefined;
  }
}

/** Can buffers be aligned here (koffi loads)? Without, direct I/O would fail with EINVAL. */
export function canAlignBuffers(): boolean {
  return addressOf(Buffer.alloc(1)) !== undefined;
}

/** The alignment that makes the kernel's page-cache copies fast (the page size). */
export const PAGE_ALIGNMENT = 4096;

/** Is `buf`'s memory aligned to `alignment` bytes (a power of two)? */
export function isAligned(buf: Buffer, alignment: number): boolean {
  if (alignment <= 1) return true;
  const addr = addressOf(buf);
  return addr !== undefined && addr % BigInt(alignment) === 0n;
}

/**
 * A zero-filled Buffer of `length` bytes whose memory starts at a multiple of `alignment` (a power
 * of two). The Buffer is a view into a slightly larger allocation; it belongs to the caller.
 * `zeroed: false` leaves the contents undefined (for buffers that are read into at once).
 */
export function alignedBuffer(length: number, alignment: number, zeroed = true): Buffer {
  if (alignment <= 1) return zeroed ? Buffer.alloc(length) : Buffer.allocUnsafe(length);
  const big = zeroed ? Buffer.alloc(length + alignment) : Buffer.allocUnsafeSlow(length + alignment);
  const addr = addressOf(big);
  if (addr === undefined) return big.subarray(0, length); // unknown: direct I/O will report EINVAL
  const skew = Number(addr % BigInt(alignment));
  const start = skew === 0 ? 0 : alignment - skew;
  return big.subarray(start, start + length);
}

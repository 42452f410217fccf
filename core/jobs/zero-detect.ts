// Zero detection for convert -S (qemu-img.c is_allocated_sectors / buffer_is_zero): split a data
// buffer into runs that must be written and runs of zeros long enough to skip as holes.

/** Granularity of zero detection: one sector, as qemu-img checks. */
export const SECTOR = 512;

/** Zero scan granularity for a given -S: blocks of at most 4 KiB, at least one sector. */
export function scanGranularity(sparseSize: number): number {
  const g = Math.min(sparseSize, 4096);
  return Math.max(SECTOR, g - (g % SECTOR));
}

let zeroBlock: Buffer = Buffer.alloc(4096);
function zeroOf(n: number): Buffer {
  if (zeroBlock.length < n) zeroBlock = Buffer.alloc(n);
  return zeroBlock.subarray(0, n);
}

/** Are bytes [p, p+n) of `buf` all zero? The first, middle and last bytes are looked at before
 *  the whole range is compared (data blocks almost always fail there, as in QEMU's
 *  buffer_is_zero); the comparison takes offsets, so no view object is made per block. */
function rangeIsZero(buf: Buffer, p: number, n: number): boolean {
  if (buf[p] !== 0 || buf[p + n - 1] !== 0 || buf[p + (n >>> 1)] !== 0) return false;
  return buf.compare(zeroOf(n), 0, n, p, p + n) === 0;
}

/** True when every byte of `buf` is zero. */
export function isZero(buf: Buffer): boolean {
  const BLOCK = 64 * 1024;
  for (let p = 0; p < buf.length; p += BLOCK) {
    if (!rangeIsZero(buf, p, Math.min(BLOCK, buf.length - p))) return false;
  }
  return true;
}

export interface Run {
  start: number;
  length: number;
  zero: boolean;
}

/**
 * Runs of `buf`: zero runs of at least `minZero` bytes (made of whole `granularity` blocks) are
 * marked zero; everything else is data. Adjacent runs of the same kind are merged.
 */
export function splitZeroRuns(buf: Buffer, minZero: number, granularity: number): Run[] {
  const runs: Run[] = [];
  const push = (start: number, length: number, zero: boolean) => {
    if (length <= 0) return;
    const last = runs[runs.length - 1];
    if (last && last.zero === zero && last.start + last.length === start) last.length += length;
    else runs.push({ start, length, zero });
  };
  let p = 0;
  let dataStart = 0;
  while (p < buf.length) {
    const n = Math.min(granularity, buf.length - p);
    if (!rangeIsZero(buf, p, n)) {
      p += n;
      continue;
    }
    // A zero block: measure the run.
    let q = p + n;
    while (q < buf.length) {
      const m = Math.min(granularity, buf.length - q);
      if (!rangeIsZero(buf, q, m)) break;
      q += m;
    }
    if (q - p >= minZero) {
      push(dataStart, p - dataStart, false);
      push(p, q - p, true);
      dataStart = q;
    }
    p = q;
  }
  push(dataStart, buf.length - dataStart, false);
  return runs;
}

// The compare job (qemu-img compare; qemu-img.c img_compare): are two images' guest-visible
// contents equal? Block status skips ranges both sides know to be zero; other ranges are read
// and compared a sector at a time, so the mismatch offset is the first differing 512-byte sector,
// as qemu-img reports it. Sizes may differ unless strict, if the larger image's tail is zero.

import { blockStatusAbove, type BlockNode } from '../block/node.ts';
import type { CompareResult } from '../api/types.ts';
import type { BlockStatus } from '../block/types.ts';
import { BlockError, cancelled } from '../errors.ts';
import { openSpec, progressReporter, type ImageSpec, type JobControl, type JobEnv } from './common.ts';
import { isZero } from './zero-detect.ts';

export interface CompareOptions {
  a: ImageSpec;
  b: ImageSpec;
  strict?: boolean;
  /** Compare only the first `length` bytes (not a qemu-img option: the Drives view verifies the
   *  range an image was written to, a drive's tail keeps what it held). */
  length?: number;
}

/** Sector granularity of mismatch offsets (qemu-img compare_buffers). */
const SECTOR = 512;
/** Bytes compared per read (qemu-img's IO_BUF_SIZE is 2 MiB). */
const CHUNK = 2 << 20;

export const IDENTICAL = 'Images are identical.';
export const SIZE_MISMATCH_WARNING = 'Warning: Image size mismatch!';
export const STRICT_SIZE_MISMATCH = 'Strict mode: Image size mismatch!';

const mismatch = (offset: number): CompareResult => ({ identical: false, mismatchOffset: offset, message: `Content mismatch at offset ${offset}!` });

/** qemu-img compare's exit status when block status fails ("Sector allocation test failed"). */
export const EXIT_STATUS_FAILED = 3;
/** ... and when a read fails ("Error while reading offset N of X: ..."). */
export const EXIT_READ_FAILED = 4;

/**
 * A compare that failed part-way, as qemu-img reports it: the message, the exit status (3 or 4),
 * and the size warning qemu-img had already printed (on stdout, which it flushes only at exit:
 * after the error).
 */
export class CompareError extends BlockError {
  constructor(
    message: string,
    readonly status: typeof EXIT_STATUS_FAILED | typeof EXIT_READ_FAILED,
    readonly warning: string | undefined,
    cause: unknown,
  ) {
    super(cause instanceof BlockError ? cause.kind : 'Io', message, cause instanceof BlockError ? cause.context : {}, { cause });
  }
}

/** A read for the compare, failing as qemu-img words it. */
async function readFor(node: BlockNode, offset: number, length: number, warning: string | undefined): Promise<Buffer> {
  try {
    return await node.read(offset, length);
  } catch (e) {
    if (!(e instanceof BlockError) || e.kind === 'Cancelled') throw e;
    throw new CompareError(`Error while reading offset ${offset} of ${node.filename}: ${e.message}`, EXIT_READ_FAILED, warning, e);
  }
}

/** Block status for the compare, failing as qemu-img words it. */
async function statusFor(node: BlockNode, offset: number, length: number, warning: string | undefined): Promise<Awaited<ReturnType<typeof blockStatusAbove>>> {
  try {
    return await blockStatusAbove(node, offset, length);
  } catch (e) {
    if (!(e instanceof BlockError) || e.kind === 'Cancelled') throw e;
    throw new CompareError(`Sector allocation test failed for ${node.filename}`, EXIT_STATUS_FAILED, warning, e);
  }
}

/** First differing sector offset within two equal-length buffers, or -1. */
function firstDiff(x: Buffer, y: Buffer): number {
  if (x.equals(y)) return -1;
  for (let p = 0; p < x.length; p += SECTOR) {
    const e = Math.min(p + SECTOR, x.length);
    if (!x.subarray(p, e).equals(y.subarray(p, e))) return p;
  }
  return -1;
}

/** First non-zero sector in `node` from `start` to its end, or -1. */
async function firstNonZero(node: BlockNode, start: number, ctl: JobControl, tick: (n: number) => void, warning: string | undefined): Promise<number> {
  let off = start;
  while (off < node.size) {
    if (ctl.signal?.aborted) throw cancelled();
    const st = await statusFor(node, off, node.size - off, warning);
    if (!st.zero) {
      for (let p = off; p < off + st.length; p += CHUNK) {
        const n = Math.min(CHUNK, off + st.length - p);
        const buf = await readFor(node, p, n, warning);
        if (!isZero(buf)) {
          for (let q = 0; q < n; q += SECTOR) if (!isZero(buf.subarray(q, Math.min(n, q + SECTOR)))) return p + q;
        }
      }
    }
    off += st.length;
    tick(st.length);
  }
  return -1;
}

/** qemu-img compare -s compares the whole block-status word of the two images: allocated, data,
 *  zero, compressed, and whether a host offset is known (BDRV_BLOCK_OFFSET_VALID; a vhdx image,
 *  whose QEMU driver reports no offsets, differs there from a raw file at its first block). */
function sameStatusFlags(a: BlockStatus, b: BlockStatus): boolean {
  return a.allocated === b.allocated && a.zero === b.zero && a.data === b.data && (a.compressed ?? false) === (b.compressed ?? false) && (a.hostOffset !== undefined) === (b.hostOffset !== undefined);
}

/** Where, in the step [off, off+len), QEMU's answer first reaches the end of the image (its EOF
 *  flag): from the start of the node's last QEMU status unit, if this run reaches the end. */
function eofFrom(node: BlockNode, st: BlockStatus, off: number): number {
  if (st.offset + st.length !== node.size) return Infinity;
  return Math.max(off, node.qemuLastStatusUnit() ?? off);
}

/** qemu-img compare -s also compares the EOF flag, set on the answer that reaches the end of the
 *  image; QEMU's drivers answer in units of their own (NodeImpl.qemuLastStatusUnit), so two images
 *  with the same status to their end can still differ there. The first such offset, if any. */
function eofMismatch(a: BlockNode, sa: BlockStatus, b: BlockNode, sb: BlockStatus, off: number, len: number): number | undefined {
  const ta = eofFrom(a, sa, off);
  const tb = eofFrom(b, sb, off);
  const first = Math.min(ta, tb);
  return ta !== tb && first < off + len ? first : undefined;
}

export async function compare(o: CompareOptions, env: JobEnv, ctl: JobControl = {}): Promise<CompareResult> {
  const a = await openSpec(o.a, env, { readOnly: true });
  let b: BlockNode | undefined;
  try {
    b = await openSpec(o.b, env, { readOnly: true });
    // qemu-img warns about differing sizes only once the common part compared equal.
    let warning: string | undefined;
    if (a.size !== b.size && o.strict) return { identical: false, message: STRICT_SIZE_MISMATCH };
    const common = Math.min(a.size, b.size, o.length ?? Infinity);
    const progress = progressReporter(ctl, o.length !== undefined ? common : Math.max(a.size, b.size), 'comparing');
    let off = 0;
    while (off < common) {
      if (ctl.signal?.aborted) throw cancelled();
      const sa = await statusFor(a, off, common - off, warning);
      const sb = await statusFor(b, off, common - off, warning);
      const len = Math.min(sa.length, sb.length);
      if (o.strict) {
        const at = !sameStatusFlags(sa, sb) ? off : eofMismatch(a, sa, b, sb, off, len);
        if (at !== undefined) return { identical: false, mismatchOffset: at, message: `Strict mode: Offset ${at} block status mismatch!`, ...(warning ? { warning } : {}) };
      }
      if (!(sa.zero && sb.zero)) {
        for (let p = off; p < off + len; p += CHUNK) {
          const n = Math.min(CHUNK, off + len - p);
          // Both at once; the first image's read error is the one reported, as qemu-img (which
          // reads them one after the other) reports it.
          const [x, y] = await Promise.allSettled([readFor(a, p, n, warning), readFor(b, p, n, warning)]);
          if (x.status === 'rejected') throw x.reason;
          if (y.status === 'rejected') throw y.reason;
          const d = firstDiff(x.value, y.value);
          if (d >= 0) return { ...mismatch(p + d), ...(warning ? { warning } : {}) };
        }
      }
      off += len;
      progress.add(len);
    }
    if (a.size !== b.size && o.length === undefined) {
      warning = SIZE_MISMATCH_WARNING;
      const larger = a.size > b.size ? a : b;
      const nz = await firstNonZero(larger, common, ctl, (n) => progress.add(n), warning);
      if (nz >= 0) return { ...mismatch(nz), ...(warning ? { warning } : {}) };
    }
    progress.finish();
    return { identical: true, message: IDENTICAL, ...(warning ? { warning } : {}) };
  } finally {
    await b?.close().catch(() => {});
    await a.close();
  }
}

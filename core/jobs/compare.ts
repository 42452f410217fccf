// The compare job (qemu-img compare; qemu-img.c img_compare): are two images' guest-visible
// contents equal? Block status skips ranges both sides know to be zero; other ranges are read
// and compared a sector at a time, so the mismatch offset is the first differing 512-byte sector,
// as qemu-img reports it. Sizes may differ unless strict, if the larger image's tail is zero.

import { blockStatusAbove, type BlockNode } from '../block/node.ts';
import type { CompareResult } from '../api/types.ts';
import type { BlockStatus } from '../block/types.ts';
import { cancelled } from '../errors.ts';
import { openSpec, progressReporter, type ImageSpec, type JobControl, type JobEnv } from './common.ts';
import { isZero } from './zero-detect.ts';

export interface CompareOptions {
  a: ImageSpec;
  b: ImageSpec;
  strict?: boolean;
}

/** Sector granularity of mismatch offsets (qemu-img compare_buffers). */
const SECTOR = 512;
/** Bytes compared per read (qemu-img's IO_BUF_SIZE is 2 MiB). */
const CHUNK = 2 << 20;

export const IDENTICAL = 'Images are identical.';
export const SIZE_MISMATCH_WARNING = 'Warning: Image size mismatch!';
export const STRICT_SIZE_MISMATCH = 'Strict mode: Image size mismatch!';

const mismatch = (offset: number): CompareResult => ({ identical: false, mismatchOffset: offset, message: `Content mismatch at offset ${offset}!` });

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
async function firstNonZero(node: BlockNode, start: number, ctl: JobControl, tick: (n: number) => void): Promise<number> {
  let off = start;
  while (off < node.size) {
    if (ctl.signal?.aborted) throw cancelled();
    const st = await blockStatusAbove(node, off, node.size - off);
    if (!st.zero) {
      for (let p = off; p < off + st.length; p += CHUNK) {
        const n = Math.min(CHUNK, off + st.length - p);
        const buf = await node.read(p, n);
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
  return Math.max(off, node.impl.qemuLastStatusUnit?.() ?? off);
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
    const common = Math.min(a.size, b.size);
    const progress = progressReporter(ctl, Math.max(a.size, b.size), 'comparing');
    let off = 0;
    while (off < common) {
      if (ctl.signal?.aborted) throw cancelled();
      const sa = await blockStatusAbove(a, off, common - off);
      const sb = await blockStatusAbove(b, off, common - off);
      const len = Math.min(sa.length, sb.length);
      if (o.strict) {
        const at = !sameStatusFlags(sa, sb) ? off : eofMismatch(a, sa, b, sb, off, len);
        if (at !== undefined) return { identical: false, mismatchOffset: at, message: `Strict mode: Offset ${at} block status mismatch!`, ...(warning ? { warning } : {}) };
      }
      if (!(sa.zero && sb.zero)) {
        for (let p = off; p < off + len; p += CHUNK) {
          const n = Math.min(CHUNK, off + len - p);
          const [x, y] = await Promise.all([a.read(p, n), b.read(p, n)]);
          const d = firstDiff(x, y);
          if (d >= 0) return { ...mismatch(p + d), ...(warning ? { warning } : {}) };
        }
      }
      off += len;
      progress.add(len);
    }
    if (a.size !== b.size) {
      warning = SIZE_MISMATCH_WARNING;
      const larger = a.size > b.size ? a : b;
      const nz = await firstNonZero(larger, common, ctl, (n) => progress.add(n));
      if (nz >= 0) return { ...mismatch(nz), ...(warning ? { warning } : {}) };
    }
    progress.finish();
    return { identical: true, message: IDENTICAL, ...(warning ? { warning } : {}) };
  } finally {
    await b?.close().catch(() => {});
    await a.close();
  }
}

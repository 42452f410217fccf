// Checked integer helpers for decoding on-disk fields: u64 fields come in as
// bigint and become numbers only when they fit; arithmetic on offsets refuses overflow.

import { invalidImage, type BlockErrorContext } from '../errors.ts';

const MAX = BigInt(Number.MAX_SAFE_INTEGER);

/** A u64/i64 field as a safe JS number, or an InvalidImage error naming the field. */
export function u64ToNumber(v: bigint, field: string, ctx?: BlockErrorContext): number {
  if (v < 0n || v > MAX) throw invalidImage(`${field} is too large (${v})`, ctx);
  return Number(v);
}

/**
 * A virtual disk size (u64/i64 field or parsed text) as a JS number.
 *
 * Sizes: QEMU allows up to 2^63-1; Platter keeps offsets in JS numbers. Decision: a size past
 * 2^53 is accepted when it is a multiple of 512 below 2^62, because every multiple of 512 below
 * 2^62 is exactly representable in a double (their spacing there is at most 512), so the size
 * and every sector offset under it stay exact. What only touches metadata (create, info, check,
 * open) then works as in QEMU, and QEMU's own limits (the L1 table's, "Image is too big") refuse
 * what QEMU refuses at the point QEMU does. Guest I/O past 2^53 is refused by the generic layer
 * (core/block/node.ts). Other sizes past 2^53 are refused in words.
 */
export const MAX_EXACT_SIZE = 2n ** 62n;
export const SECTOR_BIG = 512n;
export function sizeToNumber(v: bigint, field: string, ctx?: BlockErrorContext): number {
  if (v >= 0n && v <= MAX) return Number(v);
  if (v > 0n && v < MAX_EXACT_SIZE && v % SECTOR_BIG === 0n) return Number(v);
  throw invalidImage(`${field} is too large (${v})`, ctx);
}

/** A size as a decimal integer ("36028797018963968", not JS's "36028797018963970"). */
export function sizeText(n: number): string {
  return Number.isSafeInteger(n) ? String(n) : BigInt(n).toString();
}

/** a + b, refusing results past 2^53. */
export function addChecked(a: number, b: number, what: string, ctx?: BlockErrorContext): number {
  const r = a + b;
  if (!Number.isSafeInteger(r)) throw invalidImage(`${what} overflows`, ctx);
  return r;
}

/** a * b, refusing results past 2^53. */
export function mulChecked(a: number, b: number, what: string, ctx?: BlockErrorContext): number {
  const r = a * b;
  if (!Number.isSafeInteger(r)) throw invalidImage(`${what} overflows`, ctx);
  return r;
}

export function isPowerOfTwo(v: number): boolean {
  return Number.isSafeInteger(v) && v > 0 && 2 ** Math.round(Math.log2(v)) === v;
}

export function divRoundUp(a: number, b: number): number {
  return Math.ceil(a / b);
}

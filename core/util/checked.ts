// Checked integer helpers for decoding on-disk fields: u64 fields come in as
// bigint and become numbers only when they fit; arithmetic on offsets refuses overflow.

import { invalidImage, type BlockErrorContext } from '../errors.ts';

const MAX = BigInt(Number.MAX_SAFE_INTEGER);

/** A u64/i64 field as a safe JS number, or an InvalidImage error naming the field. */
export function u64ToNumber(v: bigint, field: string, ctx?: BlockErrorContext): number {
  if (v < 0n || v > MAX) throw invalidImage(`${field} is too large (${v})`, ctx);
  return Number(v);
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

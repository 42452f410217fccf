// How long a fuzz case may legitimately take. A mutated LUKS header may ask for millions of PBKDF2
// iterations (up to Platter's cap, MAX_PBKDF2_ITERATIONS): unlocking it is slow by the image's own
// declaration, not a hang. Such a case gets the base timeout plus the time its declared key
// derivations take at a rate a loaded 2-core machine still reaches; anything slower still counts
// as a hang.

import { MAX_PBKDF2_ITERATIONS } from '../../core/crypto/validate.ts';

/** PBKDF2-SHA256 iterations per second assumed (about a tenth of one unloaded core here). */
const ASSUMED_ITERATIONS_PER_SECOND = 200_000;

// LUKS1 on-disk format (cryptsetup's LUKS1 spec, "phdr"): the master key digest iteration count,
// then eight 48-byte key slots (active marker, iterations, ...).
const LUKS_MAGIC = Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]);
const MK_DIGEST_ITERATIONS_AT = 164;
const KEY_SLOTS_AT = 208;
const KEY_SLOT_BYTES = 48;
const KEY_SLOTS = 8;
const KEY_ENABLED = 0x00ac71f3;

/** PBKDF2 iterations an unlock of this LUKS1 header may run (each active slot, then the digest). */
export function declaredPbkdf2Iterations(image: Buffer): number {
  if (image.length < KEY_SLOTS_AT + KEY_SLOTS * KEY_SLOT_BYTES || !image.subarray(0, 6).equals(LUKS_MAGIC)) return 0;
  const cap = (n: number) => (n > MAX_PBKDF2_ITERATIONS ? 0 : n); // refused before any work
  const digest = cap(image.readUInt32BE(MK_DIGEST_ITERATIONS_AT));
  let total = 0;
  for (let i = 0; i < KEY_SLOTS; i++) {
    const at = KEY_SLOTS_AT + i * KEY_SLOT_BYTES;
    if (image.readUInt32BE(at) === KEY_ENABLED) total += cap(image.readUInt32BE(at + 4)) + digest;
  }
  return total;
}

/** The timeout for one case: `baseMs` plus the declared key-derivation work. */
export function caseTimeoutMs(image: Buffer, baseMs: number): number {
  return baseMs + Math.ceil((declaredPbkdf2Iterations(image) / ASSUMED_ITERATIONS_PER_SECOND) * 1000);
}

// Validation of a decoded LUKS1 header (magic, version, ranges, overflow,
// overlap) and resolution of its cipher/mode/hash strings (LUKS1 spec 2.4 and its cipher/hash
// registry; QEMU crypto/block-luks.c check_header/parse_header behaviour, with its messages where
// users know them). Limits keep a hostile header from hanging or exhausting the process:
// iterations and stripes are capped before any key derivation runs.

import { invalidImage, unsupported } from '../errors.ts';
import { CIPHER_KEY_SIZES, CIPHER_MODES, HASH_DIGEST_LEN, IVGEN_ALGS, isHashAlg, requireSupportedFamily, type CipherMode, type HashAlg, type IvGenAlg } from './algorithms.ts';
import { LUKS_KEY_DISABLED, LUKS_KEY_ENABLED, LUKS_MAGIC, LUKS_NUM_KEY_SLOTS, LUKS_PHDR_SIZE, LUKS_SECTOR_SIZE, LUKS_VERSION_1, keyMaterialSectors, type LuksHeader } from './luks-header.ts';
import type { SectorCipherSpec } from './sector-engine.ts';

/** Largest master key a LUKS1 header may declare: 64 bytes = aes-256-xts, the largest QEMU and
 *  cryptsetup write for LUKS1. */
export const LUKS_MAX_KEY_BYTES = 64;
/** PBKDF2 iteration cap: far above what iter-time 2000 ms gives on any current CPU (a few
 *  million), low enough that one slot takes under a minute here (~2.2M sha256 iterations/s). */
export const MAX_PBKDF2_ITERATIONS = 1 << 26;
/** Anti-forensic stripes cap: cryptsetup and QEMU write 4000; 65536 bounds the key material of a
 *  slot to 4 MiB and its merge to well under a second. */
export const LUKS_MAX_STRIPES = 1 << 16;
/** QEMU aligns each slot's material to the 4 KiB the header area takes (8 sectors). */
export const LUKS_KEY_SLOT_ALIGN_SECTORS = 4096 / LUKS_SECTOR_SIZE;

/** What the header's strings mean, checked against what Platter can run. */
export interface LuksParams {
  /** QEMU's cipher-alg name: "aes-256". */
  cipherAlg: string;
  cipherMode: CipherMode;
  ivgenAlg: IvGenAlg;
  /** Only for essiv (QEMU shows ivgen-hash-alg only then). */
  ivgenHashAlg?: HashAlg;
  hashAlg: HashAlg;
  spec: SectorCipherSpec;
  /** Payload start in bytes. */
  payloadOffset: number;
}

/** Sectors QEMU reserves for a slot's material: ceil(key*stripes/512) rounded up to 8 sectors. */
export function slotAreaSectors(keyBytes: number, stripes: number): number {
  const n = keyMaterialSectors(keyBytes, stripes);
  return Math.ceil(n / LUKS_KEY_SLOT_ALIGN_SECTORS) * LUKS_KEY_SLOT_ALIGN_SECTORS;
}

/** Parse "<mode>-<ivgen>[:<hash>]" ("xts-plain64", "cbc-essiv:sha256"); a bare "ecb" is accepted. */
export function parseCipherModeSpec(text: string): { mode: CipherMode; ivgen: IvGenAlg; ivgenHash?: HashAlg } {
  const dash = text.indexOf('-');
  const modeName = dash < 0 ? text : text.slice(0, dash);
  if (!(CIPHER_MODES as readonly string[]).includes(modeName)) {
    throw unsupported(`Cipher mode ${modeName} not supported (expecting one of: ${CIPHER_MODES.join(', ')})`);
  }
  const mode = modeName as CipherMode;
  if (dash < 0) {
    if (mode === 'ecb') return { mode, ivgen: 'plain64' };
    throw invalidImage(`Unexpected cipher mode string format ${text}`);
  }
  const rest = text.slice(dash + 1);
  const colon = rest.indexOf(':');
  const ivName = colon < 0 ? rest : rest.slice(0, colon);
  const hashName = colon < 0 ? undefined : rest.slice(colon + 1);
  if (!(IVGEN_ALGS as readonly string[]).includes(ivName)) {
    throw unsupported(`IV generator ${ivName} not supported (expecting one of: ${IVGEN_ALGS.join(', ')})`);
  }
  const ivgen = ivName as IvGenAlg;
  if (hashName !== undefined && !isHashAlg(hashName)) throw unsupported(`Hash algorithm ${hashName} not supported`);
  if (ivgen === 'essiv' && hashName === undefined) throw invalidImage('Missing IV generator hash specification');
  return hashName !== undefined ? { mode, ivgen, ivgenHash: hashName as HashAlg } : { mode, ivgen };
}

/**
 * Check a decoded header against the LUKS1 rules and the size of the container holding it
 * (bytes), and resolve its algorithms. Throws BlockError (InvalidImage / Unsupported).
 */
export function validateLuksHeader(h: LuksHeader, containerSize: number): LuksParams {
  // Magic and version.
  if (!h.magic.equals(LUKS_MAGIC)) throw invalidImage('Volume is not in LUKS format');
  if (h.version !== LUKS_VERSION_1) throw unsupported(`LUKS version ${h.version} is not supported`);

  // Algorithms.
  if (h.keyBytes === 0 || h.keyBytes > LUKS_MAX_KEY_BYTES) {
    throw invalidImage(`LUKS master key length ${h.keyBytes} bytes is invalid (expected 1 to ${LUKS_MAX_KEY_BYTES})`);
  }
  const { mode, ivgen, ivgenHash } = parseCipherModeSpec(h.cipherMode);
  const family = h.cipherName;
  const sizes = CIPHER_KEY_SIZES[family];
  const cipherKeyBytes = mode === 'xts' ? h.keyBytes / 2 : h.keyBytes;
  if (!sizes) throw unsupported(`Cipher '${family}' not supported (expecting one of: ${Object.keys(CIPHER_KEY_SIZES).join(', ')})`);
  if (!sizes.includes(cipherKeyBytes)) throw unsupported(`Algorithm ${family} with key size ${cipherKeyBytes} bytes not supported`);
  requireSupportedFamily(family);
  if (!isHashAlg(h.hashSpec)) throw unsupported(`Hash algorithm ${h.hashSpec} not supported`);
  const hashAlg = h.hashSpec;
  if (ivgen === 'essiv') {
    const d = HASH_DIGEST_LEN[ivgenHash!];
    if (!sizes.includes(d)) throw unsupported(`No AES cipher with key size ${d} available`);
  }

  // Ranges: iterations and stripes (nothing may make unlocking hang).
  if (h.mkDigestIterations === 0 || h.mkDigestIterations > MAX_PBKDF2_ITERATIONS) {
    throw invalidImage(`LUKS master key digest iterations ${h.mkDigestIterations} out of range (expected 1 to ${MAX_PBKDF2_ITERATIONS})`);
  }
  const payloadBytes = h.payloadOffset * LUKS_SECTOR_SIZE;
  if (payloadBytes < LUKS_PHDR_SIZE) throw invalidImage(`LUKS payload offset ${h.payloadOffset} overlaps the LUKS header`);
  if (payloadBytes > containerSize) {
    throw invalidImage(`LUKS payload offset ${payloadBytes} is beyond the end of the file (size ${containerSize})`);
  }
  for (let i = 0; i < LUKS_NUM_KEY_SLOTS; i++) {
    const s = h.keySlots[i]!;
    if (s.active !== LUKS_KEY_ENABLED && s.active !== LUKS_KEY_DISABLED) throw invalidImage(`Keyslot ${i} state (active/disable) is corrupted`);
    if (s.stripes === 0) throw invalidImage(`Keyslot ${i} is corrupted (stripes == 0)`);
    if (s.stripes > LUKS_MAX_STRIPES) throw invalidImage(`Keyslot ${i} is corrupted (stripes ${s.stripes} > ${LUKS_MAX_STRIPES})`);
    if (s.active === LUKS_KEY_ENABLED && (s.iterations === 0 || s.iterations > MAX_PBKDF2_ITERATIONS)) {
      throw invalidImage(`Keyslot ${i} iterations ${s.iterations} out of range (expected 1 to ${MAX_PBKDF2_ITERATIONS})`);
    }
  }

  // Overlap: slot material vs header, payload and each other (QEMU's slot area sizes).
  for (let i = 0; i < LUKS_NUM_KEY_SLOTS; i++) {
    const a = h.keySlots[i]!;
    const aLen = slotAreaSectors(h.keyBytes, a.stripes);
    if (a.keyMaterialOffset * LUKS_SECTOR_SIZE < LUKS_PHDR_SIZE) throw invalidImage(`Keyslot ${i} is overlapping with the LUKS header`);
    if (a.keyMaterialOffset + aLen > h.payloadOffset) throw invalidImage(`Keyslot ${i} is overlapping with the encrypted payload`);
    for (let j = i + 1; j < LUKS_NUM_KEY_SLOTS; j++) {
      const b = h.keySlots[j]!;
      const bLen = slotAreaSectors(h.keyBytes, b.stripes);
      if (a.keyMaterialOffset + aLen > b.keyMaterialOffset && b.keyMaterialOffset + bLen > a.keyMaterialOffset) {
        throw invalidImage(`Keyslots ${i} and ${j} are overlapping in the header`);
      }
    }
  }

  const spec: SectorCipherSpec = { family, mode, ivgen, ...(ivgenHash ? { ivgenHash } : {}) };
  return {
    cipherAlg: `${family}-${cipherKeyBytes * 8}`,
    cipherMode: mode,
    ivgenAlg: ivgen,
    ...(ivgen === 'essiv' ? { ivgenHashAlg: ivgenHash! } : {}),
    hashAlg,
    spec,
    payloadOffset: payloadBytes,
  };
}

// The cipher, mode, IV generator and hash names LUKS1 headers and QEMU's luks options use
// (cryptsetup LUKS1 on-disk format spec, "Cipher and Hash specification registry"; QEMU's
// qapi/crypto.json QCryptoCipherAlgorithm / QCryptoCipherMode / QCryptoIVGenAlgorithm /
// QCryptoHashAlgorithm). One table per kind; everything else looks names up here.

import { nodeCrypto } from '../host/lazy-node-modules.ts';
import { invalidArgument, unsupported } from '../errors.ts';

export type CipherMode = 'xts' | 'cbc' | 'ecb' | 'ctr';
export type IvGenAlg = 'plain' | 'plain64' | 'essiv';
export type HashAlg = 'md5' | 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512' | 'ripemd160';

export const CIPHER_MODES: readonly CipherMode[] = ['xts', 'cbc', 'ecb', 'ctr'];
export const IVGEN_ALGS: readonly IvGenAlg[] = ['plain', 'plain64', 'essiv'];

/** Digest length in bytes of each hash QEMU knows (QCryptoHashAlgorithm). */
export const HASH_DIGEST_LEN: Readonly<Record<HashAlg, number>> = {
  md5: 16,
  sha1: 20,
  sha224: 28,
  sha256: 32,
  sha384: 48,
  sha512: 64,
  ripemd160: 20,
};
export const HASH_ALGS = Object.keys(HASH_DIGEST_LEN) as HashAlg[];

/** Cipher families a LUKS1 header may name, with the key sizes (bytes) QEMU maps to algorithms. */
export const CIPHER_KEY_SIZES: Readonly<Record<string, readonly number[]>> = {
  aes: [16, 24, 32],
  cast5: [16],
  serpent: [16, 24, 32],
  twofish: [16, 24, 32],
};

/** QEMU's cipher-alg names ("aes-256", "twofish-128", "cast5-128"). */
export const CIPHER_ALG_NAMES: readonly string[] = Object.entries(CIPHER_KEY_SIZES).flatMap(([family, sizes]) => sizes.map((s) => `${family}-${s * 8}`));

/** AES block size: every supported mode works on 16-byte blocks. */
export const AES_BLOCK = 16;

export function isHashAlg(name: string): name is HashAlg {
  return Object.prototype.hasOwnProperty.call(HASH_DIGEST_LEN, name);
}

/** A cipher-alg name split into family and key length (bytes); refuses unknown names. */
export function parseCipherAlg(name: string): { family: string; keyBytes: number } {
  const m = /^([a-z0-9]+)-(\d+)$/.exec(name);
  const sizes = m ? CIPHER_KEY_SIZES[m[1]!] : undefined;
  const keyBytes = m ? Number(m[2]) / 8 : 0;
  if (!m || !sizes || !sizes.includes(keyBytes)) {
    throw invalidArgument(`Parameter 'cipher-alg' does not accept value '${name}' (expecting one of: ${CIPHER_ALG_NAMES.join(', ')})`);
  }
  return { family: m[1]!, keyBytes };
}

/**
 * Refuse a cipher family node:crypto (OpenSSL 3 default provider) cannot run. Only AES is
 * built in; twofish, serpent and cast5 are valid LUKS ciphers that Platter cannot decrypt.
 */
export function requireSupportedFamily(family: string): void {
  if (family !== 'aes' || !nodeCrypto().getCiphers().includes('aes-128-ecb')) {
    throw unsupported(`Cipher '${family}' is not supported: this build of Platter implements only AES (node:crypto has no ${family})`);
  }
}

// Legacy qcow/qcow2 "aes" encryption (qcow2 spec "crypt_method = 1"; QEMU crypto/block-qcow.c):
// AES-128-CBC per 512-byte sector, IV = the sector number as 64-bit little-endian (plain64),
// key = the passphrase's first 16 bytes, zero padded. Known to be weak (qemu-block-drivers(7));
// Platter keeps it for reading and converting old images, as qemu-img does.

import type { WorkerPool } from '../workers/pool.ts';
import { SectorCipher } from './sector-cipher.ts';
import type { SectorCipherSpec } from './sector-engine.ts';

/** AES-128 key length; longer passphrases are cut, shorter ones zero padded. */
export const QCOW_AES_KEY_LEN = 16;

export const QCOW_AES_SPEC: SectorCipherSpec = { family: 'aes', mode: 'cbc', ivgen: 'plain64' };

/** The 16-byte key QEMU derives from a qcow AES passphrase (the caller zeroes it after use). */
export function qcowAesKey(passphrase: Uint8Array): Buffer {
  const key = Buffer.alloc(QCOW_AES_KEY_LEN);
  // QEMU reads the secret as a C string: bytes after a NUL are not part of it.
  const nul = passphrase.indexOf(0);
  const len = Math.min(QCOW_AES_KEY_LEN, nul < 0 ? passphrase.length : nul);
  key.set(passphrase.subarray(0, len));
  return key;
}

/**
 * A SectorCipher for a legacy-AES qcow/qcow2 image: encrypt(sector, data) / decrypt(sector,
 * data) where sector = guest offset / 512 of the first sector in `data`. close() zeroes the key.
 */
export function openQcowAesCipher(passphrase: Uint8Array, workers: WorkerPool): SectorCipher {
  const key = qcowAesKey(passphrase);
  try {
    return new SectorCipher(QCOW_AES_SPEC, key, workers);
  } finally {
    key.fill(0);
  }
}

// Crypto tasks for the worker pool: PBKDF2 (and its speed benchmark for iter-time), LUKS1 key
// slot unlock/seal (PBKDF2 + key-material cipher + AF merge/split + mk-digest check in one trip),
// and bulk sector encryption (luksEncrypt/luksDecrypt). Every key or passphrase buffer a task
// receives is its own copy (structured clone) and is zeroed before the task returns.

import { pbkdf2Sync, timingSafeEqual } from 'node:crypto';
import { afMerge, afSplit } from '../../crypto/af-splitter.ts';
import { CRYPTO_SECTOR_SIZE, cryptSectors, type SectorCipherSpec } from '../../crypto/sector-engine.ts';
import type { HashAlg } from '../../crypto/algorithms.ts';

/** The benchmark runs until one measurement takes at least this long (QEMU uses 500 ms; 100 ms measures within a few percent). */
const BENCH_MIN_MS = 100;
/** First benchmark round, grown until the round is long enough to time. */
const BENCH_START_ITERATIONS = 1 << 13;
/** LUKS1 mk-digest length. */
const MK_DIGEST_LEN = 20;

const wipe = (...bufs: (Uint8Array | undefined)[]) => {
  for (const b of bufs) b?.fill(0);
};

const asU8 = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.length);

export interface UnlockSlotInput {
  passphrase: Uint8Array;
  salt: Uint8Array;
  iterations: number;
  /** The slot's encrypted key material (whole sectors). */
  material: Uint8Array;
  keyBytes: number;
  stripes: number;
  hash: HashAlg;
  spec: SectorCipherSpec;
  mkDigest: Uint8Array;
  mkDigestSalt: Uint8Array;
  mkDigestIterations: number;
}

export interface SealSlotInput {
  passphrase: Uint8Array;
  salt: Uint8Array;
  iterations: number;
  masterKey: Uint8Array;
  stripes: number;
  hash: HashAlg;
  spec: SectorCipherSpec;
}

export const CRYPTO_TASKS = {
  /** PBKDF2-HMAC(hash) of `password` (LUKS mk digest, key slot keys). */
  pbkdf2(input: { password: Uint8Array; salt: Uint8Array; iterations: number; keyLen: number; hash: HashAlg }): Uint8Array {
    try {
      return asU8(pbkdf2Sync(input.password, input.salt, input.iterations, input.keyLen, input.hash));
    } finally {
      wipe(input.password);
    }
  },

  /** PBKDF2 iterations per second for this hash and output length, measured here. */
  pbkdf2Benchmark(input: { hash: HashAlg; keyLen: number }): number {
    const pw = Buffer.alloc(32, 0x5a);
    const salt = Buffer.alloc(32, 0xa5);
    let iterations = BENCH_START_ITERATIONS;
    for (;;) {
      const t0 = performance.now();
      pbkdf2Sync(pw, salt, iterations, input.keyLen, input.hash);
      const ms = performance.now() - t0;
      if (ms >= BENCH_MIN_MS) return Math.floor((iterations * 1000) / ms);
      iterations = ms < 1 ? iterations * 16 : Math.ceil(iterations * Math.min(16, (BENCH_MIN_MS * 1.2) / ms));
    }
  },

  /** Try one active key slot: the master key when the passphrase opens it, else empty. */
  luksUnlockSlot(input: UnlockSlotInput): Uint8Array {
    let slotKey: Buffer | undefined;
    let split: Uint8Array | undefined;
    let candidate: Buffer | undefined;
    let digest: Buffer | undefined;
    try {
      slotKey = pbkdf2Sync(input.passphrase, input.salt, input.iterations, input.keyBytes, input.hash);
      split = cryptSectors(input.spec, slotKey, 0, input.material, false);
      candidate = afMerge(split, input.keyBytes, input.stripes, input.hash);
      digest = pbkdf2Sync(candidate, input.mkDigestSalt, input.mkDigestIterations, MK_DIGEST_LEN, input.hash);
      if (timingSafeEqual(digest, input.mkDigest)) {
        const out = new Uint8Array(candidate.length);
        out.set(candidate);
        return out;
      }
      return new Uint8Array(0);
    } finally {
      wipe(input.passphrase, slotKey, split, candidate, digest, input.material);
    }
  },

  /** Key material for a slot: AF-split master key, zero-padded to sectors, encrypted with the
   *  key PBKDF2 derives from the passphrase (IVs count sectors from the material's start). */
  luksSealSlot(input: SealSlotInput): Uint8Array {
    let slotKey: Buffer | undefined;
    let split: Buffer | undefined;
    let padded: Uint8Array | undefined;
    try {
      const keyBytes = input.masterKey.length;
      slotKey = pbkdf2Sync(input.passphrase, input.salt, input.iterations, keyBytes, input.hash);
      split = afSplit(input.masterKey, input.stripes, input.hash);
      padded = new Uint8Array(Math.ceil(split.length / CRYPTO_SECTOR_SIZE) * CRYPTO_SECTOR_SIZE);
      padded.set(split);
      return cryptSectors(input.spec, slotKey, 0, padded, true);
    } finally {
      wipe(input.passphrase, input.masterKey, slotKey, split, padded);
    }
  },

  /** Encrypt whole 512-byte sectors numbered from `startSector`. */
  luksEncrypt(input: { spec: SectorCipherSpec; key: Uint8Array; startSector: number; data: Uint8Array; sectorSize?: number }): Uint8Array {
    try {
      return cryptSectors(input.spec, input.key, input.startSector, input.data, true, input.sectorSize);
    } finally {
      wipe(input.key);
    }
  },

  /** Decrypt whole 512-byte sectors numbered from `startSector`. */
  luksDecrypt(input: { spec: SectorCipherSpec; key: Uint8Array; startSector: number; data: Uint8Array; sectorSize?: number }): Uint8Array {
    try {
      return cryptSectors(input.spec, input.key, input.startSector, input.data, false, input.sectorSize);
    } finally {
      wipe(input.key);
    }
  },
};

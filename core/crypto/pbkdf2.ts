// PBKDF2 iteration counts from an iter-time budget, as QEMU (crypto/block-luks.c) and cryptsetup
// pick them: measure this machine's PBKDF2 speed for the hash (in a worker), scale it to the
// requested milliseconds, never go below 1000 (LUKS1 minimum); the mk digest uses an eighth of
// the key-slot budget. The measurement is cached per hash for a while, since it costs ~250 ms.

import { invalidArgument } from '../errors.ts';
import type { WorkerPool } from '../workers/pool.ts';
import type { HashAlg } from './algorithms.ts';
import { MAX_PBKDF2_ITERATIONS } from './validate.ts';

/** LUKS1 / QEMU minimum iterations for key slots and the mk digest. */
export const MIN_SLOT_ITERATIONS = 1000;
export const MIN_MK_DIGEST_ITERATIONS = 1000;
/** QEMU divides the mk-digest budget by 8 (as cryptsetup does). */
const MK_DIGEST_BUDGET_DIVISOR = 8;
/** QEMU's default iter-time (ms). */
export const DEFAULT_ITER_TIME_MS = 2000;
/** How long a speed measurement is reused. */
const BENCH_CACHE_MS = 60_000;

const cache = new Map<string, { rate: number; at: number }>();

/** PBKDF2 iterations per second for `hash` producing `keyLen` bytes, measured in a worker. */
export async function pbkdf2Rate(workers: WorkerPool, hash: HashAlg, keyLen: number): Promise<number> {
  const k = `${hash}/${keyLen}`;
  const hit = cache.get(k);
  if (hit && Date.now() - hit.at < BENCH_CACHE_MS) return hit.rate;
  const rate = await workers.run('pbkdf2Benchmark', { hash, keyLen });
  cache.set(k, { rate, at: Date.now() });
  return rate;
}

function scaled(rate: number, iterTimeMs: number, divisor: number, min: number): number {
  if (!Number.isSafeInteger(iterTimeMs) || iterTimeMs <= 0) throw invalidArgument(`Parameter 'iter-time' must be a positive number of milliseconds (got ${iterTimeMs})`);
  const iters = Math.max(min, Math.floor((rate * iterTimeMs) / 1000 / divisor));
  if (iters > MAX_PBKDF2_ITERATIONS) {
    throw invalidArgument(`PBKDF iterations ${iters} for iter-time ${iterTimeMs} ms exceed Platter's limit of ${MAX_PBKDF2_ITERATIONS}; use a smaller iter-time`);
  }
  return iters;
}

/** Iterations for a key slot's passphrase (derived key of `keyBytes`). */
export async function slotIterations(workers: WorkerPool, hash: HashAlg, keyBytes: number, iterTimeMs: number): Promise<number> {
  return scaled(await pbkdf2Rate(workers, hash, keyBytes), iterTimeMs, 1, MIN_SLOT_ITERATIONS);
}

/** Iterations for the master-key digest (20-byte output). */
export async function mkDigestIterations(workers: WorkerPool, hash: HashAlg, iterTimeMs: number): Promise<number> {
  return scaled(await pbkdf2Rate(workers, hash, 20), iterTimeMs, MK_DIGEST_BUDGET_DIVISOR, MIN_MK_DIGEST_ITERATIONS);
}

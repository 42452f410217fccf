// A rate limit in bytes per second, as QEMU's throttling applies qemu-img convert -r and commit -r
// (util/throttle.c: one leaky bucket, average `bytesPerSecond`, no burst maximum; the bucket then
// holds a tenth of a second's bytes, so short bursts pass). A request waits while the bucket is
// fuller than that, then adds its bytes; the bucket drains at the average rate.

import { cancelled } from '../errors.ts';

export class LeakyBucket {
  #level = 0;
  #at = performance.now();

  constructor(readonly bytesPerSecond: number) {
    if (!(bytesPerSecond > 0)) throw new RangeError('a rate limit is a positive number of bytes per second');
  }

  /** Bytes over the bucket's size now (QEMU's "extra" in throttle_compute_wait). */
  #extra(): number {
    const now = performance.now();
    this.#level = Math.max(0, this.#level - ((now - this.#at) / 1000) * this.bytesPerSecond);
    this.#at = now;
    return this.#level - this.bytesPerSecond / 10;
  }

  /** Wait until the bucket has room, then account `bytes` to it. Rejects when `signal` aborts. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    for (let extra = this.#extra(); extra > 0; extra = this.#extra()) {
      await pause(Math.ceil((extra / this.bytesPerSecond) * 1000), signal);
    }
    this.#level += bytes;
  }
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(cancelled());
    const onAbort = () => {
      clearTimeout(timer);
      reject(cancelled());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

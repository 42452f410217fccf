// Exclusive locks over byte ranges: a holder of [start, end) waits for every overlapping holder
// that came before it. Used for read-modify-write serialisation and by drivers for cluster
// allocation (QEMU's serialising requests / CoMutex around metadata updates).

interface Held {
  start: number;
  end: number;
  done: Promise<void>;
}

export class RangeLock {
  #held: Held[] = [];

  /** Wait for overlapping holders, then hold [start, end) until the returned release() runs. */
  async acquire(start: number, end: number): Promise<() => void> {
    let release!: () => void;
    const done = new Promise<void>((r) => (release = r));
    const waitFor = this.#held.filter((h) => h.start < end && start < h.end).map((h) => h.done);
    const me: Held = { start, end, done };
    this.#held.push(me);
    await Promise.all(waitFor);
    return () => {
      this.#held = this.#held.filter((h) => h !== me);
      release();
    };
  }
}

/** A plain async mutex (a RangeLock over everything). */
export class Mutex {
  #tail: Promise<void> = Promise.resolve();

  async lock(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((r) => (release = r));
    const prev = this.#tail;
    this.#tail = prev.then(() => next);
    await prev;
    return release;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.lock();
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

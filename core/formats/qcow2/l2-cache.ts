// A bounded LRU cache of L2 tables (QEMU block/qcow2-cache.c, docs/qcow2-cache.txt). Tables are
// written through to disk by cluster-map.ts, so the cache never holds dirty data and eviction
// is free. Concurrent loads of the same table share one read.

/** QEMU's default L2 cache cap (DEFAULT_L2_CACHE_MAX_SIZE, 32 MiB); below that, enough to
 *  cover the whole image, never less than a few tables. */
export const DEFAULT_L2_CACHE_MAX = 32 << 20;
/** Minimum tables cached (QEMU keeps at least 2 per L2 + snapshot use; a few more helps -m 8). */
const MIN_TABLES = 8;

export class L2Cache {
  readonly #tables = new Map<number, Buffer>();
  readonly #loading = new Map<number, Promise<Buffer>>();
  readonly #maxTables: number;

  /** `tableBytes`: size of one table; `coverBytes`: bytes of cache that cover the whole image. */
  constructor(tableBytes: number, coverBytes: number, maxBytes = DEFAULT_L2_CACHE_MAX) {
    const bytes = Math.min(maxBytes, Math.max(coverBytes, tableBytes * MIN_TABLES));
    this.#maxTables = Math.max(MIN_TABLES, Math.floor(bytes / tableBytes));
  }

  /** The table at host `offset`, loaded with `load` on a miss. */
  async get(offset: number, load: () => Promise<Buffer>): Promise<Buffer> {
    const hit = this.#tables.get(offset);
    if (hit) {
      this.#tables.delete(offset);
      this.#tables.set(offset, hit);
      return hit;
    }
    const pending = this.#loading.get(offset);
    if (pending) return pending;
    const p = load().then(
      (buf) => {
        this.#loading.delete(offset);
        this.put(offset, buf);
        return buf;
      },
      (e) => {
        this.#loading.delete(offset);
        throw e;
      },
    );
    this.#loading.set(offset, p);
    return p;
  }

  put(offset: number, buf: Buffer): void {
    this.#tables.delete(offset);
    this.#tables.set(offset, buf);
    while (this.#tables.size > this.#maxTables) {
      const oldest = this.#tables.keys().next().value as number;
      this.#tables.delete(oldest);
    }
  }

  drop(offset: number): void {
    this.#tables.delete(offset);
  }

  clear(): void {
    this.#tables.clear();
  }
}

// A bounded LRU cache of L2 tables (QEMU block/qcow2-cache.c, docs/qcow2-cache.txt). Normally
// tables are written through to disk by cluster-map.ts, so the cache holds no dirty data and
// eviction is free. In write-back mode (image.ts: the file never flushes, cache=unsafe) changed
// tables stay dirty here until the image writes them back; a dirty table is never evicted.
// Concurrent loads of the same table share one read.

/** QEMU's default L2 cache cap (DEFAULT_L2_CACHE_MAX_SIZE, 32 MiB); below that, enough to
 *  cover the whole image, never less than a few tables. */
export const DEFAULT_L2_CACHE_MAX = 32 << 20;
/** Minimum tables cached (QEMU keeps at least 2 per L2 + snapshot use; a few more helps -m 8). */
const MIN_TABLES = 8;

/** A dirty table: its host offset, the table, and the changed byte span [lo, hi). */
export interface DirtyTable {
  offset: number;
  table: Buffer;
  lo: number;
  hi: number;
}

export class L2Cache {
  readonly #tables = new Map<number, Buffer>();
  readonly #loading = new Map<number, Promise<Buffer>>();
  readonly #dirty = new Map<number, [number, number]>();
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
        // A table put while this load was under way (a new or changed table) is the one to use:
        // there must never be two buffers for one table.
        const current = this.#tables.get(offset);
        if (current) return current;
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
    if (this.#tables.size <= this.#maxTables) return;
    for (const oldest of this.#tables.keys()) {
      if (this.#tables.size <= this.#maxTables) break;
      if (!this.#dirty.has(oldest)) this.#tables.delete(oldest);
    }
  }

  /** Record that bytes [lo, hi) of `table` (the table at `offset`) changed and are not on disk. */
  markDirty(offset: number, table: Buffer, lo: number, hi: number): void {
    if (this.#tables.get(offset) !== table) this.put(offset, table);
    const d = this.#dirty.get(offset);
    if (d) {
      d[0] = Math.min(d[0], lo);
      d[1] = Math.max(d[1], hi);
    } else this.#dirty.set(offset, [lo, hi]);
  }

  /** Dirty tables, oldest change first (the caller writes each and then calls clean()). */
  dirtyTables(): DirtyTable[] {
    return [...this.#dirty].map(([offset, [lo, hi]]) => ({ offset, table: this.#tables.get(offset)!, lo, hi }));
  }

  clean(offset: number): void {
    this.#dirty.delete(offset);
  }

  /** Half the cache is dirty: time to write back (dirty tables cannot be evicted). */
  get needsWriteBack(): boolean {
    return this.#dirty.size >= Math.max(1, this.#maxTables >> 1);
  }

  /** The cluster at `offset` was freed: forget it, including changes not written back (writing
   *  them later would overwrite whatever the cluster holds next). */
  drop(offset: number): void {
    this.#tables.delete(offset);
    this.#dirty.delete(offset);
  }

  clear(): void {
    if (this.#dirty.size > 0) throw new Error('internal: L2 cache cleared with tables not written back');
    this.#tables.clear();
  }
}

// A small least-recently-used cache of decoded on-disk tables (QED L2 tables, QCOW v1 L2 tables),
// keyed by the table's file offset (QEMU's l2_cache in block/qed-l2-cache.c and block/qcow.c).
//
// Consistency rule: while a table is cached, every user works on that one object. A writer pins
// the table while it changes the object and writes the change through to disk; pinned tables are
// never evicted, so a table is only ever reloaded from disk when no write to it is in flight and
// the disk copy is current. Concurrent loads of one table share one read.

export class TableCache<T> {
  readonly #capacity: number;
  /** Insertion order = recency order (oldest first). */
  readonly #tables = new Map<number, T>();
  readonly #loading = new Map<number, Promise<T>>();
  readonly #pins = new Map<number, number>();

  /** `capacity`: how many unpinned tables stay in memory (bounds memory use on huge images). */
  constructor(capacity: number) {
    this.#capacity = Math.max(1, capacity);
  }

  /** The table at `offset`, loading it with `load` when not cached; `pin` holds it in memory
   *  until unpin() (for writers). */
  async get(offset: number, load: () => Promise<T>, pin = false): Promise<T> {
    let t = this.#tables.get(offset);
    if (t === undefined) {
      let p = this.#loading.get(offset);
      if (!p) {
        p = load().finally(() => this.#loading.delete(offset));
        this.#loading.set(offset, p);
      }
      const loaded = await p;
      // Someone may have cached (or re-cached) the table while we waited: use their object.
      t = this.#tables.get(offset) ?? loaded;
    }
    if (pin) this.#pins.set(offset, (this.#pins.get(offset) ?? 0) + 1);
    this.put(offset, t);
    return t;
  }

  unpin(offset: number): void {
    const n = (this.#pins.get(offset) ?? 0) - 1;
    if (n > 0) this.#pins.set(offset, n);
    else this.#pins.delete(offset);
    this.#evict();
  }

  /** Add (or refresh) a table, e.g. one just allocated. */
  put(offset: number, table: T): void {
    this.#tables.delete(offset);
    this.#tables.set(offset, table);
    this.#evict();
  }

  #evict(): void {
    if (this.#tables.size <= this.#capacity) return;
    for (const key of this.#tables.keys()) {
      if (this.#tables.size <= this.#capacity) break;
      if (!this.#pins.has(key)) this.#tables.delete(key);
    }
  }

  /** Forget every unpinned table (after a repair rewrote tables on disk). */
  clear(): void {
    for (const key of [...this.#tables.keys()]) if (!this.#pins.has(key)) this.#tables.delete(key);
  }
}

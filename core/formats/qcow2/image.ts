// The in-memory state of one open qcow2 image (QEMU's BDRVQcow2State): the decoded header, the
// geometry derived from it, the active L1 table, the L2 cache, refcounts, and the locks that
// order metadata updates. The on-disk header is kept apart (header.ts); this class rewrites it.
//
// Metadata is written through (each L2/refcount change reaches the file at once, ordered by
// barriers) unless the file never flushes to disk (cache=unsafe, convert's default target mode):
// then L2 tables and refcount blocks stay dirty in their caches and writeBack() writes them,
// refcounts first, at flush, close, before any freeing, before whole-image operations, and when
// a cache fills (QEMU's write-back qcow2 caches with the refcount->L2 dependency). The file sees
// the same order of writes, so a killed process leaves leaks at worst, as in write-through mode.

import type { BlockNode } from '../../block/node.ts';
import type { BlockErrorContext } from '../../errors.ts';
import { corrupt } from '../../errors.ts';
import type { WorkerPool } from '../../workers/pool.ts';
import { Mutex, RangeLock } from '../../util/range-lock.ts';
import { COMPAT_LAZY_REFCOUNTS, encodeHeader, INCOMPAT_DATA_FILE, INCOMPAT_EXTL2, AUTOCLEAR_DATA_FILE_RAW, type Qcow2Header } from './header.ts';
import { L1E_SIZE, l2EntryBytes, SUBCLUSTERS, type EntryGeometry } from './entries.ts';
import { L2Cache } from './l2-cache.ts';
import { Refcounts } from './refcount.ts';
import type { Snapshot } from './snapshots-table.ts';

/** Refcount blocks held dirty before a write-back. */
const REFCOUNT_DIRTY_MAX = 64;

export class Qcow2Image {
  header: Qcow2Header;
  readonly file: BlockNode;
  /** Where guest data lives: the image file, or the external data file. */
  dataFile: BlockNode;
  readonly clusterBits: number;
  readonly clusterSize: number;
  readonly geo: EntryGeometry;
  /** Entries per L2 table. */
  readonly l2Entries: number;
  readonly subclusterSize: number;
  l1: Buffer;
  readonly l2Cache: L2Cache;
  refcounts: Refcounts;
  snapshots: Snapshot[] = [];
  /** Bytes the snapshot table takes on disk. */
  snapshotTableBytes = 0;
  /** Serialises allocation and every metadata update (QEMU's s->lock for metadata). */
  readonly meta = new Mutex();
  /** Serialises writes to the same guest clusters. */
  readonly writes = new RangeLock();
  readonly readOnly: boolean;
  readonly ctx: BlockErrorContext;
  readonly workers: WorkerPool;
  readonly warn: (m: string) => void;
  /** Keep L2 and refcount changes in memory until writeBack() (the file never flushes). */
  readonly writeBackMode: boolean;
  /** End of the highest host cluster reserve() mapped; the file may still end before it (the
   *  data has not landed yet) and is grown to it at flush and close. */
  reservedEnd = 0;
  /** Whole-image operations in progress (they run with metadata written through). */
  #writeThroughDepth = 0;

  constructor(init: { header: Qcow2Header; file: BlockNode; l1: Buffer; reftable: Buffer; readOnly: boolean; ctx: BlockErrorContext; workers: WorkerPool; warn: (m: string) => void }) {
    this.header = init.header;
    this.file = init.file;
    this.dataFile = init.file;
    this.clusterBits = init.header.clusterBits;
    this.clusterSize = 2 ** this.clusterBits;
    const extendedL2 = (init.header.incompatible & INCOMPAT_EXTL2) !== 0n;
    this.geo = { clusterBits: this.clusterBits, extendedL2, version: init.header.version, externalData: (init.header.incompatible & INCOMPAT_DATA_FILE) !== 0n };
    this.l2Entries = this.clusterSize / l2EntryBytes(this.geo);
    this.subclusterSize = extendedL2 ? this.clusterSize / SUBCLUSTERS : this.clusterSize;
    this.l1 = init.l1;
    this.readOnly = init.readOnly;
    this.ctx = init.ctx;
    this.workers = init.workers;
    this.warn = init.warn;
    this.writeBackMode = !init.readOnly && init.file.noFlush;
    const l2Bytes = this.clusterSize;
    const cover = Math.ceil(init.header.size / (this.l2Entries * this.clusterSize)) * l2Bytes;
    this.l2Cache = new L2Cache(l2Bytes, cover);
    this.refcounts = this.makeRefcounts(init.header.refcountOrder, init.header.refcountTableOffset, init.header.refcountTableClusters, init.reftable);
  }

  /** Refcounts over the table at `tableOffset` (also used when amend rewrites them). */
  makeRefcounts(refcountOrder: number, tableOffset: number, tableClusters: number, tableBuf: Buffer): Refcounts {
    const r = new Refcounts(
      {
        file: this.file,
        write: (offset, data) => this.writeMeta(offset, data),
        barrier: () => this.barrier(),
        deferring: () => this.deferring,
        tableMoved: async (offset, clusters) => {
          this.header.refcountTableOffset = offset;
          this.header.refcountTableClusters = clusters;
          await this.writeHeader();
        },
        ctx: this.ctx,
      },
      this.clusterBits,
      refcountOrder,
      tableOffset,
      tableClusters,
      tableBuf,
    );
    r.onFree = (cluster) => {
      // A freed cluster may come back as anything: forget it as an L2 table.
      this.l2Cache.drop(cluster * this.clusterSize);
      this.onClusterFreed?.(cluster);
    };
    return r;
  }

  /** Extra hook for freed clusters (the node's compressed-packing position). */
  onClusterFreed: ((cluster: number) => void) | undefined;

  get size(): number {
    return this.header.size;
  }
  /** The image as it was in a snapshot: the same file and caches seen through the snapshot's L1
   *  table and size, read-only (qemu-img convert -l). */
  snapshotView(l1: Buffer, l1Size: number, size: number): Qcow2Image {
    const view = Object.create(this) as Qcow2Image;
    return Object.assign(view, { l1, header: { ...this.header, l1Size, size }, readOnly: true });
  }

  get l1Size(): number {
    return this.header.l1Size;
  }
  get lazyRefcounts(): boolean {
    return (this.header.compatible & COMPAT_LAZY_REFCOUNTS) !== 0n;
  }
  get externalData(): boolean {
    return (this.header.incompatible & INCOMPAT_DATA_FILE) !== 0n;
  }
  get dataRaw(): boolean {
    return (this.header.autoclear & AUTOCLEAR_DATA_FILE_RAW) !== 0n;
  }

  /** Metadata writes issued so far, and how many of them a completed flush covers. */
  private writeGenCount = 0;
  private syncedGenCount = 0;
  private syncInFlight: Promise<void> | undefined;

  /** Write metadata (anything but guest data) to the image file. */
  async writeMeta(offset: number, data: Buffer): Promise<void> {
    this.writeGenCount++;
    await this.file.write(offset, data);
  }

  /** The generation of the latest metadata write (pass it to syncTo later). */
  get metaGeneration(): number {
    return this.writeGenCount;
  }

  /**
   * Make metadata writes up to generation `gen` durable. Concurrent callers share flushes (group
   * commit), so writers running in parallel do not each pay for one. With lazy refcounts the
   * dirty bit covers a crash, so no flush is needed (QEMU does the same).
   */
  async syncTo(gen: number): Promise<void> {
    if (this.lazyRefcounts) return;
    while (this.syncedGenCount < gen) {
      if (this.syncInFlight) {
        await this.syncInFlight;
        continue;
      }
      const target = this.writeGenCount;
      const p = this.file.flush().then(() => {
        this.syncedGenCount = Math.max(this.syncedGenCount, target);
      });
      this.syncInFlight = p.finally(() => {
        this.syncInFlight = undefined;
      });
      await this.syncInFlight;
    }
  }

  /** Order metadata writes: every earlier one is durable before later ones are issued (in
   *  write-back mode, every change held in the caches is written first). */
  async barrier(): Promise<void> {
    if (this.writeBackMode) await this.writeBack();
    await this.syncTo(this.writeGenCount);
  }

  /** L2 and refcount changes are being held in memory right now. */
  get deferring(): boolean {
    return this.writeBackMode && this.#writeThroughDepth === 0;
  }

  /** Write every held change: refcount blocks, then L2 tables (whose new entries they cover).
   *  Caller holds `meta`. */
  async writeBack(): Promise<void> {
    await this.refcounts.writeBack();
    const tables = this.l2Cache.dirtyTables();
    if (tables.length === 0) return;
    await this.syncTo(this.writeGenCount); // no-op unless the file flushes
    for (const t of tables) {
      await this.writeMeta(t.offset + t.lo, t.table.subarray(t.lo, t.hi));
      this.l2Cache.clean(t.offset);
    }
  }

  /** Run a whole-image operation (snapshots, check, amend, resize) with every held change
   *  written back first and metadata written through while it runs. Caller holds `meta`. */
  async writeThrough<T>(fn: () => Promise<T>): Promise<T> {
    await this.writeBack();
    this.#writeThroughDepth++;
    try {
      return await fn();
    } finally {
      this.#writeThroughDepth--;
    }
  }

  /** After a deferred change: write back when a cache is half dirty (dirty L2 tables cannot be
   *  evicted, and bounded dirt bounds what a kill loses). Caller holds `meta`. */
  async writeBackIfFull(): Promise<void> {
    if (this.l2Cache.needsWriteBack || this.refcounts.dirtyBlocks >= REFCOUNT_DIRTY_MAX) await this.writeBack();
  }

  /** Rewrite cluster 0 from `this.header`. */
  async writeHeader(): Promise<void> {
    const buf = encodeHeader(this.header, this.clusterSize);
    const out = Buffer.alloc(this.clusterSize); // QEMU rewrites the whole header cluster
    buf.copy(out);
    await this.writeMeta(0, out);
    await this.file.flush(); // header changes (dirty bit, table moves) are durable at once
  }

  /** Load an L2 table (through the cache), refusing offsets a valid image cannot have. */
  async l2Table(offset: number): Promise<Buffer> {
    return this.l2Cache.get(offset, async () => {
      if (offset % this.clusterSize !== 0) throw corrupt(`L2 table offset 0x${offset.toString(16)} is not cluster aligned`, this.ctx);
      if (offset < this.clusterSize) throw corrupt(`L2 table offset 0x${offset.toString(16)} overlaps the qcow2 header`, this.ctx);
      if (offset + this.clusterSize > this.file.size) throw corrupt(`L2 table at offset 0x${offset.toString(16)} is beyond the end of the file (${this.file.size} bytes)`, this.ctx);
      this.file.debugEvent('l2_load');
      return this.file.read(offset, this.clusterSize);
    });
  }

  /** Write the L1 entries [first, first+count) of the active table to disk. */
  async writeL1Entries(first: number, count: number): Promise<void> {
    this.file.debugEvent('l1_update');
    await this.writeMeta(this.header.l1TableOffset + first * L1E_SIZE, this.l1.subarray(first * L1E_SIZE, (first + count) * L1E_SIZE));
  }

  /**
   * Drop one reference to the clusters of [offset, offset+length) that a table or list used
   * (QEMU's qcow2_free_clusters), in memory: commit() is the caller's. As in QEMU, a failure is
   * reported and the clusters leak (`qemu-img check -r leaks` repairs that); the operation that
   * freed them goes on. Caller holds `meta`.
   */
  async freeClusters(offset: number, length: number): Promise<void> {
    this.file.debugEvent('cluster_free');
    try {
      await this.refcounts.update(offset, length, -1);
    } catch (e) {
      this.warn(`qcow2_free_clusters failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

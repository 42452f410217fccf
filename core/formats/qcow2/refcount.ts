// qcow2 reference counts (docs/interop/qcow2.txt "Host cluster management"; QEMU
// block/qcow2-refcount.c as inspiration): the refcount table, refcount blocks of every width
// (refcount_order 0..6 = 1..64 bits), cluster allocation, freeing, and growth of the refcount
// table. Every change is written through (dirty byte span of each touched block) when commit()
// runs, or, in the image's write-back mode, kept dirty until writeBack(); callers hold the node's
// metadata mutex. New refcount blocks describe themselves: the
// block for clusters [k*N, (k+1)*N) lives in cluster k*N, which is free by definition when the
// block does not exist yet.

import type { BlockNode } from '../../block/node.ts';
import { BlockError, corrupt, invalidImage, type BlockErrorContext } from '../../errors.ts';
import { decodeReftableEntry, encodeReftableEntry, L1E_SIZE } from './entries.ts';

/** Refcount blocks kept in memory (clean ones are evicted first-in first-out past this). */
const BLOCK_CACHE_MAX = 256;

export interface RefcountIo {
  file: BlockNode;
  /** Write metadata to the file (counted for the ordering barriers). */
  write(offset: number, data: Buffer): Promise<void>;
  /** Make earlier metadata writes durable before later ones (QEMU's cache dependency flush). */
  barrier(): Promise<void>;
  /** Record a moved refcount table in the image header. */
  tableMoved(offset: number, clusters: number): Promise<void>;
  /** Write-back mode: commit() leaves changes dirty for the image's next writeBack(). */
  deferring(): boolean;
  ctx: BlockErrorContext;
}

/** Largest value an entry of `bits` bits holds, capped at what a JS number counts exactly. */
export function maxRefcount(bits: number): number {
  return bits >= 53 ? Number.MAX_SAFE_INTEGER : 2 ** bits - 1;
}

/** Read entry `i` of a refcount block of `bits`-bit entries (qcow2.txt: sub-byte widths are
 *  packed from the least significant bit). */
export function readRefcountEntry(buf: Buffer, i: number, bits: number): number {
  switch (bits) {
    case 8:
      return buf[i]!;
    case 16:
      return buf.readUInt16BE(i * 2);
    case 32:
      return buf.readUInt32BE(i * 4);
    case 64: {
      const v = buf.readBigUInt64BE(i * 8);
      return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
    }
    default: {
      const bit = i * bits;
      return (buf[bit >> 3]! >> (bit & 7)) & ((1 << bits) - 1);
    }
  }
}

export function writeRefcountEntry(buf: Buffer, i: number, bits: number, v: number): void {
  switch (bits) {
    case 8:
      buf[i] = v;
      return;
    case 16:
      buf.writeUInt16BE(v, i * 2);
      return;
    case 32:
      buf.writeUInt32BE(v, i * 4);
      return;
    case 64:
      buf.writeBigUInt64BE(BigInt(v), i * 8);
      return;
    default: {
      const bit = i * bits;
      const mask = ((1 << bits) - 1) << (bit & 7);
      buf[bit >> 3] = (buf[bit >> 3]! & ~mask) | ((v << (bit & 7)) & mask);
    }
  }
}

/** Entries of `unit` bytes in `buf` up to and including the last one that is not all zeros,
 *  found by native comparisons of the tail (a binary search), not a scan of every entry. */
export function nonZeroPrefix(buf: Buffer, unit: number): number {
  const count = Math.floor(buf.length / unit);
  const zeros = Buffer.alloc(Math.min(buf.length, 1 << 16));
  const zeroFrom = (i: number): boolean => {
    for (let p = i * unit; p < count * unit; p += zeros.length) {
      const end = Math.min(count * unit, p + zeros.length);
      if (buf.compare(zeros, 0, end - p, p, end) !== 0) return false;
    }
    return true;
  };
  // Smallest i such that entries [i, count) are all zero.
  let lo = 0;
  let hi = count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (zeroFrom(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export class Refcounts {
  readonly bits: number;
  readonly clusterSize: number;
  readonly clusterBits: number;
  /** Refcount entries per refcount block. */
  readonly perBlock: number;
  readonly #io: RefcountIo;
  /** Offsets of refcount blocks, indexed by block number (in-memory capacity may exceed disk's). */
  #table: number[];
  #tableOffset: number;
  #tableClusters: number;
  /** Entries the on-disk table has room for. */
  #diskCapacity: number;
  readonly #blocks = new Map<number, Buffer>();
  readonly #dirty = new Map<number, [number, number]>();
  /** No free cluster below this index (QEMU's free_cluster_index). */
  #freeHint = 0;
  /** Called when a cluster's refcount drops to zero (the node forgets packing positions). */
  onFree: ((cluster: number) => void) | undefined;

  constructor(io: RefcountIo, clusterBits: number, refcountOrder: number, tableOffset: number, tableClusters: number, tableBuf: Buffer) {
    this.#io = io;
    this.clusterBits = clusterBits;
    this.clusterSize = 2 ** clusterBits;
    this.bits = 1 << refcountOrder;
    this.perBlock = (this.clusterSize * 8) / this.bits;
    this.#tableOffset = tableOffset;
    this.#tableClusters = tableClusters;
    this.#diskCapacity = (tableClusters * this.clusterSize) / L1E_SIZE;
    const n = Math.floor(tableBuf.length / L1E_SIZE);
    this.#table = new Array<number>(Math.max(n, this.#diskCapacity)).fill(0);
    // Only entries before the all-zero tail need decoding (a new image's table has one entry).
    const used = nonZeroPrefix(tableBuf.subarray(0, n * L1E_SIZE), L1E_SIZE);
    for (let i = 0; i < used; i++) this.#table[i] = decodeReftableEntry(tableBuf, i, io.ctx);
  }

  get tableOffset(): number {
    return this.#tableOffset;
  }
  get tableClusters(): number {
    return this.#tableClusters;
  }
  /** Refcount block offsets (0 = none), one per table entry. */
  get table(): readonly number[] {
    return this.#table;
  }
  get max(): number {
    return maxRefcount(this.bits);
  }

  async #block(b: number): Promise<Buffer | undefined> {
    const off = this.#table[b] ?? 0;
    if (!off) return undefined;
    let buf = this.#blocks.get(b);
    if (buf) return buf;
    if (off % this.clusterSize !== 0) throw corrupt(`Refcount block offset 0x${off.toString(16)} (table entry ${b}) is not cluster aligned`, this.#io.ctx);
    if (off + this.clusterSize > this.#io.file.size) throw corrupt(`Refcount block ${b} at offset 0x${off.toString(16)} is beyond the end of the file`, this.#io.ctx);
    this.#io.file.debugEvent('refblock_load');
    buf = await this.#io.file.read(off, this.clusterSize);
    if (this.#blocks.size >= BLOCK_CACHE_MAX) {
      for (const k of this.#blocks.keys()) {
        if (!this.#dirty.has(k)) {
          this.#blocks.delete(k);
          break;
        }
      }
    }
    this.#blocks.set(b, buf);
    return buf;
  }

  /** The stored refcount of host cluster `cluster` (0 where no block covers it). */
  async get(cluster: number): Promise<number> {
    const b = Math.floor(cluster / this.perBlock);
    if (b >= this.#table.length) return 0;
    const buf = await this.#block(b);
    return buf ? readRefcountEntry(buf, cluster % this.perBlock, this.bits) : 0;
  }

  /** The stored refcount exactly, for messages (64-bit entries past 2^53 are capped by get()). */
  async exact(cluster: number): Promise<bigint> {
    const b = Math.floor(cluster / this.perBlock);
    if (b >= this.#table.length) return 0n;
    const buf = await this.#block(b);
    if (!buf) return 0n;
    return this.bits === 64 ? buf.readBigUInt64BE((cluster % this.perBlock) * 8) : BigInt(readRefcountEntry(buf, cluster % this.perBlock, this.bits));
  }

  /**
   * QEMU's qcow2_refcount_area (exact size), for a run of `additional` clusters to follow the
   * used part of the file: at cluster `start` (past every used cluster) the refcount blocks that
   * [0, start + additional) still lacks, then a new refcount table holding every block (the old
   * table freed), all of them counted. Returns the cluster after the new table: where the run
   * may go (allocateAt). The run then grows the file in one piece, as qemu-img lays it out.
   */
  async refcountArea(start: number, additional: number): Promise<number> {
    const cs = this.clusterSize;
    const perTable = cs / L1E_SIZE;
    // qcow2_refcount_metadata_size: the fixed point where blocks and table count themselves too.
    let blocks = 0;
    let tableClusters = 0;
    for (let n = -1, last = -2; n !== last; ) {
      last = n;
      blocks = Math.ceil((start + additional + tableClusters + blocks) / this.perBlock);
      tableClusters = Math.ceil(blocks / perTable);
      n = start + additional + blocks + tableClusters;
    }
    const tableSize = tableClusters * perTable;
    if (tableSize > MAX_REFTABLE_ENTRIES) throw invalidImage('Refcount table would grow past its maximum size (8 MiB)', this.#io.ctx);
    const table = new Array<number>(tableSize).fill(0);
    for (let i = 0; i < Math.min(tableSize, this.#table.length); i++) table[i] = this.#table[i]!;
    const areaIndex = Math.floor(start / this.perBlock);
    let newBlocks = 0;
    for (let i = areaIndex; i < blocks; i++) if (!table[i]) newBlocks++;
    const tableAt = start + newBlocks;
    const end = tableAt + tableClusters;
    while (this.#table.length < tableSize) this.#table.push(0);
    let blockAt = start;
    const created: number[] = [];
    for (let i = areaIndex; i < blocks; i++) {
      if (!table[i]) {
        table[i] = blockAt * cs;
        this.#table[i] = blockAt * cs;
        this.#blocks.set(i, Buffer.alloc(cs));
        created.push(i);
        blockAt++;
      }
      const first = i * this.perBlock;
      if (first < end) {
        const buf = (await this.#block(i))!;
        const from = Math.max(0, start - first);
        const to = Math.min(end - first, this.perBlock);
        for (let j = from; j < to; j++) writeRefcountEntry(buf, j, this.bits, 1);
        this.#markDirtySpan(i, from, to);
      }
    }
    // New blocks whole, then the changed spans of old ones, then the table, then the header.
    for (const i of created) {
      await this.#io.write(this.#table[i]!, this.#blocks.get(i)!);
      this.#dirty.delete(i);
    }
    await this.writeBack();
    await this.#io.barrier();
    const buf = Buffer.alloc(tableClusters * cs);
    table.forEach((o, i) => encodeReftableEntry(buf, i, o));
    await this.#io.write(tableAt * cs, buf);
    await this.#io.barrier();
    const oldOffset = this.#tableOffset;
    const oldClusters = this.#tableClusters;
    this.#tableOffset = tableAt * cs;
    this.#tableClusters = tableClusters;
    this.#diskCapacity = tableSize;
    await this.#io.tableMoved(tableAt * cs, tableClusters);
    await this.#io.barrier();
    await this.update(oldOffset, oldClusters * cs, -1);
    await this.commit();
    return end;
  }

  /** QEMU's qcow2_alloc_clusters_at: take clusters [at, at + n), free and covered by refcount
   *  blocks (refcountArea made sure). */
  async allocateAt(at: number, n: number): Promise<void> {
    await this.#setRange(at, n, 1);
    await this.commit();
  }

  /** The highest cluster below `end` with a non-zero refcount, or -1 (qcow2_get_last_cluster). */
  async lastInUse(end: number): Promise<number> {
    let c = end - 1;
    while (c >= 0 && (await this.get(c)) === 0) c--;
    return c;
  }

  /** How many host clusters below `end` have a non-zero refcount, counting no further than
   *  `stopAt` (QEMU's qcow2_detect_metadata_preallocation loop, a block at a time). */
  async countInUse(end: number, stopAt: number): Promise<number> {
    let count = 0;
    for (let b = 0; b * this.perBlock < end && count < stopAt && b < this.#table.length; b++) {
      const buf = await this.#block(b);
      if (!buf) continue;
      const last = Math.min(this.perBlock, end - b * this.perBlock);
      for (let i = 0; i < last && count < stopAt; i++) if (readRefcountEntry(buf, i, this.bits) !== 0) count++;
    }
    return count;
  }

  #markDirty(b: number, i: number): void {
    this.#markDirtySpan(b, i, i + 1);
  }

  /** Entries [first, end) of block `b` changed. */
  #markDirtySpan(b: number, first: number, end: number): void {
    const lo = Math.floor((first * this.bits) / 8);
    const hi = Math.ceil((end * this.bits) / 8);
    const d = this.#dirty.get(b);
    if (d) {
      d[0] = Math.min(d[0], lo);
      d[1] = Math.max(d[1], hi);
    } else this.#dirty.set(b, [lo, hi]);
  }

  /** A refcount for a cluster no refcount block covers. QEMU's code returns EFBIG where the
   *  refcount table would have to grow past its limit, EAGAIN where a new block is needed
   *  inside it (what qemu-img prints for a failed snapshot creation). */
  #noBlock(cluster: number, b: number, value: number): BlockError {
    return new BlockError('Corrupt', `Cluster ${cluster} has no refcount block to hold refcount ${value} (refcount table entry ${b} is empty)`, this.#io.ctx, { errno: b >= MAX_REFTABLE_ENTRIES ? 'EFBIG' : 'EAGAIN' });
  }

  /** Set the refcount of `cluster` (creating its block if needed); written at commit(). */
  async set(cluster: number, value: number): Promise<void> {
    if (value < 0 || value > this.max) throw corrupt(`Refcount of cluster ${cluster} would be ${value} (allowed: 0..${this.max})`, this.#io.ctx);
    const b = Math.floor(cluster / this.perBlock);
    const buf = b < this.#table.length ? await this.#block(b) : undefined;
    if (!buf) {
      if (value === 0) return;
      throw this.#noBlock(cluster, b, value);
    }
    const i = cluster % this.perBlock;
    writeRefcountEntry(buf, i, this.bits, value);
    this.#markDirty(b, i);
    if (value === 0) {
      if (cluster < this.#freeHint) this.#freeHint = cluster;
      this.onFree?.(cluster);
    }
  }

  /** Set the refcount of clusters [start, start+count) to `value` (> 0), a refcount block at a
   *  time; every block must exist. */
  async #setRange(start: number, count: number, value: number): Promise<void> {
    const per = this.perBlock;
    for (let c = start; c < start + count; ) {
      const b = Math.floor(c / per);
      const buf = b < this.#table.length ? await this.#block(b) : undefined;
      if (!buf) throw this.#noBlock(c, b, value);
      const first = c - b * per;
      const end = Math.min(per, first + start + count - c);
      for (let i = first; i < end; i++) writeRefcountEntry(buf, i, this.bits, value);
      this.#markDirtySpan(b, first, end);
      c += end - first;
    }
  }

  /** Add `delta` to the refcount of every cluster touched by [offset, offset+length). Returns
   *  the clusters whose refcount dropped to zero. */
  async update(offset: number, length: number, delta: number): Promise<number[]> {
    const freed: number[] = [];
    if (length <= 0) return freed;
    const first = Math.floor(offset / this.clusterSize);
    const last = Math.floor((offset + length - 1) / this.clusterSize);
    let c = first;
    try {
      for (; c <= last; c++) {
        const cur = await this.get(c);
        const next = cur + delta;
        if (next < 0) throw corrupt(`Refcount of cluster ${c} would drop below zero (it is ${cur}); the image needs 'qemu-img check -r all'`, this.#io.ctx);
        if (next > this.max) throw new BlockError('Corrupt', `Refcount of cluster ${c} would overflow ${this.bits}-bit refcounts`, this.#io.ctx, { errno: 'EINVAL' });
        await this.set(c, next);
        if (next === 0) freed.push(c);
      }
    } catch (e) {
      // All or nothing, as QEMU's update_refcount undoes its partial update: the clusters done
      // get their old counts back (their blocks are cached, so this reads nothing).
      for (let d = first; d < c; d++) await this.set(d, (await this.get(d)) - delta);
      throw e;
    }
    return freed;
  }

  /** Write every changed refcount span to disk (in write-back mode: later, at writeBack()). */
  async commit(): Promise<void> {
    if (!this.#io.deferring()) await this.writeBack();
  }

  /** Write every changed refcount span to disk now. */
  async writeBack(): Promise<void> {
    for (const [b, [lo, hi]] of this.#dirty) {
      const buf = this.#blocks.get(b)!;
      await this.#io.write(this.#table[b]! + lo, buf.subarray(lo, hi));
      this.#dirty.delete(b);
    }
  }

  /** Refcount blocks with changes not on disk. */
  get dirtyBlocks(): number {
    return this.#dirty.size;
  }

  /**
   * Allocate `n` contiguous free clusters (refcount 1); returns the host byte offset. Refcount
   * blocks the run needs and lacks are placed right after it (inside the same free area), so a
   * run of any length can be found even when every block would otherwise sit in its own range.
   */
  async allocate(n: number): Promise<number> {
    const cs = this.clusterSize;
    this.#io.file.debugEvent('cluster_alloc');
    for (;;) {
      let extra = 0;
      let start = 0;
      let missing: number[] = [];
      for (;;) {
        start = await this.#findFree(n + extra);
        missing = this.#missingBlocks(start, n + extra);
        if (missing.length <= extra) break;
        extra = missing.length;
      }
      const last = missing[missing.length - 1];
      if (last !== undefined && last >= this.#table.length) {
        await this.#growTable(last);
        continue; // the new table took clusters: search again
      }
      missing.forEach((b, i) => {
        this.#table[b] = (start + n + i) * cs;
        this.#blocks.set(b, Buffer.alloc(cs));
      });
      await this.#setRange(start, n + missing.length, 1);
      if (missing.length > 0) {
        // New blocks in full, then (after a barrier) the table entries that point at them.
        for (const b of missing) {
          await this.#io.write(this.#table[b]!, this.#blocks.get(b)!);
          this.#dirty.delete(b);
        }
        await this.#io.barrier();
        for (const b of missing) {
          if (b >= this.#diskCapacity) continue; // a growing table is written whole later
          const e = Buffer.alloc(L1E_SIZE);
          encodeReftableEntry(e, 0, this.#table[b]!);
          await this.#io.write(this.#tableOffset + b * L1E_SIZE, e);
        }
        await this.#io.barrier();
      }
      await this.commit();
      this.#freeHint = start + n + missing.length;
      return start * cs;
    }
  }

  /** Blocks without a refcount block among those covering clusters [start, start+n). */
  #missingBlocks(start: number, n: number): number[] {
    const out: number[] = [];
    const last = Math.floor((start + n - 1) / this.perBlock);
    for (let b = Math.floor(start / this.perBlock); b <= last; b++) if (b >= this.#table.length || !this.#table[b]) out.push(b);
    return out;
  }

  async #findFree(n: number): Promise<number> {
    let start = this.#freeHint;
    let run = 0;
    const per = this.perBlock;
    for (let c = this.#freeHint; ; ) {
      const b = Math.floor(c / per);
      const blockEnd = (b + 1) * per;
      const buf = b < this.#table.length ? await this.#block(b) : undefined;
      if (!buf) {
        // No block: this and every later cluster of the block are free.
        if (run === 0) start = c;
        if (run + (blockEnd - c) >= n) return start;
        run += blockEnd - c;
        c = blockEnd;
        continue;
      }
      // One block at a time, without an await per entry.
      for (; c < blockEnd; c++) {
        if (readRefcountEntry(buf, c - b * per, this.bits) === 0) {
          if (run === 0) start = c;
          if (++run >= n) return start;
        } else run = 0;
      }
    }
  }

  async #growTable(b: number): Promise<void> {
    const entriesPerCluster = this.clusterSize / L1E_SIZE;
    const newClusters = Math.max(this.#tableClusters * 2, Math.ceil((b + 1) / entriesPerCluster) + 1);
    const newCapacity = newClusters * entriesPerCluster;
    if (newCapacity > MAX_REFTABLE_ENTRIES) throw invalidImage('Refcount table would grow past its maximum size (8 MiB)', this.#io.ctx);
    while (this.#table.length < newCapacity) this.#table.push(0);
    const offset = await this.allocate(newClusters);
    if (Math.floor((offset / this.clusterSize + newClusters - 1) / this.perBlock) >= newCapacity) {
      throw corrupt('Refcount table growth did not converge', this.#io.ctx);
    }
    const buf = Buffer.alloc(newClusters * this.clusterSize);
    this.#table.forEach((o, i) => encodeReftableEntry(buf, i, o));
    await this.#io.write(offset, buf);
    await this.#io.barrier();
    const oldOffset = this.#tableOffset;
    const oldClusters = this.#tableClusters;
    this.#tableOffset = offset;
    this.#tableClusters = newClusters;
    this.#diskCapacity = newCapacity;
    await this.#io.tableMoved(offset, newClusters);
    await this.#io.barrier();
    await this.update(oldOffset, oldClusters * this.clusterSize, -1);
    await this.commit();
  }

  /** Replace the whole table (check -r all rebuild): used by repair only. */
  async rewriteTableEntry(b: number, offset: number): Promise<void> {
    this.#table[b] = offset;
    this.#blocks.delete(b);
    if (b < this.#diskCapacity) {
      const e = Buffer.alloc(L1E_SIZE);
      encodeReftableEntry(e, 0, offset);
      await this.#io.write(this.#tableOffset + b * L1E_SIZE, e);
    }
  }

  /** Forget cached blocks (after an external change such as a repair). */
  invalidate(): void {
    this.#blocks.clear();
    this.#dirty.clear();
    this.#freeHint = 0;
  }

  resetFreeHint(): void {
    this.#freeHint = 0;
  }
}

/** QEMU's cap on the refcount table (QCOW_MAX_REFTABLE_SIZE = 8 MiB of entries). */
export const MAX_REFTABLE_BYTES = 8 << 20;
const MAX_REFTABLE_ENTRIES = MAX_REFTABLE_BYTES / L1E_SIZE;

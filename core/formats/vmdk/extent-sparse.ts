// Sparse extents (VMware Virtual Disk Format 1.1, "Hosted Sparse Extents": grain directory ->
// grain tables -> grains; also VMFS sparse "COWD" extents and stream-optimized compressed
// extents). Lookups go through a bounded grain-table cache; allocation appends grains at the end
// of the extent file, writes the grain first, then its grain-table entry in the primary and the
// redundant table (a missing grain table is written before the directory entry naming it).
// Concurrency: allocation of one grain is serialised by a range lock on its index, grain-table
// creation by a mutex; the end-of-file cursor is advanced synchronously.

import type { BlockNode } from '../../block/node.ts';
import type { WorkerPool } from '../../workers/pool.ts';
import { BlockError, corrupt, invalidArgument, invalidImage, unsupported } from '../../errors.ts';
import { Mutex, RangeLock } from '../../util/range-lock.ts';
import type { Extent, GrainState } from './extent.ts';
import {
  decodeCowdHeader,
  decodeSparseHeader,
  GD_AT_END,
  MAX_EXTENT_FILE_SECTORS,
  SECTOR,
  SPARSE_HEADER_SIZE,
  validateCowdHeader,
  validateSparseHeader,
  VMDK3_MAGIC,
  VMDK4_MAGIC,
  type SparseHeader,
  type SparseLayout,
} from './sparse-header.ts';
import { encodeCompressedGrain, readCompressedGrain, readFooterHeader } from './stream.ts';

/** GTE value of a zeroed grain when the zeroed-grain flag is set. */
export const GTE_ZEROED = 1;
/** Grain tables kept in memory per extent (a 512-entry table is 2 KiB: 8 MiB in all). */
export const MAX_CACHED_GTS = 4096;
/** Inflated grains kept per extent, so small sequential reads inflate each grain once. */
export const MAX_CACHED_GRAINS = 8;

interface CachedGT {
  table: Promise<Uint32Array>;
  pins: number;
}

export interface SparseOpenOptions {
  workers: WorkerPool;
  writable: boolean;
}

/** Little-endian u32 array from disk bytes. */
function readU32Array(buf: Buffer, count: number): Uint32Array {
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = buf.readUInt32LE(i * 4);
  return out;
}

export class SparseExtent implements Extent {
  readonly flat = false;
  readonly compressed: boolean;
  readonly grainBytes: number;
  readonly length: number;
  readonly layout: SparseLayout;
  /** The header as decoded (the footer's when the stream keeps it at the end). */
  readonly header: SparseHeader | undefined;
  /** True when the grain directory lives at the end (stream with footer): no writes. */
  readonly gdAtEnd: boolean;
  readonly #gd: Uint32Array;
  readonly #rgd: Uint32Array | undefined;
  readonly #workers: WorkerPool;
  readonly #gtCache = new Map<number, CachedGT>();
  /** Inflated compressed grains by host offset (compressed grains are never rewritten). */
  readonly #grainCache = new Map<number, Promise<Buffer>>();
  readonly #grainLock = new RangeLock();
  readonly #meta = new Mutex();
  #nextSector: number;

  private constructor(
    readonly file: BlockNode,
    readonly displayName: string,
    readonly type: string,
    readonly start: number,
    layout: SparseLayout,
    header: SparseHeader | undefined,
    gdAtEnd: boolean,
    gd: Uint32Array,
    rgd: Uint32Array | undefined,
    workers: WorkerPool,
  ) {
    this.layout = layout;
    this.header = header;
    this.gdAtEnd = gdAtEnd;
    this.compressed = layout.compressed;
    this.grainBytes = layout.grainSectors * SECTOR;
    this.length = layout.capacitySectors * SECTOR;
    this.#gd = gd;
    this.#rgd = rgd;
    this.#workers = workers;
    const fileSectors = Math.ceil(file.size / SECTOR);
    this.#nextSector = layout.compressed ? fileSectors : Math.ceil(fileSectors / layout.grainSectors) * layout.grainSectors;
  }

  /** Open the sparse extent stored in `file` (KDMV or COWD header at offset 0). */
  static async open(file: BlockNode, displayName: string, type: string, start: number, o: SparseOpenOptions): Promise<SparseExtent> {
    const ctx = { path: displayName };
    if (file.size < SPARSE_HEADER_SIZE) throw invalidImage('File is too small, not a valid image', ctx);
    let head = await file.read(0, SPARSE_HEADER_SIZE);
    const magic = head.readUInt32BE(0);
    let layout: SparseLayout;
    let header: SparseHeader | undefined;
    let gdAtEnd = false;
    if (magic === VMDK4_MAGIC) {
      header = decodeSparseHeader(head);
      if (header.capacity === 0n && header.descriptorOffset !== 0n) {
        throw unsupported('A VMDK sparse extent that holds only a descriptor cannot be an extent of another descriptor', ctx);
      }
      if (header.gdOffset === GD_AT_END) {
        // The footer holds the real header (QEMU: "the footer takes precedence").
        head = await readFooterHeader(file);
        header = decodeSparseHeader(head);
        gdAtEnd = true;
        if (header.gdOffset === GD_AT_END) throw invalidImage('Invalid footer: its grain directory offset is also GD_AT_END', ctx);
      }
      layout = validateSparseHeader(header, file.size, o.writable, ctx);
    } else if (magic === VMDK3_MAGIC) {
      layout = validateCowdHeader(decodeCowdHeader(head), file.size, ctx);
    } else {
      throw invalidImage('Image not in VMDK format', ctx);
    }
    const gdBytes = layout.gdEntries * 4;
    const gd = readU32Array(await file.read(layout.gdOffset, gdBytes), layout.gdEntries);
    const rgd = layout.rgdOffset ? readU32Array(await file.read(layout.rgdOffset, gdBytes), layout.gdEntries) : undefined;
    return new SparseExtent(file, displayName, type, start, layout, header, gdAtEnd, gd, rgd, o.workers);
  }

  get zeroGrain(): boolean {
    return this.layout.zeroGrain;
  }

  #indices(offset: number): { l1: number; l2: number; sector: number } {
    const sector = Math.floor(offset / SECTOR);
    const l1 = Math.floor(sector / (this.layout.grainSectors * this.layout.gtEntries));
    if (l1 >= this.layout.gdEntries) {
      throw invalidImage(`Grain directory has no entry for sector ${sector} (${this.layout.gdEntries} entries)`, { path: this.displayName });
    }
    const l2 = Math.floor(sector / this.layout.grainSectors) % this.layout.gtEntries;
    return { l1, l2, sector };
  }

  /** Load (or find in the cache) the grain table at sector `gtSector`. */
  #loadGT(gtSector: number): CachedGT {
    const hit = this.#gtCache.get(gtSector);
    if (hit) {
      this.#gtCache.delete(gtSector);
      this.#gtCache.set(gtSector, hit);
      return hit;
    }
    const off = gtSector * SECTOR;
    const bytes = this.layout.gtEntries * 4;
    const entry: CachedGT = {
      pins: 0,
      table: (async () => {
        if (off + bytes > this.file.size) {
          throw invalidImage(`Grain table at offset ${off} (${bytes} bytes) is past the end of the file (${this.file.size} bytes)`, { path: this.displayName });
        }
        return readU32Array(await this.file.read(off, bytes), this.layout.gtEntries);
      })(),
    };
    entry.table.catch(() => {
      if (this.#gtCache.get(gtSector) === entry) this.#gtCache.delete(gtSector);
    });
    this.#gtCache.set(gtSector, entry);
    if (this.#gtCache.size > MAX_CACHED_GTS) {
      for (const [k, v] of this.#gtCache) {
        if (v.pins === 0 && v !== entry) {
          this.#gtCache.delete(k);
          break;
        }
      }
    }
    return entry;
  }

  async lookup(offset: number): Promise<GrainState> {
    const { l1, l2 } = this.#indices(offset);
    const gtSector = this.#gd[l1]!;
    if (gtSector === 0) return { kind: 'unalloc' };
    const gt = await this.#loadGT(gtSector).table;
    const e = gt[l2]!;
    if (e === 0) return { kind: 'unalloc' };
    if (this.layout.zeroGrain && e === GTE_ZEROED) return { kind: 'zero' };
    return { kind: 'data', host: e * SECTOR, compressed: this.compressed };
  }

  async lookupRun(offset: number, maxBytes: number): Promise<{ state: GrainState; length: number }> {
    const state = await this.lookup(offset);
    const gb = this.grainBytes;
    const gtSpan = this.layout.gtEntries * gb;
    let length = Math.min(maxBytes, gb - (offset % gb));
    if (state.kind === 'data' && state.compressed) return { state, length };
    const { l1, l2 } = this.#indices(offset);
    const gtSector = this.#gd[l1]!;
    // No grain table: the rest of its span is unallocated.
    if (gtSector === 0) return { state, length: Math.min(maxBytes, gtSpan - (offset % gtSpan)) };
    const gt = await this.#loadGT(gtSector).table;
    for (let i = l2 + 1; length < maxBytes && i < this.layout.gtEntries; i++) {
      const e = gt[i]!;
      const kind = e === 0 ? 'unalloc' : this.layout.zeroGrain && e === GTE_ZEROED ? 'zero' : 'data';
      if (kind !== state.kind) break;
      if (state.kind === 'data' && e * SECTOR !== state.host + (i - l2) * gb) break;
      length = Math.min(maxBytes, length + gb);
    }
    return { state, length };
  }

  async readData(state: GrainState & { kind: 'data' }, inGrain: number, length: number): Promise<Buffer> {
    if (!state.compressed) {
      this.file.debugEvent('read_aio');
      return this.file.read(state.host + inGrain, length);
    }
    this.file.debugEvent('read_compressed');
    let grain = this.#grainCache.get(state.host);
    if (!grain) {
      grain = readCompressedGrain(this.file, this.#workers, state.host, this.grainBytes, this.layout.markers);
      this.#grainCache.set(state.host, grain);
      grain.catch(() => this.#grainCache.delete(state.host));
      if (this.#grainCache.size > MAX_CACHED_GRAINS) this.#grainCache.delete(this.#grainCache.keys().next().value!);
    }
    return Buffer.from((await grain).subarray(inGrain, inGrain + length));
  }

  /** A grain that overlaps the header or metadata area would let a write destroy them. */
  #checkGrainHost(host: number): void {
    const metadataEnd = Math.max(this.layout.overHeadSectors * SECTOR, SECTOR);
    if (host < metadataEnd) {
      throw corrupt(`Grain at host offset ${host} overlaps the VMDK metadata (which ends at ${metadataEnd}); refusing to write there`, { path: this.displayName });
    }
  }

  #checkWritable(): void {
    if (this.gdAtEnd) throw unsupported('Writing to a stream-optimized VMDK whose grain directory is in the footer is not supported', { path: this.displayName });
  }

  /** Reserve `sectors` at the end of the extent file; returns the byte offset. */
  #reserve(sectors: number): number {
    if (this.#nextSector + sectors > MAX_EXTENT_FILE_SECTORS) {
      throw new BlockError('Io', `VMDK extent '${this.displayName}' is full (a sparse extent file addresses at most 2 TiB)`, { path: this.displayName });
    }
    const s = this.#nextSector;
    this.#nextSector += sectors;
    return s * SECTOR;
  }

  /** Make sure grain directory entry `l1` names a grain table (GT written before the GD entry). */
  async #ensureGT(l1: number): Promise<void> {
    if (this.#gd[l1] !== 0) return;
    await this.#meta.run(async () => {
      if (this.#gd[l1] !== 0) return;
      const gtBytes = this.layout.gtEntries * 4;
      const span = Math.ceil(Math.ceil(gtBytes / SECTOR) / this.layout.grainSectors) * this.layout.grainSectors;
      const zeros = Buffer.alloc(span * SECTOR);
      const primary = this.#reserve(span);
      await this.file.write(primary, zeros);
      let redundant = 0;
      if (this.#rgd) {
        redundant = this.#reserve(span);
        await this.file.write(redundant, zeros);
      }
      const entry = Buffer.alloc(4);
      entry.writeUInt32LE(primary / SECTOR);
      await this.file.write(this.layout.gdOffset + l1 * 4, entry);
      if (this.#rgd) {
        entry.writeUInt32LE(redundant / SECTOR);
        await this.file.write(this.layout.rgdOffset + l1 * 4, entry);
        this.#rgd[l1] = redundant / SECTOR;
      }
      this.#gd[l1] = primary / SECTOR;
    });
  }

  /** Set grain table entry (l1, l2) in memory, the primary table and the redundant one. */
  async #setGTE(l1: number, l2: number, value: number): Promise<void> {
    const gtSector = this.#gd[l1]!;
    const cached = this.#loadGT(gtSector);
    cached.pins++;
    try {
      const gt = await cached.table;
      gt[l2] = value;
      const entry = Buffer.alloc(4);
      entry.writeUInt32LE(value);
      await this.file.write(gtSector * SECTOR + l2 * 4, entry);
      const rgtSector = this.#rgd?.[l1] ?? 0;
      if (rgtSector !== 0) {
        const off = rgtSector * SECTOR + l2 * 4;
        if (off + 4 > this.file.size) throw invalidImage(`Redundant grain table at offset ${rgtSector * SECTOR} is past the end of the file`, { path: this.displayName });
        await this.file.write(off, entry);
      }
    } finally {
      cached.pins--;
    }
  }

  /**
   * Write `data` at extent offset `offset` (inside one grain). `base` supplies the grain's
   * previous content (backing data or zeros) when a partial write allocates a new grain.
   */
  async write(offset: number, data: Buffer, base: (grainStart: number, zeroed: boolean) => Promise<Buffer>): Promise<void> {
    this.#checkWritable();
    const grainStart = offset - (offset % this.grainBytes);
    const inGrain = offset - grainStart;
    const st = await this.lookup(offset);
    if (st.kind === 'data') {
      if (st.compressed) throw new BlockError('Io', 'Could not write to allocated cluster for streamOptimized', { path: this.displayName, offset }, { code: 'Worded' });
      this.#checkGrainHost(st.host);
      this.file.debugEvent('write_aio');
      await this.file.write(st.host + inGrain, data);
      return;
    }
    if (this.compressed) {
      const whole = inGrain === 0 && (data.length === this.grainBytes || grainStart + data.length === this.length);
      if (!whole) throw invalidArgument('A stream-optimized VMDK takes only whole-grain writes to unallocated grains', { path: this.displayName, offset });
      await this.writeCompressed(grainStart, data);
      return;
    }
    const index = grainStart / this.grainBytes;
    const release = await this.#grainLock.acquire(index, index + 1);
    try {
      const again = await this.lookup(offset);
      if (again.kind === 'data') {
        this.#checkGrainHost(again.host);
        this.file.debugEvent('write_aio');
        await this.file.write(again.host + inGrain, data);
        return;
      }
      const { l1, l2 } = this.#indices(offset);
      await this.#ensureGT(l1);
      let grain: Buffer;
      if (inGrain === 0 && data.length === this.grainBytes) grain = data;
      else {
        grain = await base(grainStart, again.kind === 'zero');
        data.copy(grain, inGrain);
      }
      const host = this.#reserve(this.layout.grainSectors);
      this.file.debugEvent('write_aio');
      await this.file.write(host, grain);
      this.file.debugEvent('l2_update');
      await this.#setGTE(l1, l2, host / SECTOR);
    } finally {
      release();
    }
  }

  /** Mark the whole grain at `grainStart` as zeroed (zeroed-grain GTE). */
  async setZeroed(grainStart: number): Promise<void> {
    this.#checkWritable();
    const index = grainStart / this.grainBytes;
    const release = await this.#grainLock.acquire(index, index + 1);
    try {
      const st = await this.lookup(grainStart);
      if (st.kind === 'zero') return;
      const { l1, l2 } = this.#indices(grainStart);
      await this.#ensureGT(l1);
      await this.#setGTE(l1, l2, GTE_ZEROED);
    } finally {
      release();
    }
  }

  /** Compressed write of one whole grain (stream-optimized extents). */
  async writeCompressed(grainStart: number, data: Buffer): Promise<void> {
    this.#checkWritable();
    if (!this.compressed || !this.layout.markers) throw unsupported('Compressed writes need a stream-optimized extent', { path: this.displayName });
    const index = grainStart / this.grainBytes;
    const release = await this.#grainLock.acquire(index, index + 1);
    try {
      const st = await this.lookup(grainStart);
      if (st.kind === 'data') throw new BlockError('Io', 'Could not write to allocated cluster for streamOptimized', { path: this.displayName, offset: grainStart }, { code: 'Worded' });
      const { l1, l2 } = this.#indices(grainStart);
      await this.#ensureGT(l1);
      const encoded = await encodeCompressedGrain(this.#workers, (this.start + grainStart) / SECTOR, data);
      const host = this.#reserve(encoded.length / SECTOR);
      await this.file.write(host, encoded);
      await this.#setGTE(l1, l2, host / SECTOR);
    } finally {
      release();
    }
  }

  /** qemu-img check for this extent (QEMU vmdk_co_check): the first problem found, if any. */
  async check(): Promise<string | undefined> {
    const { grainSectors, gtEntries, gdEntries, capacitySectors, zeroGrain } = this.layout;
    const startSector = this.start / SECTOR;
    const fileSize = this.file.size;
    for (let l1 = 0; l1 < gdEntries; l1++) {
      const gtSector = this.#gd[l1]!;
      const firstSector = l1 * gtEntries * grainSectors;
      if (gtSector === 0) continue;
      let gt: Uint32Array;
      try {
        gt = await this.#loadGT(gtSector).table;
      } catch {
        return `ERROR: could not get cluster_offset for sector ${startSector + firstSector}`;
      }
      for (let l2 = 0; l2 < gtEntries; l2++) {
        const sector = firstSector + l2 * grainSectors;
        if (sector >= capacitySectors) break;
        const e = gt[l2]!;
        if (e === 0 || (zeroGrain && e === GTE_ZEROED)) continue;
        if (e * SECTOR >= fileSize) return `ERROR: cluster offset for sector ${startSector + sector} points after EOF`;
      }
    }
    return undefined;
  }
}

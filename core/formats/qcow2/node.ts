// The open qcow2 node (NodeImpl): the guest data path over the cluster map (docs/interop/
// qcow2.txt "Cluster mapping", "Extended L2 Entries", "Compressed Clusters Descriptor"):
// reads (unallocated -> backing, zero -> zeros, compressed -> decompress), allocating writes with
// copy-on-write of partial clusters, write-zeroes, discard, block status, resize, compressed
// writes, plus info/backing/snapshots/check/amend/close glue.

import { CHECK_ERROR_REPORT, type BlockStatus, type CheckResult, type DriverInfo, type NodeImpl, type OpenContext, type RepairMode, type Reservation, type SnapshotCapability, type TruncateOptions, type ZeroFlags, type AmendContext } from '../../block/types.ts';
import type { BlockNode } from '../../block/node.ts';
import type { OptionValues } from '../../block/options-schema.ts';
import { BlockError, corrupt, invalidArgument, unsupported } from '../../errors.ts';
import {
  AUTOCLEAR_BITMAPS,
  AUTOCLEAR_KNOWN,
  COMPAT_LAZY_REFCOUNTS,
  INCOMPAT_CORRUPT,
  INCOMPAT_DIRTY,
  MAX_BACKING_NAME,
} from './header.ts';
import { ALL_SUBCLUSTERS, SUBCLUSTERS, contiguousOwnedRun, decodeL1, encodeCompressedL2, encodeL2, L2_COMPRESSED, L2_DATA, L2_UNALLOCATED, L2_ZERO, L2_ZERO_ALLOC, L1E_SIZE, scanStandardL2, type L2Entry } from './entries.ts';
import type { Qcow2Image } from './image.ts';
import { clustersLeftInTable, growL1, l2ForWrite, lazyRun, lookup, lookupRun, position, UNALLOCATED, updateEntries } from './cluster-map.ts';
import { compressClusters, decompressCluster } from './compress.ts';
import { l1EntriesFor } from './validate.ts';
import { checkImage } from './check.ts';
import { Qcow2Snapshots, readSnapshotTableForCheck, writeSnapshotTable } from './snapshots.ts';
import { SNAPSHOT_EXTRA_V3_MIN } from './snapshots-table.ts';
import { amendImage } from './amend.ts';
import { canEmptyCompletely, makeCompletelyEmpty } from './make-empty.ts';
import { bitmapInfo, Qcow2Bitmaps } from './bitmaps.ts';
import { mapUnallocated, preallocate } from './prealloc.ts';
import { refineWithFile } from '../../block/host-status.ts';
import { amendCrypto, closeCrypto, COMPRESSION_WITH_ENCRYPTION, CRYPT_SECTOR, cryptoOf, decryptData, encryptData, encryptInfo } from './encryption.ts';

/** QEMU's BDRV_SECTOR_SIZE: image sizes are whole sectors. */
const SECTOR = 512;

/** A run of guest bytes with one source, built while walking clusters. */
interface Piece {
  kind: 'data' | 'backing' | 'zero' | 'compressed';
  guest: number;
  length: number;
  host: number;
  entry?: L2Entry;
}

export class Qcow2Node implements NodeImpl {
  readonly img: Qcow2Image;
  readonly #ctx: OpenContext;
  readonly snapshots: SnapshotCapability;
  /** Persistent dirty bitmaps (bitmaps.ts): loaded before the first change of guest data, told
   *  of every change, stored at close. */
  readonly bitmaps: Qcow2Bitmaps;
  /** Next byte for packing compressed clusters (QEMU's free_byte_offset); 0 = none. */
  #freeByte = 0;
  #dirtyMarked = false;
  #autoclearDone = false;
  #closed = false;
  /** Metadata on disk no longer matches memory after a failed whole-image change (QEMU ejects
   *  the node, bs->drv = NULL): nothing is read or written any more, not even at close, and the
   *  dirty bit left on disk makes the next open repair the image. */
  #ejected = false;

  constructor(img: Qcow2Image, ctx: OpenContext) {
    this.img = img;
    this.#ctx = ctx;
    this.snapshots = new Qcow2Snapshots(this);
    this.bitmaps = new Qcow2Bitmaps(img, (fn) => this.exclusive(fn));
    if (!img.readOnly) {
      img.onClusterFreed = (cluster) => {
        if (this.#freeByte && Math.floor(this.#freeByte / img.clusterSize) === cluster) this.#freeByte = 0;
      };
    }
  }

  get size(): number {
    return this.img.size;
  }
  get clusterSize(): number {
    return this.img.clusterSize;
  }
  /** Encrypted images work on whole 512-byte sectors (encryption.ts). */
  get alignment(): number {
    return cryptoOf(this.img) ? CRYPT_SECTOR : 1;
  }
  get backingFile(): { filename: string; format?: string } | undefined {
    const h = this.img.header;
    if (h.backingFile === undefined || h.backingFile === '') return undefined;
    return h.backingFormat ? { filename: h.backingFile, format: h.backingFormat } : { filename: h.backingFile };
  }

  /** Services of the opening context (backing reads) for views and helpers. */
  get openContext(): OpenContext {
    return this.#ctx;
  }

  /** A read-only node over another L1 table (a snapshot), sharing caches with this one. */
  viewOf(l1: Buffer, l1Size: number, size: number): NodeImpl {
    const node = new Qcow2Node(this.img.snapshotView(l1, l1Size, size), this.#ctx);
    return {
      size,
      clusterSize: this.img.clusterSize,
      read: (o, n) => node.read(o, n),
      blockStatus: (o, n) => node.blockStatus(o, n),
      close: async () => {},
    };
  }

  /** Public form of the first-write preparation (dirty bit, autoclear), for snapshot ops. */
  prepareMetadataChange(): Promise<void> {
    return this.#beforeWrite();
  }

  #hasBacking(): boolean {
    return this.#ctx.backing() !== undefined;
  }

  // ---------------------------------------------------------------- reads

  /** Split [offset, offset+length) into pieces by source, merging neighbours. */
  async #pieces(offset: number, length: number): Promise<Piece[]> {
    const img = this.img;
    const cs = img.clusterSize;
    const sub = img.subclusterSize;
    const out: Piece[] = [];
    const push = (p: Piece) => {
      const last = out[out.length - 1];
      if (last && last.kind === p.kind && p.kind !== 'compressed' && last.guest + last.length === p.guest && (p.kind !== 'data' || last.host + last.length === p.host)) {
        last.length += p.length;
      } else out.push(p);
    };
    const end = offset + length;
    let pos = offset;
    let entries: L2Entry[] = [];
    let next = 0;
    const external = img.externalData;
    while (pos < end) {
      const inCl = pos % cs;
      const n = Math.min(cs - inCl, end - pos);
      if (next === entries.length) {
        // The entries of the rest of the request within this L2 table, in one fetch.
        const cluster = Math.floor(pos / cs);
        entries = await lookupRun(img, cluster, Math.min(clustersLeftInTable(img, cluster), Math.floor((end - 1) / cs) - cluster + 1));
        next = 0;
      }
      const e = entries[next++]!;
      if (e.type === 'compressed') {
        if (external) throw corrupt(`Compressed cluster at guest offset ${pos - inCl} in an image with an external data file`, img.ctx);
        push({ kind: 'compressed', guest: pos, length: n, host: inCl, entry: e });
      } else if (!img.geo.extendedL2) {
        if (e.type === 'normal') {
          this.#checkHost(e.offset, pos - inCl, external);
          push({ kind: 'data', guest: pos, length: n, host: e.offset + inCl });
        } else if (e.type === 'zero-plain' || e.type === 'zero-alloc') push({ kind: 'zero', guest: pos, length: n, host: 0 });
        else push({ kind: 'backing', guest: pos, length: n, host: 0 });
      } else {
        // Extended L2: status per subcluster.
        if (e.allocMask & e.zeroMask) throw corrupt(`Guest cluster at ${pos - inCl}: subcluster bitmap marks subclusters both allocated and zero (0x${e.zeroMask.toString(16)}/0x${e.allocMask.toString(16)})`, img.ctx);
        if (e.type === 'unallocated' && e.allocMask) throw corrupt(`Guest cluster at ${pos - inCl} is unallocated but its subcluster bitmap marks subclusters allocated`, img.ctx);
        if (e.type === 'normal') this.#checkHost(e.offset, pos - inCl, external);
        let p = pos;
        while (p < pos + n) {
          const within = p % cs;
          const sc = Math.floor(within / sub);
          const m = Math.min(sub - (within % sub), pos + n - p);
          const bit = 1 << sc;
          if (e.allocMask & bit) push({ kind: 'data', guest: p, length: m, host: e.offset + within });
          else if (e.zeroMask & bit) push({ kind: 'zero', guest: p, length: m, host: 0 });
          else push({ kind: 'backing', guest: p, length: m, host: 0 });
          p += m;
        }
      }
      pos += n;
    }
    return out;
  }

  /** Refuse a data cluster offset no valid image has (`external`: img.externalData, which callers
   *  walking many clusters look up once). */
  #checkHost(host: number, guest: number, external = this.img.externalData): void {
    const img = this.img;
    const cs = img.clusterSize;
    if (host % cs !== 0) throw corrupt(`Data cluster for guest offset ${guest} is not properly aligned (host offset 0x${host.toString(16)}); L2 entry corrupted`, img.ctx);
    if (external) return;
    if (host >= img.dataFile.size && host >= img.reservedEnd) {
      throw corrupt(`L2 entry for guest offset ${guest} points past the end of the file (host offset 0x${host.toString(16)}, file size ${img.dataFile.size})`, img.ctx);
    }
    if (host < cs) throw corrupt(`L2 entry for guest offset ${guest} points into the qcow2 header`, img.ctx);
  }

  /** The data file, when guest data [.., +length) at host `host` (the start of a contiguous run
   *  whose first cluster starts at `host - within`) passes #checkHost for every cluster and lies
   *  inside the file: block status then names it (BlockStatus.hostNode). */
  #verbatimHost(host: number, within: number, length: number): BlockNode | undefined {
    const img = this.img;
    const clusterStart = host - within;
    if (cryptoOf(img) || clusterStart % img.clusterSize !== 0 || host + length > img.dataFile.size) return undefined;
    if (!img.externalData && clusterStart < img.clusterSize) return undefined;
    return img.dataFile;
  }

  async #readCompressed(e: L2Entry, guestCluster: number): Promise<Buffer> {
    const img = this.img;
    const cs = img.clusterSize;
    const file = img.file;
    if (e.compressedOffset >= file.size || e.compressedOffset < cs) {
      throw corrupt(`Compressed cluster for guest offset ${guestCluster} at host offset 0x${e.compressedOffset.toString(16)} lies outside the image (file size ${file.size})`, img.ctx);
    }
    // The descriptor may round past the end of the file; what lies beyond reads as nothing.
    const len = Math.min(e.compressedSize, file.size - e.compressedOffset);
    const data = await file.read(e.compressedOffset, len);
    return decompressCluster(img.workers, img.header.compressionType, data, cs, { ...img.ctx, offset: e.compressedOffset });
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    await this.readInto(offset, length, out);
    return out;
  }

  /** QEMU's answer for an ejected node (ENOMEDIUM). */
  #checkInserted(): void {
    if (this.#ejected) throw new BlockError('Io', 'No medium found', this.img.ctx);
  }

  async readInto(offset: number, length: number, out: Buffer): Promise<void> {
    this.#checkInserted();
    const pieces = await this.#pieces(offset, length);
    const crypto = cryptoOf(this.img);
    await Promise.all(
      pieces.map(async (p) => {
        const at = p.guest - offset;
        switch (p.kind) {
          case 'zero':
            out.fill(0, at, at + p.length);
            return;
          case 'data': {
            const into = out.subarray(at, at + p.length);
            this.img.file.debugEvent('read_aio');
            await this.img.dataFile.readInto(p.host, into);
            if (crypto) (await decryptData(crypto, p.guest, p.host, into)).copy(into);
            return;
          }
          case 'backing':
            if (this.#hasBacking()) this.img.file.debugEvent('read_backing_aio');
            (await this.#ctx.readBacking(p.guest, p.length)).copy(out, at);
            return;
          case 'compressed': {
            this.img.file.debugEvent('read_compressed');
            const c = await this.#readCompressed(p.entry!, p.guest - p.host);
            c.copy(out, at, p.host, p.host + p.length);
          }
        }
      }),
    );
  }

  // ---------------------------------------------------------------- writes

  /** Before the first change: set the dirty bit (lazy refcounts), drop autoclear bits of
   *  features Platter does not know (their data is not maintained), and load the persistent
   *  bitmaps, which marks them in use on disk until close stores them (bitmaps.ts). */
  async #beforeWrite(): Promise<void> {
    this.#checkInserted();
    if (this.#dirtyMarked && this.#autoclearDone) return;
    await this.img.meta.run(async () => {
      const h = this.img.header;
      let change = false;
      if (!this.#autoclearDone) {
        const keep = h.autoclear & AUTOCLEAR_KNOWN;
        if (keep !== h.autoclear) {
          h.autoclear = keep;
          change = true;
        }
      }
      if (!this.#dirtyMarked) {
        if (this.img.lazyRefcounts && h.version >= 3 && !(h.incompatible & INCOMPAT_DIRTY)) {
          h.incompatible |= INCOMPAT_DIRTY;
          change = true;
        }
        this.#dirtyMarked = true;
      }
      if (change) await this.img.writeHeader();
      if (!this.#autoclearDone) {
        await this.img.writeThrough(() => this.bitmaps.loadLocked());
        this.#autoclearDone = true;
      }
    });
  }

  /** Guest bytes [offset, offset+length) are about to change: prepare the image and record the
   *  change in the enabled persistent bitmaps first (QEMU marks them as a write completes;
   *  marking before means a bitmap is never behind the data, even if the write fails). */
  async #changing(offset: number, length: number): Promise<void> {
    await this.#beforeWrite();
    this.bitmaps.markDirty(offset, length);
  }

  /** Lock the whole image (snapshot ops, resize, amend, check), with metadata written through. */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.img.writes.acquire(0, Number.MAX_SAFE_INTEGER);
    try {
      return await this.img.meta.run(() => this.img.writeThrough(fn));
    } finally {
      release();
    }
  }

  async write(offset: number, data: Buffer): Promise<void> {
    await this.#changing(offset, data.length);
    const img = this.img;
    const cs = img.clusterSize;
    const lockStart = Math.floor(offset / cs) * cs;
    const lockEnd = Math.ceil((offset + data.length) / cs) * cs;
    const release = await img.writes.acquire(lockStart, lockEnd);
    try {
      await this.#writeLocked(offset, data);
    } finally {
      release();
    }
  }

  async #writeLocked(offset: number, data: Buffer): Promise<void> {
    const img = this.img;
    const cs = img.clusterSize;
    let pos = offset;
    const end = offset + data.length;
    while (pos < end) {
      const { cluster, l2Index } = position(img, pos);
      const tableEnd = (cluster - l2Index + img.l2Entries) * cs;
      const chunkEnd = Math.min(end, tableEnd);
      await this.#writeChunk(pos, data.subarray(pos - offset, chunkEnd - offset));
      pos = chunkEnd;
    }
  }

  /** A write within one L2 table: in-place where the cluster is ours alone, else allocate. */
  async #writeChunk(offset: number, data: Buffer): Promise<void> {
    const img = this.img;
    const cs = img.clusterSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + data.length - 1) / cs);
    const entries = await lookupRun(img, first, last - first + 1);
    const inPlace = (e: L2Entry) => e.type === 'normal' && e.copied && (!img.geo.extendedL2 || e.allocMask === ALL_SUBCLUSTERS);
    let i = 0;
    while (i < entries.length) {
      let j = i + 1;
      const mode = inPlace(entries[i]!);
      while (j < entries.length && inPlace(entries[j]!) === mode) j++;
      const gStart = Math.max(offset, (first + i) * cs);
      const gEnd = Math.min(offset + data.length, (first + j) * cs);
      const slice = data.subarray(gStart - offset, gEnd - offset);
      if (mode) {
        // Clusters we own: write in place, one request per contiguous host run.
        let p = gStart;
        while (p < gEnd) {
          const k = Math.floor(p / cs) - first;
          const host = entries[k]!.offset + (p % cs);
          let q = Math.min(gEnd, (first + k + 1) * cs);
          while (q < gEnd && entries[Math.floor(q / cs) - first]!.offset === host + (q - p)) q = Math.min(gEnd, q + cs);
          this.#checkHost(entries[k]!.offset, p);
          const crypto = cryptoOf(img);
          const part = slice.subarray(p - gStart, q - gStart);
          img.file.debugEvent('write_aio');
          await img.dataFile.write(host, crypto ? await encryptData(crypto, p, host, part) : part);
          p = q;
        }
      } else {
        await this.#allocatingWrite(first + i, j - i, gStart, slice);
      }
      i = j;
    }
  }

  /** Write guest clusters [cluster, cluster+n) into newly allocated clusters, filling the parts
   *  the request does not cover from the old contents (backing, compressed, shared, zero). */
  async #allocatingWrite(cluster: number, n: number, gStart: number, slice: Buffer): Promise<void> {
    const img = this.img;
    const cs = img.clusterSize;
    const base = cluster * cs;
    const span = n * cs;
    let buf: Buffer;
    if (gStart === base && slice.length === span) buf = slice;
    else {
      buf = Buffer.alloc(span);
      const headLen = gStart - base;
      if (headLen > 0) (await this.#readForCow(base, headLen)).copy(buf, 0);
      const tailStart = gStart + slice.length;
      const tailEnd = Math.min(base + span, img.size);
      if (tailEnd > tailStart) (await this.#readForCow(tailStart, tailEnd - tailStart)).copy(buf, tailStart - base);
      slice.copy(buf, headLen);
    }
    let gen = 0;
    const host = img.externalData
      ? base
      : await img.meta.run(async () => {
          // The L2 table before the data it maps (QEMU's handle_alloc), so that data written in
          // guest order lies contiguously on the host, as with qemu-img.
          await l2ForWrite(img, Math.floor(cluster / img.l2Entries));
          const at = await img.refcounts.allocate(n);
          gen = img.metaGeneration;
          return at;
        });
    const crypto = cryptoOf(img);
    img.file.debugEvent('write_aio');
    await img.dataFile.write(host, crypto ? await encryptData(crypto, base, host, buf) : buf);
    // The new refcounts reach the disk before the L2 entries that use them; parallel writers
    // share this flush.
    await img.syncTo(gen);
    const geo = img.geo;
    await img.meta.run(() =>
      updateEntries(
        img,
        cluster,
        n,
        (t, idx, i, old) => {
          encodeL2(t, idx, geo, { offset: host + i * cs, copied: true, allocMask: ALL_SUBCLUSTERS, zeroMask: 0 });
          return !(img.externalData && old.offset === host + i * cs);
        },
        true,
      ),
    );
  }

  /** Map the unallocated clusters of a guest range to new host clusters ahead of their data
   *  (NodeImpl.reserve). Only in write-back mode (a convert target), and only where a mapped
   *  cluster reads as zeros until written: no encryption, backing file or external data file. */
  async reserve(offset: number, length: number): Promise<Reservation | undefined> {
    const img = this.img;
    if (!img.deferring || cryptoOf(img) || img.externalData || this.#hasBacking() || img.header.backingFile) return undefined;
    await this.#changing(offset, length);
    const cs = img.clusterSize;
    const start = Math.floor(offset / cs) * cs;
    const end = Math.min(Math.ceil((offset + length) / cs) * cs, Math.ceil(img.size / cs) * cs);
    const release = await img.writes.acquire(start, end);
    try {
      return await img.meta.run(async () => {
        img.reservedEnd = Math.max(img.reservedEnd, await mapUnallocated(img, start, end, ALL_SUBCLUSTERS));
        const host = await this.#ownedHostRun(start, end);
        return host === undefined ? {} : { host: { node: img.dataFile, offset: host + (offset - start) } };
      });
    } finally {
      release();
    }
  }

  /** Host offset of guest clusters [start, end) when they are one contiguous run of data clusters
   *  this image alone uses, within one L2 table (standard entries): written in place, such a run
   *  needs no metadata change. Undefined otherwise. */
  async #ownedHostRun(start: number, end: number): Promise<number | undefined> {
    const img = this.img;
    if (img.geo.extendedL2) return undefined;
    const cs = img.clusterSize;
    const { l1Index, l2Index } = position(img, start);
    const count = (end - start) / cs;
    if (l2Index + count > img.l2Entries || l1Index >= img.l1Size) return undefined;
    const l1e = decodeL1(img.l1, l1Index);
    if (!l1e.offset) return undefined;
    const host = contiguousOwnedRun(await img.l2Table(l1e.offset), l2Index, count, img.geo, cs);
    return host !== undefined && host >= cs && host % cs === 0 ? host : undefined;
  }

  /** Grow the file over clusters reserve() mapped whose data never reached their end. */
  async #coverReserved(): Promise<void> {
    const img = this.img;
    if (img.reservedEnd > img.dataFile.size) await img.dataFile.truncate(img.reservedEnd, { preallocation: 'off', shrink: false });
  }

  /** Old contents of a guest range (for copy-on-write), reading past the virtual end as zeros. */
  async #readForCow(offset: number, length: number): Promise<Buffer> {
    const inside = Math.max(0, Math.min(length, this.img.size - offset));
    if (inside === length) return this.read(offset, length);
    const out = Buffer.alloc(length);
    if (inside > 0) (await this.read(offset, inside)).copy(out);
    return out;
  }

  /** QEMU's qcow2_has_zero_init: a new image maps nothing (reads zeros); a preallocated one has
   *  its first L1 entry set, and then reads zeros only if unencrypted and its data file does. */
  hasZeroInit(): boolean {
    const preallocated = this.img.l1.length >= 8 && this.img.l1.readBigUInt64BE(0) !== 0n;
    if (!preallocated) return true;
    if (cryptoOf(this.img)) return false;
    return this.img.dataFile.hasZeroInit;
  }

  async writeZeroes(offset: number, length: number, flags: ZeroFlags): Promise<void> {
    await this.#changing(offset, length);
    const img = this.img;
    const cs = img.clusterSize;
    const v2 = img.header.version < 3;
    if (v2 && this.#hasBacking()) return this.#writeZeroBuffers(offset, length);
    if (img.dataRaw) return this.#writeZeroBuffers(offset, length); // the raw data file must read as zeros too
    const alignedStart = Math.ceil(offset / cs) * cs;
    const alignedEnd = Math.floor((offset + length) / cs) * cs;
    // The last partial cluster of the image counts as whole when the request reaches the end.
    const bodyEnd = offset + length === img.size ? offset + length : alignedEnd;
    if (bodyEnd <= alignedStart) return this.#writeZeroBuffers(offset, length);
    if (alignedStart > offset) await this.#writeZeroBuffers(offset, alignedStart - offset);
    await this.#beforeWrite();
    const release = await img.writes.acquire(alignedStart, Math.ceil(bodyEnd / cs) * cs);
    try {
      await this.#zeroClusters(alignedStart, bodyEnd, flags.mayUnmap ?? false, v2);
    } finally {
      release();
    }
    if (offset + length > bodyEnd) await this.#writeZeroBuffers(bodyEnd, offset + length - bodyEnd);
  }

  async #writeZeroBuffers(offset: number, length: number): Promise<void> {
    const CHUNK = 1 << 20;
    for (let p = offset; p < offset + length; p += CHUNK) await this.write(p, Buffer.alloc(Math.min(CHUNK, offset + length - p)));
  }

  /** Mark whole clusters [start, end) as zero (v3 flag / ext-L2 bitmap) or unallocated (v2
   *  without backing, where unallocated reads as zeros). */
  async #zeroClusters(start: number, end: number, mayUnmap: boolean, v2: boolean): Promise<void> {
    const img = this.img;
    const cs = img.clusterSize;
    const geo = img.geo;
    let pos = start;
    while (pos < end) {
      const { cluster, l2Index } = position(img, pos);
      const n = Math.min(img.l2Entries - l2Index, Math.ceil((end - pos) / cs));
      await img.meta.run(() =>
        updateEntries(img, cluster, n, (t, idx, _i, old) => {
          if (geo.extendedL2) {
            encodeL2(t, idx, geo, { offset: 0, copied: false, zeroMask: ALL_SUBCLUSTERS, allocMask: 0 });
            return old.type !== 'unallocated' && !(img.externalData);
          }
          if (v2) {
            encodeL2(t, idx, geo, { offset: 0, copied: false });
            return !img.externalData;
          }
          const keep = !mayUnmap && (old.type === 'normal' || old.type === 'zero-alloc') && old.copied;
          if (keep) {
            encodeL2(t, idx, geo, { offset: old.offset, copied: true, zero: true });
            return false;
          }
          encodeL2(t, idx, geo, { offset: 0, copied: false, zero: true });
          return !img.externalData;
        }),
      );
      pos += n * cs;
    }
  }

  async discard(offset: number, length: number): Promise<void> {
    await this.#changing(offset, length);
    const img = this.img;
    const cs = img.clusterSize;
    const start = Math.ceil(offset / cs) * cs;
    let end = Math.floor((offset + length) / cs) * cs;
    if (offset + length === img.size) end = offset + length;
    if (end <= start) return;
    if (img.dataRaw) return; // the raw data file must keep the guest's bytes: discard is advisory
    await this.#beforeWrite();
    const release = await img.writes.acquire(start, Math.ceil(end / cs) * cs);
    try {
      const geo = img.geo;
      const zero = img.header.version >= 3 || geo.extendedL2;
      const backing = this.#hasBacking();
      let pos = start;
      while (pos < end) {
        const { cluster, l2Index } = position(img, pos);
        const n = Math.min(img.l2Entries - l2Index, Math.ceil((end - pos) / cs));
        const { l1Index } = position(img, pos);
        if (l1Index < img.l1Size && decodeL1(img.l1, l1Index).offset) {
          await img.meta.run(() =>
            updateEntries(img, cluster, n, (t, idx, _i, old) => {
              const allocated = old.type !== 'unallocated' && old.type !== 'zero-plain';
              if (!allocated && !(backing && old.type === 'unallocated')) return false;
              if (geo.extendedL2) encodeL2(t, idx, geo, { offset: 0, copied: false, zeroMask: backing || allocated ? ALL_SUBCLUSTERS : 0, allocMask: 0 });
              else encodeL2(t, idx, geo, { offset: 0, copied: false, zero: zero && (backing || allocated) });
              return allocated && !img.externalData;
            }),
          );
        }
        pos += n * cs;
      }
    } finally {
      release();
    }
  }

  /** Deallocate every guest cluster so reads fall through to the backing file (QEMU's
   *  bdrv_make_empty, used by commit): entries become "unallocated", never "zero". */
  async makeEmpty(): Promise<void> {
    await this.#beforeWrite();
    const img = this.img;
    const geo = img.geo;
    if (canEmptyCompletely(img)) {
      await this.exclusive(() => makeCompletelyEmpty(img, () => (this.#ejected = true)));
      this.#freeByte = 0;
      this.#dirtyMarked = false; // the dirty bit is clear again: the next write sets it anew
      return;
    }
    await this.exclusive(async () => {
      for (let l1Index = 0; l1Index < img.l1Size; l1Index++) {
        if (!decodeL1(img.l1, l1Index).offset) continue;
        const first = l1Index * img.l2Entries;
        const count = Math.min(img.l2Entries, Math.ceil(img.size / img.clusterSize) - first);
        if (count <= 0) break;
        await updateEntries(img, first, count, (t, idx, _i, old) => {
          if (old.type === 'unallocated' && !old.allocMask && !old.zeroMask) return false;
          encodeL2(t, idx, geo, { offset: 0, copied: false, allocMask: 0, zeroMask: 0 });
          return !img.externalData;
        });
      }
    });
  }

  async writeCompressed(offset: number, data: Buffer): Promise<void> {
    const img = this.img;
    const cs = img.clusterSize;
    if (offset % cs !== 0) throw invalidArgument(`Compressed writes must be cluster aligned (offset ${offset}, cluster size ${cs})`, img.ctx);
    if (data.length !== cs && offset + data.length !== img.size) throw invalidArgument(`Compressed writes must cover one whole cluster (${data.length} bytes given, cluster size ${cs})`, img.ctx);
    if (img.externalData) throw unsupported('Compression is not supported with an external data file', img.ctx);
    if (cryptoOf(img)) throw unsupported(COMPRESSION_WITH_ENCRYPTION, img.ctx);
    let whole = data;
    if (data.length < cs) {
      whole = Buffer.alloc(cs);
      data.copy(whole);
    }
    const [packed] = await compressClusters(img.workers, img.header.compressionType, [whole], cs, img.ctx);
    if (!packed || packed.length === 0) return this.write(offset, data);
    await this.#changing(offset, data.length);
    const release = await img.writes.acquire(offset, offset + cs);
    try {
      const cluster = offset / cs;
      await img.meta.run(async () => {
        const host = await this.#allocBytes(packed.length);
        img.file.debugEvent('write_compressed');
        await img.writeMeta(host, packed);
        await updateEntries(img, cluster, 1, (t, idx, _i, old) => {
          encodeCompressedL2(t, idx, img.geo, host, packed.length);
          return old.type !== 'unallocated' && old.type !== 'zero-plain';
        });
      });
    } finally {
      release();
    }
  }

  /** Allocate `size` bytes for compressed data, packing into the last partly used cluster
   *  (QEMU's qcow2_alloc_bytes). Caller holds img.meta. */
  async #allocBytes(size: number): Promise<number> {
    const img = this.img;
    const cs = img.clusterSize;
    if (this.#freeByte) {
      const used = this.#freeByte % cs;
      if (used !== 0 && used + size <= cs) {
        const at = this.#freeByte;
        await img.refcounts.update(at, 1, 1);
        await img.refcounts.commit();
        this.#freeByte = at + size;
        if (this.#freeByte % cs === 0) this.#freeByte = 0;
        return at;
      }
    }
    const n = Math.ceil(size / cs);
    const at = await img.refcounts.allocate(n);
    this.#freeByte = (at + size) % cs === 0 ? 0 : at + size;
    return at;
  }

  // ---------------------------------------------------------------- status

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    this.#metadataPrealloc ??= await this.#detectMetadataPreallocation();
    const st = await this.#ownStatus(offset, length);
    // As QEMU (BDRV_BLOCK_RECURSE): in a metadata-preallocated image, data clusters whose host
    // storage is a hole read as zeros, and block status says so.
    return this.#metadataPrealloc && st.data && !st.compressed ? refineWithFile(this.img.dataFile, st) : st;
  }

  /** Whether the image looks preallocated with metadata only (QEMU's
   *  qcow2_detect_metadata_preallocation): clearly more clusters in use than the file has
   *  storage for. */
  async #detectMetadataPreallocation(): Promise<boolean> {
    const img = this.img;
    const fileLength = img.file.size;
    const allocated = await img.file.allocatedSize();
    if (allocated === undefined) return false;
    const realClusters = Math.floor(allocated / img.clusterSize);
    const threshold = Math.max(Math.floor((realClusters * 10) / 9), realClusters + 2);
    const endCluster = Math.ceil(fileLength / img.clusterSize);
    return (await img.refcounts.countInUse(endCluster, threshold)) >= threshold;
  }

  /** Set on the first block-status request (detectMetadataPreallocation). */
  #metadataPrealloc: boolean | undefined;

  async #ownStatus(offset: number, length: number): Promise<BlockStatus> {
    const img = this.img;
    if (!img.geo.extendedL2) return this.#standardStatus(offset, length);
    const cs = img.clusterSize;
    const sub = img.subclusterSize;
    const backing = this.#hasBacking();
    // Extended L2 entries from here on: status per subcluster.
    type Kind = 'data' | 'zero' | 'zero-alloc' | 'unalloc' | 'compressed';
    // The entries of the request's clusters, one L2 table fetch at a time; the merge below is
    // synchronous within a table (an await per cluster cost 3 us, 0.2 s for a 4 GiB image).
    let run: { count: number; entry(i: number): L2Entry } = { count: 0, entry: () => UNALLOCATED };
    let runFirst = 0;
    const inRun = (c: number) => c >= runFirst && c - runFirst < run.count;
    const fetch = async (c: number) => {
      run = await lazyRun(img, c);
      runFirst = c;
    };
    /** Host offset of the last subcluster classified as data. */
    let host = 0;
    const classify = (pos: number): Kind => {
      const c = Math.floor(pos / cs);
      const e = run.entry(c - runFirst);
      const within = pos % cs;
      if (e.type === 'compressed') return 'compressed';
      const bit = 1 << Math.floor(within / sub);
      if (e.allocMask & bit) {
        host = e.offset + within;
        return 'data';
      }
      if (!(e.zeroMask & bit)) return 'unalloc';
      if (!e.offset) return 'zero';
      host = e.offset + within;
      return 'zero-alloc';
    };
    const step = sub;
    await fetch(Math.floor(offset / cs));
    const firstKind = classify(offset);
    const firstHost = host;
    let len = Math.min(length, step - (offset % step));
    // Merge following subclusters with the same status and contiguous host data; bounded work,
    // as many clusters as the standard path reads.
    const MAX_UNITS = (1 << 16) * SUBCLUSTERS;
    for (let u = 0; len < length && u < MAX_UNITS; u++) {
      if (firstKind === 'unalloc') {
        // Guest ranges whose L1 entry has no L2 table are unallocated as a whole: step over them
        // a table at a time (an empty 128 GiB image of 512-byte clusters is millions of units).
        const tableSpan = img.l2Entries * cs;
        let skipped = false;
        while (len < length) {
          const l1i = Math.floor((offset + len) / tableSpan);
          if (l1i >= img.l1Size) len = length;
          else if (decodeL1(img.l1, l1i).offset) break;
          else len = Math.min(length, (l1i + 1) * tableSpan - offset);
          skipped = true;
        }
        if (skipped) continue;
      }
      const c = Math.floor((offset + len) / cs);
      if (!inRun(c)) await fetch(c);
      const kind = classify(offset + len);
      if (kind !== firstKind) break;
      if ((firstKind === 'data' || firstKind === 'zero-alloc') && host !== firstHost + len) break;
      len = Math.min(length, len + step);
    }
    switch (firstKind) {
      case 'data':
        // As QEMU: no host offset for encrypted data (the bytes there are ciphertext).
        if (cryptoOf(img)) return { offset, length: len, data: true, zero: false, allocated: true };
        return this.#dataStatus(offset, len, firstHost, offset % cs);
      case 'compressed':
        return { offset, length: len, data: true, zero: false, allocated: true, compressed: true };
      case 'zero':
        return { offset, length: len, data: false, zero: true, allocated: true };
      case 'zero-alloc':
        if (cryptoOf(img)) return { offset, length: len, data: false, zero: true, allocated: true };
        return { offset, length: len, data: false, zero: true, allocated: true, hostOffset: firstHost };
      default:
        return { offset, length: len, data: false, zero: !backing, allocated: false };
    }
  }

  /** Status of plain data at `host` (`within` bytes into its first cluster). */
  #dataStatus(offset: number, length: number, host: number, within: number): BlockStatus {
    const hostNode = this.#verbatimHost(host, within, length);
    return { offset, length, data: true, zero: false, allocated: true, hostOffset: host, ...(hostNode ? { hostNode } : {}) };
  }

  /** QEMU answers block status an L2 table at a time (its cache slice is the whole table). */
  qemuLastStatusUnit(): number {
    const span = this.img.l2Entries * this.img.clusterSize;
    return Math.max(0, Math.floor((this.size - 1) / span) * span);
  }

  /** Block status with standard L2 entries: whole tables scanned without entry objects. */
  async #standardStatus(offset: number, length: number): Promise<BlockStatus> {
    const img = this.img;
    const cs = img.clusterSize;
    const first = Math.floor(offset / cs);
    const clustersAsked = Math.ceil((offset + length) / cs) - first;
    // Bounded work per call: at most this many entries read (tables without an L1 entry are
    // skipped whole: an empty 128 GiB image of 512-byte clusters is millions of clusters).
    const MAX_SCANNED = 1 << 16;
    let kind = -1;
    let host = 0;
    let clusters = 0;
    let scanned = 0;
    while (clusters < clustersAsked && scanned < MAX_SCANNED) {
      const c = first + clusters;
      const l1Index = Math.floor(c / img.l2Entries);
      const index = c - l1Index * img.l2Entries;
      const inTable = Math.min(img.l2Entries - index, clustersAsked - clusters);
      const tableOffset = l1Index < img.l1Size ? decodeL1(img.l1, l1Index).offset : 0;
      let r: { kind: number; host: number; count: number };
      if (!tableOffset) r = { kind: L2_UNALLOCATED, host: 0, count: inTable };
      else {
        r = scanStandardL2(await img.l2Table(tableOffset), index, Math.min(inTable, MAX_SCANNED - scanned), img.geo, cs);
        scanned += r.count;
      }
      if (kind === -1) {
        kind = r.kind;
        host = r.host;
      } else if (r.kind !== kind || ((kind === L2_DATA || kind === L2_ZERO_ALLOC) && r.host !== host + clusters * cs)) break;
      clusters += r.count;
      if (r.count < inTable) break; // the run ended inside this table
    }
    const within = offset % cs;
    const len = Math.min(length, clusters * cs - within);
    switch (kind) {
      case L2_DATA:
        // As QEMU: no host offset for encrypted data (the bytes there are ciphertext).
        if (cryptoOf(img)) return { offset, length: len, data: true, zero: false, allocated: true };
        return this.#dataStatus(offset, len, host + within, within);
      case L2_COMPRESSED:
        return { offset, length: len, data: true, zero: false, allocated: true, compressed: true };
      case L2_ZERO:
        return { offset, length: len, data: false, zero: true, allocated: true };
      case L2_ZERO_ALLOC:
        // As QEMU: the host offset of a preallocated zero cluster (not for encrypted images).
        if (cryptoOf(img)) return { offset, length: len, data: false, zero: true, allocated: true };
        return { offset, length: len, data: false, zero: true, allocated: true, hostOffset: host + within };
      default:
        return { offset, length: len, data: false, zero: !this.#hasBacking(), allocated: false };
    }
  }

  // ---------------------------------------------------------------- resize

  /**
   * Resize (QEMU's qcow2_co_truncate). Shrinking discards the guest clusters past the new end
   * (their host clusters freed and punched), drops the L2 tables past the new L1 size, and cuts
   * the file after its last used cluster. Growing maps the new area as the preallocation mode
   * asks; where a backing file longer than the old size would show through the new area, that
   * area is made to read as zeros (BDRV_REQ_ZERO_WRITE: zero clusters, explicit zeros for a
   * partial cluster).
   */
  async truncate(size: number, options: TruncateOptions): Promise<void> {
    await this.#beforeWrite();
    const img = this.img;
    const cs = img.clusterSize;
    const mode = options.preallocation ?? 'off';
    if (size % SECTOR !== 0) throw invalidArgument(`The new size must be a multiple of ${SECTOR}`, img.ctx);
    const old = img.size;
    const backing = this.#ctx.backing();
    // The generic rule (bdrv_co_truncate): a backing file reaching past the old end would show
    // through the new area.
    const zeroWrite = size > old && backing !== undefined && backing.size > old;
    /** Whether the preallocation already made the new area read zeros (its data is in the file). */
    let zeroed = false;
    await this.exclusive(async () => {
      if (img.snapshots.length > 0 && img.header.version < 3) throw unsupported("Can't resize a v2 image which has snapshots", img.ctx);
      await this.bitmaps.checkResizableLocked();
      if (size < old) {
        if (mode !== 'off') throw invalidArgument("Preallocation can't be used for shrinking an image", img.ctx);
        await this.#shrink(size);
        img.header.size = size;
        await img.writeHeader();
        this.bitmaps.resized(size);
        return;
      }
      if (size === old) return;
      if (zeroWrite && img.header.version < 3) throw unsupported('Block driver does not support requested flags', img.ctx);
      const needed = l1EntriesFor(size, img.clusterBits, img.geo.extendedL2);
      await growL1(img, needed);
      // A cluster the old end cuts through keeps its head when it gets new storage (copy on
      // write, read before anything changes).
      const headStart = Math.floor(old / cs) * cs;
      const head = mode !== 'off' && old > headStart ? await this.read(headStart, old - headStart) : undefined;
      img.header.size = size;
      await img.writeHeader();
      this.bitmaps.resized(size);
      if (mode !== 'off') {
        zeroed = await preallocate(img, old, size, mode, {
          zeroWrite,
          cowHead: head
            ? async (host) => {
                const crypto = cryptoOf(img);
                await img.dataFile.write(host, crypto ? await encryptData(crypto, headStart, host, head) : head);
              }
            : undefined,
        });
      }
    });
    if (!zeroWrite || zeroed) return;
    // Through the ordinary zero-write path, which keeps the part of the cut cluster before the
    // old end reading from the backing file (writing zero clusters directly lost it with
    // extended L2: the whole cluster was mapped).
    await this.writeZeroes(old, size - old, {});
  }

  /** The metadata side of shrinking to `size` (QEMU: qcow2_cluster_discard of the cropped
   *  clusters, qcow2_shrink_l1_table, then the file cut after qcow2_get_last_cluster). Caller
   *  holds the image exclusively. */
  async #shrink(size: number): Promise<void> {
    const img = this.img;
    const cs = img.clusterSize;
    const geo = img.geo;
    /** Host clusters that lost a reference (punched if now free). */
    const released: number[] = [];
    for (let pos = Math.ceil(size / cs) * cs; pos < img.size; ) {
      const { cluster, l1Index, l2Index } = position(img, pos);
      const n = Math.min(img.l2Entries - l2Index, Math.ceil((img.size - pos) / cs));
      if (l1Index < img.l1Size && decodeL1(img.l1, l1Index).offset) {
        await updateEntries(img, cluster, n, (t, idx, _i, e) => {
          if (e.type === 'unallocated' && !e.allocMask && !e.zeroMask) return false;
          if ((e.type === 'normal' || e.type === 'zero-alloc') && !img.externalData) released.push(e.offset);
          encodeL2(t, idx, geo, { offset: 0, copied: false, allocMask: 0, zeroMask: 0 });
          return true;
        });
      }
      pos += n * cs;
    }
    // L2 tables past the new L1 size: their entries cleared on disk first, then the tables freed.
    const newL1Size = l1EntriesFor(size, img.clusterBits, geo.extendedL2);
    if (newL1Size < img.l1Size) {
      const tables: number[] = [];
      for (let i = newL1Size; i < img.l1Size; i++) {
        const t = decodeL1(img.l1, i).offset;
        if (t) tables.push(t);
      }
      img.l1.fill(0, newL1Size * L1E_SIZE, img.l1Size * L1E_SIZE);
      await img.writeL1Entries(newL1Size, img.l1Size - newL1Size);
      await img.barrier();
      for (const t of tables) {
        await img.refcounts.update(t, cs, -1);
        released.push(t);
      }
      await img.refcounts.commit();
    }
    // Freed clusters are discarded in the file (QCOW2_DISCARD_ALWAYS), adjacent ones in one
    // request as QEMU's discard queue merges them (one punch leaves the file's extent tree as
    // small as QEMU's does, which du sees).
    const free: number[] = [];
    for (const h of released) if ((await img.refcounts.get(h / cs)) === 0 && h + cs <= img.file.size) free.push(h);
    free.sort((x, y) => x - y);
    for (let i = 0; i < free.length; ) {
      let j = i + 1;
      while (j < free.length && free[j]! <= free[j - 1]! + cs) j++;
      await img.file.discard(free[i]!, free[j - 1]! + cs - free[i]!);
      i = j;
    }
    const fileSize = img.file.size;
    const last = await img.refcounts.lastInUse(Math.ceil(fileSize / cs));
    if (last >= 0 && (last + 1) * cs < fileSize) {
      await img.file.truncate((last + 1) * cs, { preallocation: 'off', shrink: true }).catch((e: unknown) => {
        img.warn(`qemu-img: warning: Failed to truncate the tail of the image: ${e instanceof Error ? e.message : String(e)}`);
      });
    }
  }

  async flush(): Promise<void> {
    if (this.img.readOnly || this.#ejected) return;
    await this.img.meta.run(async () => {
      await this.#coverReserved();
      await this.img.writeBack();
    });
  }

  // ---------------------------------------------------------------- metadata

  async info(): Promise<DriverInfo> {
    const img = this.img;
    const h = img.header;
    const data: Record<string, unknown> = {};
    if (h.version >= 3) {
      data['compat'] = '1.1';
      data['compression-type'] = h.compressionType === 1 ? 'zstd' : 'zlib';
      data['lazy-refcounts'] = (h.compatible & COMPAT_LAZY_REFCOUNTS) !== 0n;
      if (h.bitmapsExt && h.autoclear & AUTOCLEAR_BITMAPS) {
        const bitmaps = await bitmapInfo(img).catch(() => undefined);
        if (bitmaps) data['bitmaps'] = bitmaps;
      }
      data['refcount-bits'] = 1 << h.refcountOrder;
      const crypto = cryptoOf(img);
      if (crypto) data['encrypt'] = encryptInfo(crypto);
      if (img.externalData) {
        if (h.dataFile) data['data-file'] = h.dataFile;
        data['data-file-raw'] = img.dataRaw;
      }
      data['corrupt'] = (h.incompatible & INCOMPAT_CORRUPT) !== 0n;
      data['extended-l2'] = img.geo.extendedL2;
    } else {
      data['compat'] = '0.10';
      data['compression-type'] = 'zlib';
      data['refcount-bits'] = 16;
    }
    return {
      clusterSize: img.clusterSize,
      encrypted: h.cryptMethod !== 0,
      dirtyFlag: (h.incompatible & INCOMPAT_DIRTY) !== 0n,
      formatSpecific: { type: 'qcow2', data },
    };
  }

  async setBackingFile(filename: string | undefined, format: string | undefined): Promise<void> {
    const img = this.img;
    if (filename !== undefined && Buffer.byteLength(filename) > MAX_BACKING_NAME) {
      throw invalidArgument(`Backing file name too long (${Buffer.byteLength(filename)} bytes, at most ${MAX_BACKING_NAME})`, img.ctx);
    }
    await this.exclusive(async () => {
      const h = img.header;
      const prev = { f: h.backingFile, fmt: h.backingFormat };
      if (filename === undefined || filename === '') {
        delete h.backingFile;
        delete h.backingFormat;
      } else {
        h.backingFile = filename;
        if (format) h.backingFormat = format;
        else delete h.backingFormat;
      }
      try {
        await img.writeHeader();
      } catch (e) {
        if (prev.f === undefined) delete h.backingFile;
        else h.backingFile = prev.f;
        if (prev.fmt === undefined) delete h.backingFormat;
        else h.backingFormat = prev.fmt;
        throw e;
      }
    });
  }

  async check(repair: RepairMode | undefined): Promise<CheckResult> {
    return this.exclusive(async () => {
      // Opened for repair, the image drops the autoclear bits it does not know, as QEMU does
      // on every read-write open.
      const h = this.img.header;
      if (repair && !this.img.readOnly && h.autoclear & ~AUTOCLEAR_KNOWN) {
        h.autoclear &= AUTOCLEAR_KNOWN;
        await this.img.writeHeader();
      }
      // The snapshot table, which the open for check left unread (QEMU
      // qcow2_check_read_snapshot_table): a table that cannot be read ends the check.
      const sn = await readSnapshotTableForCheck(this.img, repair === 'all', CHECK_ERROR_REPORT);
      if (sn.failed) {
        return { corruptions: sn.corruptions, leaks: 0, checkErrors: 1, corruptionsFixed: sn.corruptionsFixed, leaksFixed: 0, messages: sn.messages, failed: sn.failed };
      }
      // v3 snapshot entries without the required extra data: reported with the table's other
      // findings; -r all rewrites the table once the refcounts are checked.
      const incomplete = h.version >= 3 ? this.img.snapshots.flatMap((s, i) => ((s.extraDataSize ?? 0) < SNAPSHOT_EXTRA_V3_MIN ? [i] : [])) : [];
      const notes = incomplete.map((i) => `${repair === 'all' ? 'Repairing' : 'ERROR'} snapshot table entry ${i} is incomplete`);
      const res = await checkImage(this.img, repair);
      res.messages.unshift(...sn.messages, ...notes);
      res.corruptionsFixed += sn.corruptionsFixed;
      const tableCorruptions = sn.corruptions + incomplete.length;
      if (tableCorruptions && repair === 'all' && res.failed === undefined) {
        await writeSnapshotTable(this.img);
        res.corruptionsFixed += tableCorruptions;
      } else res.corruptions += tableCorruptions;
      return res;
    });
  }

  async amend(options: OptionValues, ctx: AmendContext): Promise<void> {
    await this.exclusive(async () => {
      await amendCrypto(this.img, options, ctx); // encrypt.* key slots (encryption.ts)
      await amendImage(this, options, ctx);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const img = this.img;
    closeCrypto(img);
    if (img.readOnly || this.#ejected) return;
    await img.meta.run(async () => {
      await this.#coverReserved();
      await img.writeThrough(() => this.bitmaps.storeLocked());
      await img.writeBack();
      if (img.header.incompatible & INCOMPAT_DIRTY) {
        await img.file.flush();
        img.header.incompatible &= ~INCOMPAT_DIRTY;
        await img.writeHeader();
      }
    });
  }
}


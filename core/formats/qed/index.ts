// The qed format driver (QEMU Enhanced Disk, docs/interop/qed_spec.txt; behaviour of QEMU's
// block/qed.c): two levels of tables map clusters to file offsets; new clusters and L2 tables are
// appended at the end of the file. Before the first allocating write the need-check feature bit is
// set, and it is cleared again on flush/close once every table update is on disk; an image found
// with the bit set is checked and repaired when opened read-write (check.ts).
//
// Allocating writes are serialised (QEMU freezes allocating requests behind one another); writes
// to allocated clusters go straight to the file.

import { checkBackingFormatName } from '../../block/qemu-drivers.ts';
import type { BlockStatus, CheckResult, DriverInfo, FormatDriver, NodeImpl, OpenContext, RepairMode, TruncateOptions, ZeroFlags } from '../../block/types.ts';
import type { BlockNode } from '../../block/node.ts';
import { corrupt, invalidArgument, invalidImage, unsupported, type BlockErrorContext } from '../../errors.ts';
import { Mutex } from '../../util/range-lock.ts';
import { TableCache } from './table-cache.ts';
import { checkQed } from './check.ts';
import {
  QED_AUTOCLEAR_FEATURE_MASK,
  QED_DEFAULT_CLUSTER_SIZE,
  QED_DEFAULT_TABLE_SIZE,
  QED_F_BACKING_FILE,
  QED_F_BACKING_FORMAT_NO_PROBE,
  QED_F_NEED_CHECK,
  QED_HEADER_STRUCT_SIZE,
  QED_MAGIC,
  QED_MAX_BACKING_NAME,
  QED_MAX_CLUSTER_SIZE,
  QED_MAX_TABLE_SIZE,
  QED_MIN_CLUSTER_SIZE,
  QED_MIN_TABLE_SIZE,
  QED_SECTOR_SIZE,
  decodeQedHeader,
  encodeQedHeader,
  isValidClusterSize,
  isValidImageSize,
  isValidTableSize,
  maxImageSize,
  validateQedHeader,
  type QedGeometry,
  type QedHeader,
} from './header.ts';
import { QED_ENTRY_SIZE, QED_ZERO_CLUSTER, decodeTable, encodeEntries, isValidClusterOffset, isValidTableOffset, type QedTable } from './table.ts';

/** Memory for cached L2 tables (QEMU caches 512 tables; ours is bounded in bytes instead). */
const L2_CACHE_BYTES = 32 * 1024 * 1024;
const L2_CACHE_MIN_TABLES = 2;
const L2_CACHE_MAX_TABLES = 128;
/** Most bytes one allocating write builds in memory (at least one cluster); longer requests are
 *  done in several allocations. */
const MAX_ALLOC_RUN_BYTES = 16 * 1024 * 1024;

/** Where one cluster's data is. */
type Mapping =
  | { kind: 'unallocated'; noL2: boolean }
  | { kind: 'zero' }
  | { kind: 'data'; host: number };

class QedNode implements NodeImpl {
  readonly alignment = QED_SECTOR_SIZE;
  readonly clusterSize: number;
  readonly #file: BlockNode;
  readonly #header: QedHeader;
  readonly #geo: QedGeometry;
  readonly #l1: QedTable;
  readonly #ctx: OpenContext;
  readonly #ectx: BlockErrorContext;
  readonly #l2: TableCache<QedTable>;
  /** Serialises allocation, header updates and checks. */
  readonly #alloc = new Mutex();
  #backingFile: { filename: string; format?: string } | undefined;

  constructor(file: BlockNode, header: QedHeader, geo: QedGeometry, l1: QedTable, ctx: OpenContext, backing: { filename: string; format?: string } | undefined) {
    this.#file = file;
    this.#header = header;
    this.#geo = geo;
    this.#l1 = l1;
    this.#ctx = ctx;
    this.#ectx = { path: ctx.filename };
    this.clusterSize = geo.clusterSize;
    this.#backingFile = backing;
    const tables = Math.floor(L2_CACHE_BYTES / geo.tableBytes);
    this.#l2 = new TableCache<QedTable>(Math.min(L2_CACHE_MAX_TABLES, Math.max(L2_CACHE_MIN_TABLES, tables)));
  }

  get size(): number {
    return this.#geo.imageSize;
  }

  get backingFile(): { filename: string; format?: string } | undefined {
    return this.#backingFile;
  }

  #rules() {
    return { clusterSize: this.#geo.clusterSize, headerBytes: this.#geo.headerBytes, fileSize: this.#geo.fileSize };
  }

  async #readL2(offset: number): Promise<QedTable> {
    return decodeTable(await this.#file.read(offset, this.#geo.tableBytes), this.#geo.tableEntries);
  }

  /** The L2 table offset of L1 entry `i` (0: none), refusing invalid ones as QEMU does (EINVAL). */
  #l2Offset(i: number): number {
    const v = this.#l1[i]!;
    if (v === 0n) return 0;
    if (!isValidTableOffset(v, this.#geo.tableBytes, this.#rules())) {
      throw corrupt(`QED L1 entry ${i} points to an invalid L2 table offset ${v}; run 'qemu-img check -r all'`, this.#ectx);
    }
    return Number(v);
  }

  #decode(entry: bigint, pos: number): Mapping {
    if (entry === 0n) return { kind: 'unallocated', noL2: false };
    if (entry === QED_ZERO_CLUSTER) return { kind: 'zero' };
    if (!isValidClusterOffset(entry, this.#rules())) {
      throw corrupt(`QED L2 entry for offset ${pos} points to an invalid cluster offset ${entry}; run 'qemu-img check -r all'`, { ...this.#ectx, offset: pos });
    }
    return { kind: 'data', host: Number(entry) };
  }

  #indexes(pos: number): { l1: number; l2: number } {
    const cluster = Math.floor(pos / this.#geo.clusterSize);
    return { l1: Math.floor(cluster / this.#geo.tableEntries), l2: cluster % this.#geo.tableEntries };
  }

  async #lookup(pos: number): Promise<Mapping> {
    const ix = this.#indexes(pos);
    const l2Off = this.#l2Offset(ix.l1);
    if (l2Off === 0) return { kind: 'unallocated', noL2: true };
    const table = await this.#l2.get(l2Off, () => this.#readL2(l2Off));
    return this.#decode(table[ix.l2]!, pos);
  }

  /** Bytes from `pos` to the end of the L2 range it is in. */
  #toL2RangeEnd(pos: number): number {
    const span = this.#geo.clusterSize * this.#geo.tableEntries;
    return span - (pos % span);
  }

  /** The run starting at `pos` (at most `max` bytes, within one L2 table) whose clusters all
   *  map like the first one (data clusters contiguous in the file). Scans the table in place. */
  async #run(pos: number, max: number): Promise<{ m: Mapping; n: number }> {
    const cs = this.clusterSize;
    const ix = this.#indexes(pos);
    const limit = Math.min(max, this.#toL2RangeEnd(pos));
    const l2Off = this.#l2Offset(ix.l1);
    if (l2Off === 0) return { m: { kind: 'unallocated', noL2: true }, n: limit };
    const table = await this.#l2.get(l2Off, () => this.#readL2(l2Off));
    const m = this.#decode(table[ix.l2]!, pos);
    let n = Math.min(limit, cs - (pos % cs));
    // The entry value every following cluster must have to extend the run.
    let want = m.kind === 'unallocated' ? 0n : m.kind === 'zero' ? QED_ZERO_CLUSTER : BigInt(m.host + cs);
    const step = m.kind === 'data' ? BigInt(cs) : 0n;
    const fileEnd = BigInt(this.#geo.fileSize);
    for (let j = ix.l2 + 1; n < limit; j++) {
      if (table[j] !== want || (step !== 0n && want >= fileEnd)) break;
      want += step;
      n = Math.min(limit, n + cs);
    }
    return { m, n };
  }

  async read(offset: number, length: number): Promise<Buffer> {
    let out: Buffer | undefined;
    for (let done = 0; done < length; ) {
      const pos = offset + done;
      const { m, n } = await this.#run(pos, length - done);
      let part: Buffer | undefined;
      if (m.kind === 'data') {
        this.#file.debugEvent('read_aio');
        part = await this.#file.read(m.host + (pos % this.clusterSize), n);
      } else if (m.kind === 'unallocated') {
        if (this.#ctx.backing()) this.#file.debugEvent('read_backing_aio');
        part = await this.#ctx.readBacking(pos, n);
      }
      if (n === length) return part ?? Buffer.alloc(length); // one run: no copy
      out ??= Buffer.alloc(length);
      part?.copy(out, done); // zero clusters: `out` is already zeros
      done += n;
    }
    return out ?? Buffer.alloc(0);
  }

  async write(offset: number, data: Buffer): Promise<void> {
    for (let done = 0; done < data.length; ) {
      const pos = offset + done;
      const { m, n } = await this.#run(pos, data.length - done);
      if (m.kind === 'data') {
        this.#file.debugEvent('write_aio');
        await this.#file.write(m.host + (pos % this.clusterSize), data.subarray(done, done + n));
        done += n;
      } else {
        done += await this.#allocatingWrite(pos, data.subarray(done));
      }
    }
  }

  /** Set need-check before the first metadata change (qed_should_set_need_check). Mutex held. */
  async #markNeedCheck(): Promise<void> {
    if (this.#header.features & QED_F_NEED_CHECK) return;
    this.#header.features |= QED_F_NEED_CHECK;
    await this.#writeHeaderStruct();
  }

  async #writeHeaderStruct(): Promise<void> {
    await this.#file.write(0, encodeQedHeader(this.#header));
  }

  /** `n` new clusters at the end of the file (qed_alloc_clusters). Mutex held. */
  #allocClusters(n: number): number {
    const at = this.#geo.fileSize;
    const end = at + n * this.#geo.clusterSize;
    if (!Number.isSafeInteger(end)) throw invalidImage('QED image file would grow past 2^53 bytes', this.#ectx);
    this.#geo.fileSize = end;
    return at;
  }

  /**
   * Write `data` at `pos` where the first cluster is not a data cluster: allocate the run of
   * non-data clusters the request covers inside one L2 table, fill the parts of the first and
   * last cluster the request does not cover (backing data, or zeros for zero clusters), write the
   * clusters, then point the L2 table at them. Returns how many bytes of `data` it consumed (0
   * when another request allocated the cluster meanwhile; the caller looks it up again).
   */
  async #allocatingWrite(pos: number, data: Buffer): Promise<number> {
    return this.#alloc.run(async () => {
      const cs = this.clusterSize;
      const first = await this.#lookup(pos);
      if (first.kind === 'data') return 0;
      const ix = this.#indexes(pos);
      const l2Off = this.#l2Offset(ix.l1);
      // How far the run goes: same L2 table, clusters that are not data, inside the request.
      const limit = Math.min(data.length, this.#toL2RangeEnd(pos), Math.max(cs, MAX_ALLOC_RUN_BYTES - (pos % cs)));
      const kinds: Mapping['kind'][] = [first.kind];
      let covered = Math.min(limit, cs - (pos % cs));
      while (covered < limit) {
        const m = await this.#lookup(pos + covered);
        if (m.kind === 'data') break;
        kinds.push(m.kind);
        covered = Math.min(limit, covered + cs);
      }
      const clusterStart = pos - (pos % cs);
      const nclusters = kinds.length;
      const runBytes = nclusters * cs;
      const buf = Buffer.alloc(runBytes);
      const head = pos - clusterStart;
      const tail = runBytes - head - covered;
      if (head > 0 && kinds[0] === 'unallocated') (await this.#ctx.readBacking(clusterStart, head)).copy(buf, 0);
      if (tail > 0 && kinds[nclusters - 1] === 'unallocated') (await this.#ctx.readBacking(pos + covered, tail)).copy(buf, head + covered);
      data.copy(buf, head, 0, covered);

      await this.#markNeedCheck();
      const host = this.#allocClusters(nclusters);
      this.#file.debugEvent('write_aio');
      await this.#file.write(host, buf);
      // With a backing file, the data must be stable before the table points at it (a torn
      // update would otherwise expose stale bytes instead of the backing file's).
      if (this.#ctx.backing()) await this.#file.flush();
      await this.#updateL2(ix, l2Off, nclusters, (i) => BigInt(host + i * cs));
      return covered;
    });
  }

  /** Set `n` consecutive L2 entries from `ix`, creating the L2 table when there is none. Mutex held. */
  async #updateL2(ix: { l1: number; l2: number }, l2Off: number, n: number, value: (i: number) => bigint): Promise<void> {
    if (l2Off === 0) {
      const table = new BigUint64Array(this.#geo.tableEntries);
      for (let i = 0; i < n; i++) table[ix.l2 + i] = value(i);
      const at = this.#allocClusters(this.#geo.tableSize);
      await this.#file.write(at, encodeEntries(table, 0, table.length));
      this.#l2.put(at, table);
      this.#l1[ix.l1] = BigInt(at);
      await this.#file.write(this.#geo.l1TableOffset + ix.l1 * QED_ENTRY_SIZE, encodeEntries(this.#l1, ix.l1, 1));
      return;
    }
    const table = await this.#l2.get(l2Off, () => this.#readL2(l2Off), true);
    try {
      for (let i = 0; i < n; i++) table[ix.l2 + i] = value(i);
      await this.#file.write(l2Off + ix.l2 * QED_ENTRY_SIZE, encodeEntries(table, ix.l2, n));
    } finally {
      this.#l2.unpin(l2Off);
    }
  }

  /** A new image maps no cluster: everything reads as zero (QEMU: bdrv_has_zero_init_1). */
  hasZeroInit(): boolean {
    return true;
  }

  async writeZeroes(offset: number, length: number, _flags: ZeroFlags): Promise<void> {
    const cs = this.clusterSize;
    const hasBacking = this.#ctx.backing() !== undefined;
    for (let done = 0; done < length; ) {
      const pos = offset + done;
      const inCluster = pos % cs;
      const n = Math.min(length - done, cs - inCluster);
      const m = await this.#lookup(pos);
      if (m.kind === 'data') await this.#file.writeZeroes(m.host + inCluster, n);
      else if (m.kind === 'unallocated' && hasBacking) {
        // Partial clusters get zeros written (QEMU falls back the same way); whole ones become
        // zero clusters, so the backing file no longer shows through.
        if (n < cs) await this.write(pos, Buffer.alloc(n));
        else await this.#zeroCluster(pos);
      }
      done += n;
    }
  }

  async #zeroCluster(pos: number): Promise<void> {
    await this.#alloc.run(async () => {
      const m = await this.#lookup(pos);
      if (m.kind === 'zero') return;
      if (m.kind === 'data') {
        await this.#file.writeZeroes(m.host, this.clusterSize);
        return;
      }
      const ix = this.#indexes(pos);
      await this.#markNeedCheck();
      await this.#updateL2(ix, this.#l2Offset(ix.l1), 1, () => QED_ZERO_CLUSTER);
    });
  }

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    const { m, n } = await this.#run(offset, length);
    // Reads take the same run from the file as it is (BlockStatus.hostNode).
    if (m.kind === 'data') return { offset, length: n, data: true, zero: false, allocated: true, hostOffset: m.host + (offset % this.clusterSize), hostNode: this.#file };
    if (m.kind === 'zero') return { offset, length: n, data: false, zero: true, allocated: true };
    return { offset, length: n, data: false, zero: this.#ctx.backing() === undefined, allocated: false };
  }

  async truncate(size: number, options: TruncateOptions): Promise<void> {
    // QEMU's bdrv_qed_co_truncate: grow only, no preallocation, size must stay mappable.
    if (options.preallocation && options.preallocation !== 'off') throw unsupported(`Unsupported preallocation mode '${options.preallocation}'`, this.#ectx);
    if (!isValidImageSize(BigInt(size), this.#geo.clusterSize, this.#geo.tableSize)) throw invalidArgument('Invalid image size specified', this.#ectx);
    if (size < this.#geo.imageSize) throw unsupported('Shrinking images is currently not supported', this.#ectx);
    await this.#alloc.run(async () => {
      const old = this.#header.imageSize;
      this.#header.imageSize = BigInt(size);
      try {
        await this.#writeHeaderStruct();
      } catch (e) {
        this.#header.imageSize = old;
        throw e;
      }
      this.#geo.imageSize = size;
    });
  }

  async setBackingFile(filename: string | undefined, format: string | undefined): Promise<void> {
    // QEMU's bdrv_qed_change_backing_file: rewrite the header with the name right after it.
    const name = filename !== undefined ? Buffer.from(filename, 'utf8') : Buffer.alloc(0);
    if (name.length > QED_MAX_BACKING_NAME || QED_HEADER_STRUCT_SIZE + name.length > this.#geo.headerBytes) {
      throw invalidArgument(`Backing file name '${filename}' does not fit in the QED header (${this.#geo.headerBytes} bytes)`, this.#ectx);
    }
    await this.#alloc.run(async () => {
      const h = this.#header;
      let features = h.features & ~(QED_F_BACKING_FILE | QED_F_BACKING_FORMAT_NO_PROBE);
      if (filename !== undefined) {
        features |= QED_F_BACKING_FILE;
        if (format === 'raw') features |= QED_F_BACKING_FORMAT_NO_PROBE;
      }
      h.features = features;
      h.backingFilenameOffset = filename !== undefined ? QED_HEADER_STRUCT_SIZE : 0;
      h.backingFilenameSize = name.length;
      await this.#file.write(0, Buffer.concat([encodeQedHeader(h), name]));
      this.#backingFile = filename !== undefined ? { filename, ...(format === 'raw' ? { format } : {}) } : undefined;
    });
  }

  async info(): Promise<DriverInfo> {
    return { clusterSize: this.clusterSize, dirtyFlag: (this.#header.features & QED_F_NEED_CHECK) !== 0n };
  }

  async check(repair: RepairMode | undefined): Promise<CheckResult> {
    return this.#alloc.run(() => this.#checkLocked(repair !== undefined));
  }

  /** Run the consistency check; with `repair`, fix what can be fixed and clear need-check when
   *  nothing is left broken (qed_check + qed_check_mark_clean). Mutex held. */
  async #checkLocked(repair: boolean): Promise<CheckResult> {
    if (repair && this.#ctx.readOnly) throw invalidArgument('Cannot repair an image opened read-only', this.#ectx);
    const out = await checkQed({
      file: this.#file,
      rules: this.#rules(),
      tableBytes: this.#geo.tableBytes,
      tableEntries: this.#geo.tableEntries,
      l1TableOffset: this.#geo.l1TableOffset,
      imageSize: this.#geo.imageSize,
      l1: this.#l1,
      readL2: (o) => this.#readL2(o),
      repair,
    });
    if (out.rewrittenL2.length > 0) this.#l2.clear();
    if (out.truncatedTo !== undefined) this.#geo.fileSize = out.truncatedTo;
    if (repair && out.result.corruptions === 0 && out.result.checkErrors === 0 && this.#header.features & QED_F_NEED_CHECK) {
      await this.#file.flush();
      this.#header.features &= ~QED_F_NEED_CHECK;
      await this.#writeHeaderStruct();
      await this.#file.flush();
    }
    return out.result;
  }

  /** Everything is on disk: the image no longer needs a check (QEMU's need-check timer). */
  async #markClean(): Promise<void> {
    if (this.#ctx.readOnly || !(this.#header.features & QED_F_NEED_CHECK)) return;
    await this.#file.flush();
    this.#header.features &= ~QED_F_NEED_CHECK;
    await this.#writeHeaderStruct();
  }

  async flush(): Promise<void> {
    await this.#alloc.run(() => this.#markClean());
  }

  async close(): Promise<void> {
    await this.#alloc.run(() => this.#markClean());
    this.#l2.clear();
  }

  /** Open-time work on a writable image: drop unknown autoclear bits, check if need-check. */
  async prepare(): Promise<void> {
    if (this.#ctx.readOnly) return;
    if (this.#header.autoclearFeatures & ~QED_AUTOCLEAR_FEATURE_MASK) {
      this.#header.autoclearFeatures &= QED_AUTOCLEAR_FEATURE_MASK;
      await this.#writeHeaderStruct();
      await this.#file.flush();
    }
    if (this.#header.features & QED_F_NEED_CHECK) {
      const r = await this.#alloc.run(() => this.#checkLocked(true));
      if (r.corruptions > 0 || r.checkErrors > 0) {
        this.#ctx.warn(`qed: ${this.#ctx.filename} was not closed cleanly and its check found ${r.corruptions} corruptions, ${r.checkErrors} errors`);
      }
    }
  }
}

export const qedDriver: FormatDriver = {
  kind: 'format',
  name: 'qed',
  description: 'QEMU Enhanced Disk (legacy; qcow2 is preferred)',
  supportsBacking: true,
  createOptions: [
    { name: 'backing_file', type: 'path', help: 'File name of a base image' },
    { name: 'backing_fmt', type: 'string', help: 'Image format of the base image' },
    { name: 'cluster_size', type: 'size', default: QED_DEFAULT_CLUSTER_SIZE, min: QED_MIN_CLUSTER_SIZE, max: QED_MAX_CLUSTER_SIZE, powerOfTwo: true, help: 'Cluster size (in bytes)' },
    { name: 'table_size', type: 'size', default: QED_DEFAULT_TABLE_SIZE, min: QED_MIN_TABLE_SIZE, max: QED_MAX_TABLE_SIZE, powerOfTwo: true, help: 'L1/L2 table size (in clusters)' },
  ],

  probe(head) {
    if (head.length < QED_HEADER_STRUCT_SIZE) return 0;
    return head.readUInt32LE(0) === QED_MAGIC ? 100 : 0;
  },

  async create(file, ctx) {
    const badFormat = checkBackingFormatName(typeof ctx.options['backing_fmt'] === 'string' ? (ctx.options['backing_fmt'] as string) : undefined);
    if (badFormat) throw invalidArgument(badFormat, { path: ctx.filename });
    const o = ctx.options;
    const clusterSize = Number(o['cluster_size'] ?? QED_DEFAULT_CLUSTER_SIZE);
    const tableSize = Number(o['table_size'] ?? QED_DEFAULT_TABLE_SIZE);
    const where = { path: ctx.filename };
    if (!isValidClusterSize(clusterSize)) throw invalidArgument(`QED cluster size must be within range [${QED_MIN_CLUSTER_SIZE}, ${QED_MAX_CLUSTER_SIZE}] and power of 2`, where);
    if (!isValidTableSize(tableSize)) throw invalidArgument(`QED table size must be within range [${QED_MIN_TABLE_SIZE}, ${QED_MAX_TABLE_SIZE}] and power of 2`, where);
    const size = Math.ceil(ctx.size / QED_SECTOR_SIZE) * QED_SECTOR_SIZE;
    if (!isValidImageSize(BigInt(size), clusterSize, tableSize)) {
      throw invalidArgument(`QED image size must be a non-zero multiple of cluster size and less than ${maxImageSize(clusterSize, tableSize)} bytes`, where);
    }
    const backing = typeof o['backing_file'] === 'string' && o['backing_file'] !== '' ? (o['backing_file'] as string) : undefined;
    const name = Buffer.from(backing ?? '', 'utf8');
    if (name.length > QED_MAX_BACKING_NAME || QED_HEADER_STRUCT_SIZE + name.length > clusterSize) throw invalidArgument('Backing file name too long', where);
    let features = 0n;
    if (backing !== undefined) {
      features |= QED_F_BACKING_FILE;
      if (o['backing_fmt'] === 'raw') features |= QED_F_BACKING_FORMAT_NO_PROBE;
    }
    const header: QedHeader = {
      magic: QED_MAGIC,
      clusterSize,
      tableSize,
      headerSize: 1,
      features,
      compatFeatures: 0n,
      autoclearFeatures: 0n,
      l1TableOffset: BigInt(clusterSize),
      imageSize: BigInt(size),
      backingFilenameOffset: backing !== undefined ? QED_HEADER_STRUCT_SIZE : 0,
      backingFilenameSize: name.length,
    };
    await file.write(0, Buffer.concat([encodeQedHeader(header), name]));
    // An empty L1 table right after the header cluster: the file ends with it.
    await file.write(clusterSize, Buffer.alloc(clusterSize * tableSize));
  },

  async open(file, ctx) {
    const ectx = { path: ctx.filename, op: 'open' };
    if (file.size < QED_HEADER_STRUCT_SIZE) throw invalidImage(`Image not in QED format (file is ${file.size} bytes, shorter than the ${QED_HEADER_STRUCT_SIZE}-byte header)`, ectx);
    const header = decodeQedHeader(await file.read(0, QED_HEADER_STRUCT_SIZE));
    const geo = validateQedHeader(header, file.size, ectx);
    let backing: { filename: string; format?: string } | undefined;
    if (header.features & QED_F_BACKING_FILE) {
      const raw = await file.read(header.backingFilenameOffset, header.backingFilenameSize);
      const nul = raw.indexOf(0);
      const filename = raw.subarray(0, nul < 0 ? raw.length : nul).toString('utf8');
      if (filename !== '') backing = { filename, ...(header.features & QED_F_BACKING_FORMAT_NO_PROBE ? { format: 'raw' } : {}) };
    }
    const l1 = decodeTable(await file.read(geo.l1TableOffset, geo.tableBytes), geo.tableEntries);
    const node = new QedNode(file, header, geo, l1, ctx, backing);
    await node.prepare();
    return node;
  },
};

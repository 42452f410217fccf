// The parallels format driver (Parallels/Virtuozzo expanding disk images, "ploop"), with QEMU
// 7.2's block/parallels.c behaviour: a 64-byte header, the Block Allocation Table right after it
// (one u32 per cluster: a sector offset in v1 "WithoutFreeSpace" images, a cluster index in v2
// "WithouFreSpacExt" ones, 0 = unallocated), then clusters appended in allocation order. An
// image open for writing carries the "inuse" mark until it is closed; QEMU refuses to open a
// marked image for writing, and its check reports (and with -r all clears) the mark. The format
// extension (dirty bitmaps) is read on read-only opens only, as QEMU does (parallels-ext.c).
// Backing nodes come only from options (QEMU's parallels stores no backing file name).
//
// QEMU keeps the BAT in memory and writes the changed parts at flush and close; so does this
// driver. New clusters are taken at the data end; when that passes the file's end, the file is
// grown by the clusters plus `prealloc-size` (falloc: allocated zeros, truncate: a sparse
// extension), and at close cut back to the data end.
//
// Deliberate differences from QEMU, all on malformed images where QEMU would assert, overflow
// or overwrite its own metadata: writes past the BAT, to clusters the BAT places over the header
// or the BAT itself, and allocations whose offset the BAT cannot express are refused in words;
// a v2 image whose data offset is not on a cluster boundary allocates from the next boundary;
// closing never cuts the file inside the BAT (QEMU cuts at the data end wherever it is).

import type { BitmapCapability, BlockStatus, CheckResult, DriverInfo, FormatDriver, NodeImpl, OpenContext, PersistentBitmap, RepairMode } from '../../block/types.ts';
import type { BlockNode } from '../../block/node.ts';
import { BlockError, corrupt, invalidArgument, notFound, unsupported, type BlockErrorContext } from '../../errors.ts';
import { Mutex } from '../../util/range-lock.ts';
import { optString } from '../../block/options-tree.ts';
import { qemuStrtosz } from '../../block/options-schema.ts';
import {
  DEFAULT_CLUSTER_SIZE,
  HEADER_SIZE,
  INUSE_MAGIC,
  MAX_IMAGE_FACTOR,
  SECTOR,
  batEntryOffset,
  decodeHeader,
  encodeHeader,
  newHeader,
  probeHeader,
  validateHeader,
  type HeaderLayout,
  type ParallelsHeader,
} from './header.ts';
import { readFormatExtension, type ParallelsBitmap } from './extension.ts';

/** prealloc-size default (QEMU parallels_runtime_opts: 128M). */
const DEFAULT_PREALLOC_SIZE = 128 << 20;
type PreallocMode = 'falloc' | 'truncate';
const PREALLOC_MODES: readonly PreallocMode[] = ['falloc', 'truncate'];
/** QEMU refuses a cluster size of INT64_MAX / 2^32 or more. */
const MAX_CREATE_CLUSTER = Math.floor((2 ** 63 - 1) / MAX_IMAGE_FACTOR);
const U32_MAX = 0xffffffff;
/** QEMU's largest single request (BDRV_REQUEST_MAX_BYTES) and a file's memory alignment (the
 *  host page). */
const BDRV_REQUEST_MAX_BYTES = 0x7fffffff - 511;
const QEMU_MEM_ALIGN = 4096;

class ParallelsNode implements NodeImpl {
  readonly size: number;
  readonly alignment = SECTOR;
  readonly #file: BlockNode;
  readonly #layout: HeaderLayout;
  readonly #header: ParallelsHeader;
  /** The header and the BAT entries stored in the file, as one buffer (entries past the file's
   *  end read as 0 and are added when written). */
  #meta: Buffer;
  /** Sectors of #meta changed since the last flush. */
  readonly #dirty = new Set<number>();
  /** First free sector after the data (QEMU s->data_end). */
  #dataEnd: number;
  /** The inuse mark was set when opened (QEMU header_unclean). */
  #unclean: boolean;
  readonly #readOnly: boolean;
  readonly #ctx: OpenContext;
  readonly #ectx: BlockErrorContext;
  readonly #alloc = new Mutex();
  #preallocMode: PreallocMode;
  /** Sectors added beyond the clusters when the file must grow. */
  readonly #preallocSectors: number;
  /** Dirty bitmaps of the format extension (read-only opens). */
  readonly bitmapsLoaded: readonly ParallelsBitmap[];

  constructor(o: {
    file: BlockNode;
    layout: HeaderLayout;
    header: ParallelsHeader;
    meta: Buffer;
    dataEnd: number;
    unclean: boolean;
    ctx: OpenContext;
    preallocMode: PreallocMode;
    preallocSectors: number;
    bitmaps: ParallelsBitmap[];
  }) {
    this.#file = o.file;
    this.#layout = o.layout;
    this.#header = o.header;
    this.#meta = o.meta;
    this.#dataEnd = o.dataEnd;
    this.#unclean = o.unclean;
    this.#ctx = o.ctx;
    this.#readOnly = o.ctx.readOnly;
    this.#ectx = { path: o.ctx.filename };
    this.#preallocMode = o.preallocMode;
    this.#preallocSectors = o.preallocSectors;
    this.bitmapsLoaded = o.bitmaps;
    this.size = o.layout.size;
  }

  /**
   * The extension's bitmaps as QEMU exposes them (in-memory, read-only, not persistent: qemu-nbd
   * --bitmap exports them; nothing can change or store them). Only on read-only opens that found
   * some, as QEMU loads them only there.
   */
  get bitmaps(): BitmapCapability | undefined {
    if (this.bitmapsLoaded.length === 0) return undefined;
    const list: PersistentBitmap[] = this.bitmapsLoaded.map((b) => ({ name: b.name, granularity: b.granularity, enabled: true, inconsistent: false, readOnly: true, bits: b.bits }));
    const find = (name: string): PersistentBitmap => {
      const b = list.find((x) => x.name === name);
      if (!b) throw notFound(`Dirty bitmap '${name}' not found`, this.#ectx);
      return b;
    };
    const readOnly = async (name: string): Promise<never> => {
      find(name);
      throw invalidArgument(`Bitmap '${name}' is readonly and cannot be modified`, this.#ectx);
    };
    return {
      supported: false,
      list: async () => [...list].reverse(),
      lookup: async (name) => find(name),
      add: async () => {
        throw invalidArgument(`Can't store persistent bitmaps to ${this.#ctx.filename}: Operation not supported`, this.#ectx);
      },
      remove: readOnly,
      clear: readOnly,
      setEnabled: readOnly,
      merge: readOnly,
    };
  }

  get #storedEntries(): number {
    return (this.#meta.length - HEADER_SIZE) / 4;
  }

  #entry(i: number): number {
    return i < this.#storedEntries ? this.#meta.readUInt32LE(batEntryOffset(i)) : 0;
  }

  #setEntry(i: number, v: number): void {
    if (i >= this.#storedEntries) {
      const grown = Buffer.alloc(batEntryOffset(i + 1));
      this.#meta.copy(grown);
      this.#meta = grown;
    }
    this.#meta.writeUInt32LE(v, batEntryOffset(i));
    this.#dirty.add(Math.floor(batEntryOffset(i) / SECTOR));
  }

  /** Bytes of the header and the whole BAT. */
  get #batEnd(): number {
    return batEntryOffset(this.#layout.batSize);
  }

  /** Host byte offset of cluster `i`'s data, or undefined when unallocated (QEMU seek_to_sector). */
  #clusterHost(i: number): number | undefined {
    if (i >= this.#layout.batSize) return undefined;
    const e = this.#entry(i);
    if (e === 0) return undefined;
    const host = e * this.#layout.offMultiplier * SECTOR;
    if (!Number.isSafeInteger(host + this.#layout.clusterSize)) {
      throw corrupt(`BAT entry ${i} (${e}) points past what Platter addresses (2^53 bytes)`, { ...this.#ectx, offset: i * this.#layout.clusterSize });
    }
    return host;
  }

  /** The run from `pos` (at most `max` bytes) that is all unallocated, or allocated and
   *  contiguous in the file (QEMU block_status); `host` is where `pos` is. */
  #run(pos: number, max: number): { host: number | undefined; n: number } {
    const cs = this.#layout.clusterSize;
    const first = this.#clusterHost(Math.floor(pos / cs));
    const host = first === undefined ? undefined : first + (pos % cs);
    let n = Math.min(max, cs - (pos % cs));
    // Past the entries the file holds, every cluster is unallocated: no need to look at each.
    const lastStored = Math.min(this.#layout.batSize, this.#storedEntries);
    while (n < max) {
      const i = Math.floor((pos + n) / cs);
      if (i >= lastStored) {
        if (host === undefined) n = max;
        break;
      }
      const next = this.#clusterHost(i);
      if ((next === undefined) !== (host === undefined)) break;
      if (next !== undefined && next !== host! + n) break;
      n = Math.min(max, n + cs);
    }
    return { host, n };
  }

  async read(offset: number, length: number): Promise<Buffer> {
    let out: Buffer | undefined;
    for (let done = 0; done < length; ) {
      const { host, n } = this.#run(offset + done, length - done);
      const part = host !== undefined ? this.#file.read(host, n) : this.#ctx.backing() ? this.#ctx.readBacking(offset + done, n) : undefined;
      if (n === length) return part ?? Buffer.alloc(length);
      out ??= Buffer.alloc(length);
      if (part) (await part).copy(out, done);
      done += n;
    }
    return out ?? Buffer.alloc(0);
  }

  async write(offset: number, data: Buffer): Promise<void> {
    for (let done = 0; done < data.length; ) {
      const { host, n } = await this.#alloc.run(() => this.#allocate(offset + done, data.length - done));
      if (host < this.#batEnd) {
        throw corrupt(`the BAT places guest offset ${offset + done} at host offset ${host}, inside the image's header and BAT; Platter does not write there`, { ...this.#ectx, offset: offset + done });
      }
      await this.#file.write(host, data.subarray(done, done + n));
      done += n;
    }
  }

  /** Where to write [pos, pos+max): the allocated run there, or new clusters for the
   *  unallocated run (QEMU allocate_clusters). Called under #alloc. */
  async #allocate(pos: number, max: number): Promise<{ host: number; n: number }> {
    const run = this.#run(pos, max);
    if (run.host !== undefined) return { host: run.host, n: run.n };
    const L = this.#layout;
    const cs = L.clusterSize;
    const idx = Math.floor(pos / cs);
    const toAllocate = Math.ceil((pos + run.n) / cs) - idx;
    if (idx + toAllocate > L.batSize) {
      throw corrupt(`cannot write at guest offset ${pos}: the image's BAT has ${L.batSize} entries of ${cs} bytes, fewer than its virtual size needs`, { ...this.#ectx, offset: pos });
    }
    if (L.ext && this.#dataEnd % L.tracks !== 0) this.#dataEnd = Math.ceil(this.#dataEnd / L.tracks) * L.tracks;
    if (this.#dataEnd * SECTOR < this.#batEnd) {
      throw corrupt(`the image's data offset (sector ${this.#dataEnd}) lies inside its BAT (which ends at byte ${this.#batEnd}); Platter does not allocate there`, { ...this.#ectx, offset: pos });
    }
    const lastUnit = (this.#dataEnd + (toAllocate - 1) * L.tracks) / L.offMultiplier;
    if (lastUnit > U32_MAX || !Number.isSafeInteger((this.#dataEnd + toAllocate * L.tracks + this.#preallocSectors) * SECTOR)) {
      throw unsupported(`the image file cannot grow further: the BAT cannot point past ${U32_MAX} ${L.ext ? 'clusters' : 'sectors'}`, { ...this.#ectx, offset: pos });
    }
    let space = toAllocate * L.tracks;
    const fileSectors = Math.ceil(this.#file.size / SECTOR); // bdrv_getlength counts whole sectors
    if (this.#dataEnd + space > fileSectors) {
      space += this.#preallocSectors;
      await this.#grow(this.#dataEnd * SECTOR, (this.#dataEnd + space) * SECTOR);
    }
    if (this.#ctx.backing()) {
      // Copy the backing data of the whole new clusters first (QEMU does, for every allocation).
      const cow = await this.#ctx.readBacking(idx * cs, toAllocate * cs);
      await this.#file.write(this.#dataEnd * SECTOR, cow);
    }
    for (let i = 0; i < toAllocate; i++) {
      this.#setEntry(idx + i, this.#dataEnd / L.offMultiplier);
      this.#dataEnd += L.tracks;
    }
    return { host: this.#clusterHost(idx)! + (pos % cs), n: run.n };
  }

  /** Make [from, to) of the file zeros that read back as such (QEMU: write-zeroes for falloc,
   *  a truncate for the truncate mode). */
  async #grow(from: number, to: number): Promise<void> {
    const f = this.#file;
    if (this.#preallocMode === 'truncate') {
      try {
        await f.truncate(to, {});
        return;
      } catch (e) {
        if (!(e instanceof BlockError && e.kind === 'Unsupported')) throw e;
        this.#preallocMode = 'falloc';
      }
    }
    // Zeros inside the file, then allocated space past its end (QEMU's write-zeroes there is a
    // zero-range fallocate: the blocks are allocated).
    if (from < f.size) await f.writeZeroes(from, Math.min(to, f.size) - from);
    if (to > f.size) {
      try {
        await f.truncate(to, { preallocation: 'falloc' });
      } catch (e) {
        if (!(e instanceof BlockError && e.kind === 'Unsupported')) throw e;
        await f.writeZeroes(f.size, to - f.size);
      }
    }
  }

  /** QEMU's parallels has bdrv_has_zero_init_1. */
  hasZeroInit(): boolean {
    return true;
  }

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    const { host, n } = this.#run(offset, length);
    if (host === undefined) return { offset, length: n, data: false, zero: this.#ctx.backing() === undefined, allocated: false };
    // QEMU answers DATA | OFFSET_VALID without asking the file (no RECURSE).
    return { offset, length: n, data: true, zero: false, allocated: true, hostOffset: host, hostNode: this.#file };
  }

  async info(): Promise<DriverInfo> {
    return {};
  }

  /** Write the changed sectors of the header and BAT (QEMU parallels_co_flush_to_os). */
  async #writeDirty(): Promise<void> {
    const sectors = [...this.#dirty].sort((a, b) => a - b);
    this.#dirty.clear();
    for (const s of sectors) {
      const start = s * SECTOR;
      await this.#file.write(start, this.#meta.subarray(start, Math.min(start + SECTOR, this.#meta.length)));
    }
  }

  async flush(): Promise<void> {
    if (this.#readOnly) return;
    await this.#alloc.run(() => this.#writeDirty());
  }

  /** The header as it is in memory, written and flushed (QEMU parallels_update_header). */
  async #writeHeader(): Promise<void> {
    encodeHeader(this.#header).copy(this.#meta, 0);
    await this.#file.write(0, this.#meta.subarray(0, HEADER_SIZE));
    await this.#file.flush();
  }

  /** Set the inuse mark (QEMU does on every read-write open). */
  async markInUse(): Promise<void> {
    this.#header.inuse = INUSE_MAGIC;
    await this.#writeHeader();
  }

  /** QEMU's parallels_co_check, with its counts and words. */
  async check(repair: RepairMode | undefined): Promise<CheckResult> {
    return this.#alloc.run(async () => {
      const fixErrors = repair === 'all';
      const fixLeaks = repair !== undefined;
      const L = this.#layout;
      const cs = L.clusterSize;
      // QEMU's bdrv_getlength: the file's length rounded up to a whole sector.
      const size = Math.ceil(this.#file.size / SECTOR) * SECTOR;
      const messages: string[] = [];
      const r: CheckResult = { corruptions: 0, leaks: 0, checkErrors: 0, corruptionsFixed: 0, leaksFixed: 0, messages, totalClusters: L.batSize, compressedClusters: 0, allocatedClusters: 0, fragmentedClusters: 0 };
      if (this.#unclean) {
        messages.push(`${fixErrors ? 'Repairing' : 'ERROR'} image was not closed correctly`);
        r.corruptions++;
        if (fixErrors) {
          // Closing clears the mark.
          r.corruptionsFixed++;
          this.#unclean = false;
        }
      }
      let high = 0;
      let prev = 0;
      let flushBat = false;
      const n = Math.min(L.batSize, this.#storedEntries);
      for (let i = 0; i < n; i++) {
        const off = this.#entry(i) * L.offMultiplier * SECTOR;
        if (off === 0) {
          prev = 0;
          continue;
        }
        if (off > size) {
          messages.push(`${fixErrors ? 'Repairing' : 'ERROR'} cluster ${i} is outside image`);
          r.corruptions++;
          if (fixErrors) {
            prev = 0;
            this.#setEntry(i, 0);
            r.corruptionsFixed++;
            flushBat = true;
            continue;
          }
        }
        r.allocatedClusters!++;
        if (off > high) high = off;
        if (prev !== 0 && prev + cs !== off) r.fragmentedClusters!++;
        prev = off;
      }
      if (flushBat) {
        try {
          encodeHeader(this.#header).copy(this.#meta, 0);
          await this.#file.write(0, this.#meta);
          await this.#file.flush();
          this.#dirty.clear();
        } catch (e) {
          r.checkErrors++;
          r.failed = e instanceof Error ? e.message : String(e);
          return r;
        }
      }
      r.imageEndOffset = high + cs;
      if (size > r.imageEndOffset) {
        const count = Math.ceil((size - r.imageEndOffset) / cs);
        messages.push(`${fixLeaks ? 'Repairing' : 'ERROR'} space leaked at the end of the image ${size - r.imageEndOffset}`);
        r.leaks += count;
        if (fixLeaks) {
          try {
            await this.#file.truncate(r.imageEndOffset, { shrink: true, exact: true });
          } catch (e) {
            messages.push(e instanceof Error ? e.message : String(e));
            r.checkErrors++;
            return r;
          }
          r.leaksFixed += count;
        }
      }
      return r;
    });
  }

  /** QEMU's parallels_close: the BAT, the header without the inuse mark, and the file cut (or
   *  grown) to the data end; errors of the last step ignored, as QEMU does. */
  async close(): Promise<void> {
    if (this.#readOnly) return;
    await this.#alloc.run(async () => {
      await this.#writeDirty();
      this.#header.inuse = 0;
      await this.#writeHeader();
      // Never below the BAT (a data offset inside it would make QEMU cut its own table).
      const end = Math.max(this.#dataEnd * SECTOR, Math.min(this.#batEnd, this.#file.size));
      if (Number.isSafeInteger(end)) await this.#file.truncate(end, { shrink: true, exact: true }).catch(() => {});
    });
  }
}

/** The open options (QEMU parallels_runtime_opts). */
function runtimeOptions(ctx: OpenContext, tracks: number): { mode: PreallocMode; sectors: number } {
  const rawSize = ctx.options['prealloc-size'];
  let bytes = DEFAULT_PREALLOC_SIZE;
  if (rawSize !== undefined) {
    // Any u64 QEMU accepts; past 2^53 it only makes the first allocation fail, here as there.
    const big = typeof rawSize === 'number' ? (Number.isSafeInteger(rawSize) && rawSize >= 0 ? BigInt(rawSize) : 'invalid') : qemuStrtosz(String(rawSize));
    const v = typeof big === 'bigint' ? Number(big) : undefined;
    if (v === undefined) {
      throw invalidArgument("Parameter 'prealloc-size' expects a non-negative number below 2^64\nOptional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.");
    }
    bytes = v;
  }
  const rawMode = optString(ctx.options, 'prealloc-mode') ?? 'falloc';
  if (!(PREALLOC_MODES as readonly string[]).includes(rawMode)) throw invalidArgument(`invalid parameter value: ${rawMode}`);
  return { mode: rawMode as PreallocMode, sectors: Math.max(tracks, Math.floor(bytes / SECTOR)) };
}

export const parallelsDriver: FormatDriver = {
  kind: 'format',
  name: 'parallels',
  description: 'Parallels / Virtuozzo expanding disk image (ploop; v1 and v2 headers)',
  supportsBacking: true,
  qemuNoGetInfo: true,
  createOptions: [
    { name: 'size', type: 'size', help: 'Virtual disk size' },
    { name: 'cluster_size', type: 'size', default: DEFAULT_CLUSTER_SIZE, help: 'Parallels image cluster size' },
    // The file protocol's options, as qemu-img takes them for parallels. QEMU creates the file
    // empty (the size goes to the format), so preallocation has no effect beyond its check.
    { name: 'preallocation', type: 'string', help: 'Preallocation mode (allowed values: off, falloc, full)', advanced: true },
    { name: 'nocow', type: 'bool', default: false, help: 'Turn off copy-on-write (valid only on btrfs)', advanced: true },
    { name: 'extent_size_hint', type: 'size', help: 'Extent size hint for the image file, 0 to disable', advanced: true },
  ],
  formattingOptions: [['size'], ['cluster_size', String(DEFAULT_CLUSTER_SIZE)], ['nocow'], ['preallocation'], ['extent_size_hint']],

  probe(head) {
    return probeHeader(head);
  },

  async create(file, ctx) {
    const ectx = { path: ctx.filename };
    // The file protocol checks its preallocation first (raw_co_create_opts).
    const prealloc = ctx.options['preallocation'];
    if (prealloc !== undefined) {
      const p = String(prealloc);
      if (p === 'metadata') throw unsupported('Unsupported preallocation mode: metadata', ectx);
      if (!['off', 'falloc', 'full'].includes(p)) throw invalidArgument(`invalid parameter value: ${p}`, ectx);
    }
    // QEMU rounds both up to a sector silently, then checks them.
    const size = Math.ceil(ctx.size / SECTOR) * SECTOR;
    const given = ctx.options['cluster_size'];
    const cluster = Math.ceil((typeof given === 'number' ? given : DEFAULT_CLUSTER_SIZE) / SECTOR) * SECTOR;
    if (cluster >= MAX_CREATE_CLUSTER) throw invalidArgument('Cluster size is too large', ectx);
    if (size >= MAX_IMAGE_FACTOR * cluster) throw invalidArgument('Image size is too large for this cluster size', ectx);
    const { header, batSectors } = newHeader(size, cluster);
    const first = Buffer.alloc(SECTOR);
    encodeHeader(header).copy(first);
    await file.write(0, first);
    // The rest of the BAT area: zeros, allocated as QEMU's write-zeroes allocates them.
    const end = batSectors * SECTOR;
    if (end > SECTOR) {
      try {
        await file.truncate(end, { preallocation: 'falloc' });
      } catch (e) {
        if (!(e instanceof BlockError && e.kind === 'Unsupported')) throw e;
        await file.writeZeroes(SECTOR, end - SECTOR);
      }
    }
  },

  async open(file, ctx) {
    const ectx = { path: ctx.filename };
    const header = decodeHeader(await file.read(0, HEADER_SIZE));
    const layout = validateHeader(header, ectx);
    // The BAT entries the file holds; those past its end read as 0 (QEMU reads zeros there).
    const batBytes = 4 * layout.batSize;
    const storedEntries = Math.max(0, Math.min(layout.batSize, Math.floor((file.size - HEADER_SIZE) / 4)));
    const meta = Buffer.alloc(HEADER_SIZE + 4 * storedEntries);
    encodeHeader(header).copy(meta);
    if (storedEntries > 0) (await file.read(HEADER_SIZE, 4 * storedEntries)).copy(meta, HEADER_SIZE);
    // data_end in sectors; without a data offset QEMU takes the BAT's end in *bytes* as a sector
    // count (its arithmetic, kept: new clusters go where QEMU would put them).
    let dataEnd = header.dataOff !== 0 ? header.dataOff : Math.ceil((HEADER_SIZE + batBytes) / SECTOR) * SECTOR;
    // QEMU reads the header and the whole BAT in one request (rounded up to its memory alignment
    // unless the data starts sooner, in its mixed units); past its largest request that read
    // fails with EIO, worded by the generic open.
    let headerSize = Math.ceil((HEADER_SIZE + batBytes) / QEMU_MEM_ALIGN) * QEMU_MEM_ALIGN;
    if (dataEnd < headerSize) headerSize = HEADER_SIZE + batBytes;
    if (headerSize > BDRV_REQUEST_MAX_BYTES) throw new BlockError('Io', `Could not open '${ctx.filename}': Input/output error`, ectx, { errno: 'EIO' });
    for (let i = 0; i < storedEntries; i++) {
      const off = meta.readUInt32LE(batEntryOffset(i)) * layout.offMultiplier;
      if (off >= dataEnd) dataEnd = off + layout.tracks;
    }
    const unclean = header.inuse === INUSE_MAGIC;
    if (unclean && !ctx.readOnly && !ctx.forCheck) {
      throw new BlockError('Permission', 'parallels: Image was not closed correctly; cannot be opened read/write', ectx);
    }
    const rt = runtimeOptions(ctx, layout.tracks);
    let bitmaps: ParallelsBitmap[] = [];
    if (header.extOff !== 0n) {
      if (!ctx.readOnly) ctx.warn('warning: Format Extension ignored in RW mode');
      else {
        bitmaps = await readFormatExtension(header.extOff * BigInt(SECTOR), { file, clusterSize: layout.clusterSize, totalSectors: BigInt(layout.size / SECTOR), workers: ctx.workers, ectx });
      }
    }
    const node = new ParallelsNode({ file, layout, header, meta, dataEnd, unclean, ctx, preallocMode: rt.mode, preallocSectors: rt.sectors, bitmaps });
    if (!ctx.readOnly) await node.markInUse();
    return node;
  },
};

// Persistent dirty bitmaps of qcow2 v3 (docs/interop/qcow2.txt "Bitmaps extension", "Bitmap
// directory", "Bitmap table", "Bitmap data"; QEMU block/qcow2-bitmap.c, block/dirty-bitmap.c and
// block/monitor/bitmap-qmp-cmds.c for the rules and the words of every error).
//
// The codecs (extension, directory, table) are pure functions. Qcow2Bitmaps is the node's
// in-memory set of bitmaps with QEMU's life cycle, so the file goes through the same states a
// QEMU process puts it in:
//   - load (first bitmap operation, or before the first change of guest data): every bitmap is
//     read; those marked in-use on disk are "inconsistent" (their bits are unusable) and the
//     others are marked in-use on disk, in place (qcow2_load_dirty_bitmaps). A process killed from
//     here on leaves them in-use, as QEMU leaves them after a crash.
//   - changes (add, clear, enable, disable, merge) are made in memory; remove is written at once
//     (qcow2_co_remove_persistent_dirty_bitmap);
//   - store, at close (qcow2_store_persistent_dirty_bitmaps): each consistent bitmap is written to
//     new clusters, then a new directory, the header, and the old clusters are freed. Every
//     cluster is allocated and freed through the image's refcounts (refcount.ts).
//
// Guest writes and bitmaps: Platter updates persistent bitmaps as QEMU does. Before the first
// change of guest data (write, write-zeroes, discard, compressed write, reservation) the bitmaps
// are loaded and marked in-use; each change sets the bits of every enabled ("auto") consistent
// bitmap over its range (before the data lands, so a bitmap is never behind the data); close
// stores them. Disabled bitmaps keep their bits, as in QEMU. Making a layer empty (commit) and
// reverting to a snapshot change no bits, as QEMU's bdrv_make_empty and snapshot goto do not.
// Resizing resizes the bitmaps (new bits clear) and is refused while one is inconsistent.

import { corrupt, invalidArgument, notFound, BlockError } from '../../errors.ts';
import { DirtyBitmap } from '../../block/dirty-bitmap.ts';
import type { BitmapCapability, PersistentBitmap } from '../../block/types.ts';
import { AUTOCLEAR_BITMAPS } from './header.ts';
import type { Qcow2Image } from './image.ts';

/** Bitmaps extension payload: nb_bitmaps u32, reserved u32, directory size u64, offset u64. */
export const BITMAPS_EXT_SIZE = 24;
/** Fixed part of a bitmap directory entry (qcow2.txt "Bitmap directory": bytes 0..23). */
const DIR_ENTRY_FIXED = 24;
/** QEMU QCOW2_MAX_BITMAPS: what nb_bitmaps (u32) is allowed to count up to. */
export const MAX_BITMAPS = 65535;
/** QEMU QCOW2_MAX_BITMAP_DIRECTORY_SIZE: 1 KiB of directory per bitmap at most. */
export const MAX_DIRECTORY_BYTES = 1024 * MAX_BITMAPS;
/** QEMU BME_MAX_TABLE_SIZE: bitmap table entries (the table's bytes fit in an int). */
const MAX_TABLE_ENTRIES = 0x8000000;
/** QEMU BME_MAX_PHYS_SIZE: bitmap data bytes, bounding a bitmap's size in memory (512 MiB). */
const MAX_PHYS_BYTES = 0x20000000;
/** Granularity limits (qcow2.txt: granularity_bits 9..31). */
const MIN_GRANULARITY_BITS = 9;
const MAX_GRANULARITY_BITS = 31;
/** QEMU BME_MAX_NAME_SIZE = BDRV_BITMAP_MAX_NAME_SIZE. */
export const MAX_NAME_BYTES = 1023;
/** Bitmap flags (bitmap directory entry "flags"); other bits are reserved. */
export const BME_FLAG_IN_USE = 1 << 0;
export const BME_FLAG_AUTO = 1 << 1;
const BME_RESERVED_FLAGS = ~(BME_FLAG_IN_USE | BME_FLAG_AUTO) >>> 0;
/** The only bitmap type (qcow2.txt "type": 1 = dirty tracking bitmap). */
const BT_DIRTY_TRACKING = 1;
/** Bitmap table entry: bits 9..55 the data cluster offset, bit 0 "all ones", the rest reserved. */
const BMT_OFFSET_MASK = 0x00fffffffffffe00n;
const BMT_RESERVED_MASK = 0xff000000000001fen;
const BMT_ALL_ONES = 1n;
const TABLE_ENTRY_BYTES = 8;

// ------------------------------------------------------------------------------------ codecs

export interface BitmapsExt {
  count: number;
  dirSize: number;
  dirOffset: number;
}

export function decodeBitmapsExt(b: Buffer): BitmapsExt {
  return { count: b.readUInt32BE(0), dirSize: Number(b.readBigUInt64BE(8)), dirOffset: Number(b.readBigUInt64BE(16)) };
}

export function encodeBitmapsExt(e: BitmapsExt): Buffer {
  const b = Buffer.alloc(BITMAPS_EXT_SIZE);
  b.writeUInt32BE(e.count, 0);
  b.writeBigUInt64BE(BigInt(e.dirSize), 8);
  b.writeBigUInt64BE(BigInt(e.dirOffset), 16);
  return b;
}

/** One bitmap directory entry (qcow2.txt "Bitmap directory"). */
export interface BitmapEntry {
  name: string;
  flags: number;
  granularityBits: number;
  tableOffset: number;
  /** Entries of the bitmap table. */
  tableSize: number;
  type: number;
}

/** Bytes of a directory entry with a name of `nameBytes` bytes (QEMU calc_dir_entry_size). */
export function dirEntrySize(nameBytes: number): number {
  return Math.ceil((DIR_ENTRY_FIXED + nameBytes) / 8) * 8;
}

/** Bits of a bitmap over `size` guest bytes (QEMU: DIV_ROUND_UP(len, granularity)). */
function bitsFor(size: number, granularityBits: number): number {
  return Math.ceil(size / 2 ** granularityBits);
}

/** Bitmap table entries for `size` guest bytes: one per cluster of bitmap data. */
export function tableEntriesFor(size: number, granularityBits: number, clusterSize: number): number {
  return Math.ceil(Math.ceil(bitsFor(size, granularityBits) / 8) / clusterSize);
}

/** QEMU check_dir_entry: false when the entry breaks the format's constraints. */
function entryValid(e: BitmapEntry, clusterSize: number, imageSize: number): boolean {
  if (e.tableSize === 0 || e.tableOffset === 0 || e.tableOffset % clusterSize !== 0 || e.tableSize > MAX_TABLE_ENTRIES) return false;
  if (e.granularityBits > MAX_GRANULARITY_BITS || e.granularityBits < MIN_GRANULARITY_BITS) return false;
  if ((e.flags & BME_RESERVED_FLAGS) !== 0 || Buffer.byteLength(e.name) > MAX_NAME_BYTES || e.type !== BT_DIRTY_TRACKING) return false;
  const physBytes = e.tableSize * clusterSize;
  if (physBytes > MAX_PHYS_BYTES) return false;
  // A consistent bitmap's table must cover the image (an in-use one may be stale after a resize).
  return (e.flags & BME_FLAG_IN_USE) !== 0 || imageSize <= physBytes * 8 * 2 ** e.granularityBits;
}

/**
 * Decode the bitmap directory `dir` holding `count` entries, checked as QEMU's bitmap_list_load
 * checks it (its messages): extra data is refused, each entry must satisfy the constraints, and
 * the entries must fill the directory exactly.
 */
export function decodeBitmapDirectory(dir: Buffer, count: number, clusterSize: number, imageSize: number): BitmapEntry[] {
  if (dir.length === 0) throw corrupt('Requested bitmap directory size is zero');
  if (dir.length > MAX_DIRECTORY_BYTES) throw corrupt('Requested bitmap directory size is too big');
  const out: BitmapEntry[] = [];
  let p = 0;
  while (p < dir.length) {
    if (p + DIR_ENTRY_FIXED > dir.length) throw corrupt('Broken bitmap directory');
    if (out.length + 1 > count) throw corrupt('More bitmaps found than specified in header extension');
    const nameSize = dir.readUInt16BE(p + 18);
    const extra = dir.readUInt32BE(p + 20);
    const size = dirEntrySize(nameSize + extra);
    if (p + size > dir.length) throw corrupt('Broken bitmap directory');
    if (extra !== 0) throw corrupt('Bitmap extra data is not supported');
    const e: BitmapEntry = {
      tableOffset: Number(dir.readBigUInt64BE(p)),
      tableSize: dir.readUInt32BE(p + 8),
      flags: dir.readUInt32BE(p + 12),
      type: dir[p + 16]!,
      granularityBits: dir[p + 17]!,
      name: dir.toString('utf8', p + DIR_ENTRY_FIXED, p + DIR_ENTRY_FIXED + nameSize),
    };
    if (!entryValid(e, clusterSize, imageSize)) throw corrupt(`Bitmap '${e.name}' doesn't satisfy the constraints`);
    out.push(e);
    p += size;
  }
  if (out.length !== count) throw corrupt('Less bitmaps found than specified in header extension');
  return out;
}

/** Encode a bitmap directory (QEMU bitmap_list_store): entries in order, each padded to 8. */
export function encodeBitmapDirectory(entries: readonly BitmapEntry[]): Buffer {
  const parts = entries.map((e) => {
    const name = Buffer.from(e.name, 'utf8');
    const b = Buffer.alloc(dirEntrySize(name.length));
    b.writeBigUInt64BE(BigInt(e.tableOffset), 0);
    b.writeUInt32BE(e.tableSize, 8);
    b.writeUInt32BE(e.flags >>> 0, 12);
    b[16] = e.type;
    b[17] = e.granularityBits;
    b.writeUInt16BE(name.length, 18);
    b.writeUInt32BE(0, 20);
    name.copy(b, DIR_ENTRY_FIXED);
    return b;
  });
  return Buffer.concat(parts);
}

/** A decoded bitmap table entry: the data cluster (0 = none) and, without one, all ones. */
export interface TableEntry {
  offset: number;
  allOnes: boolean;
}

/** Decode a bitmap table; undefined for an entry QEMU's check_table_entry refuses. */
export function decodeBitmapTableEntry(v: bigint, clusterSize: number): TableEntry | undefined {
  if (v & BMT_RESERVED_MASK) return undefined;
  const offset = Number(v & BMT_OFFSET_MASK);
  if (offset !== 0 && (v & BMT_ALL_ONES || offset % clusterSize !== 0)) return undefined;
  return { offset, allOnes: offset === 0 && (v & BMT_ALL_ONES) !== 0n };
}

/** Decode `size` entries of a bitmap table, refusing any QEMU refuses (-EINVAL). */
export function decodeBitmapTable(buf: Buffer, size: number, clusterSize: number): TableEntry[] {
  const out: TableEntry[] = [];
  for (let i = 0; i < size; i++) {
    const e = decodeBitmapTableEntry(buf.readBigUInt64BE(i * TABLE_ENTRY_BYTES), clusterSize);
    if (!e) throw invalidArgument('Invalid argument');
    out.push(e);
  }
  return out;
}

export function encodeBitmapTable(entries: readonly TableEntry[]): Buffer {
  const b = Buffer.alloc(entries.length * TABLE_ENTRY_BYTES);
  entries.forEach((e, i) => b.writeBigUInt64BE(e.offset ? BigInt(e.offset) : e.allOnes ? BMT_ALL_ONES : 0n, i * TABLE_ENTRY_BYTES));
  return b;
}

// ------------------------------------------------------------------- reading (info, check)

export interface BitmapDirectory {
  offset: number;
  size: number;
  bitmaps: BitmapEntry[];
}

/** The image's bitmaps as QEMU sees them: none unless the extension is there and its autoclear
 *  bit is set (a program without bitmap support cleared it: QEMU then ignores the extension). */
export async function readBitmapDirectory(img: Qcow2Image): Promise<BitmapDirectory | undefined> {
  const raw = img.header.bitmapsExt;
  if (!raw || raw.length < BITMAPS_EXT_SIZE || !(img.header.autoclear & AUTOCLEAR_BITMAPS)) return undefined;
  const ext = decodeBitmapsExt(raw);
  if (ext.count === 0) return undefined;
  if (ext.dirSize > MAX_DIRECTORY_BYTES || ext.dirOffset % img.clusterSize !== 0 || ext.dirOffset + ext.dirSize > img.file.size) {
    throw corrupt(`Bitmap directory at 0x${ext.dirOffset.toString(16)} (${ext.dirSize} bytes) is invalid for a file of ${img.file.size} bytes`, img.ctx);
  }
  const dir = await img.file.read(ext.dirOffset, ext.dirSize);
  return { offset: ext.dirOffset, size: ext.dirSize, bitmaps: decodeBitmapDirectory(dir, ext.count, img.clusterSize, img.size) };
}

/** qemu-img info's "bitmaps" list (QEMU qcow2_get_bitmap_info_list): directory order. */
export async function bitmapInfo(img: Qcow2Image): Promise<{ flags: string[]; name: string; granularity: number }[]> {
  const d = await readBitmapDirectory(img);
  if (!d) return [];
  return d.bitmaps.map((b) => ({
    flags: [...(b.flags & BME_FLAG_IN_USE ? ['in-use'] : []), ...(b.flags & BME_FLAG_AUTO ? ['auto'] : [])],
    name: b.name,
    granularity: 2 ** b.granularityBits,
  }));
}

async function readTable(img: Qcow2Image, offset: number, size: number): Promise<TableEntry[]> {
  const bytes = size * TABLE_ENTRY_BYTES;
  if (offset + bytes > img.file.size) throw corrupt(`Bitmap table at 0x${offset.toString(16)} lies past the end of the file`, img.ctx);
  return decodeBitmapTable(await img.file.read(offset, bytes), size, img.clusterSize);
}

/** Every host byte range the bitmaps use (directory, tables, data clusters), for check. */
export async function bitmapRanges(img: Qcow2Image): Promise<[number, number][]> {
  const d = await readBitmapDirectory(img);
  if (!d) return [];
  const out: [number, number][] = [[d.offset, d.size]];
  for (const b of d.bitmaps) {
    out.push([b.tableOffset, b.tableSize * TABLE_ENTRY_BYTES]);
    for (const e of await readTable(img, b.tableOffset, b.tableSize)) if (e.offset) out.push([e.offset, img.clusterSize]);
  }
  return out;
}

// ------------------------------------------------------------------ the in-memory bitmap set

/** A bitmap loaded into memory (QEMU's BdrvDirtyBitmap of a persistent bitmap). */
interface Loaded {
  name: string;
  bits: DirtyBitmap;
  enabled: boolean;
  /** In use on disk when loaded: its bits are unusable until it is removed. */
  inconsistent: boolean;
}

/** The bits QEMU's hbitmap serializes per cluster of bitmap data. */
function coverageBits(clusterSize: number): number {
  return clusterSize * 8;
}

export class Qcow2Bitmaps implements BitmapCapability {
  readonly #img: Qcow2Image;
  /** Run `fn` with the image to itself and metadata written through (the node's exclusive). */
  readonly #exclusive: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Loaded bitmaps, newest first (QEMU's bs->dirty_bitmaps list: each new one goes in front). */
  #list: Loaded[] | undefined;
  /** Something in memory differs from the file: store at close. */
  #dirty = false;

  constructor(img: Qcow2Image, exclusive: <T>(fn: () => Promise<T>) => Promise<T>) {
    this.#img = img;
    this.#exclusive = exclusive;
  }

  get supported(): boolean {
    return this.#img.header.version >= 3;
  }

  /** Bitmaps are loaded and enabled ones must be told of guest writes. */
  get tracking(): boolean {
    return this.#list !== undefined && this.#list.some((b) => b.enabled && !b.inconsistent);
  }

  /** The image has bitmaps a guest write must be recorded in (loaded or not). */
  get present(): boolean {
    return this.#list ? this.#list.length > 0 : !!(this.#img.header.bitmapsExt && this.#img.header.autoclear & AUTOCLEAR_BITMAPS);
  }

  /** Record a change of guest bytes [offset, offset+length) in every enabled bitmap. */
  markDirty(offset: number, length: number): void {
    if (!this.#list) return;
    for (const b of this.#list) {
      if (!b.enabled || b.inconsistent) continue;
      b.bits.setRange(offset, length);
      this.#dirty = true;
    }
  }

  /** Load the bitmaps (QEMU qcow2_load_dirty_bitmaps): consistent ones are read and, on a
   *  writable image, marked in-use on disk in place. Caller holds the image's metadata lock. */
  async loadLocked(): Promise<void> {
    if (this.#list) return;
    const img = this.#img;
    const dir = await readBitmapDirectory(img);
    const list: Loaded[] = [];
    if (dir) {
      for (const e of dir.bitmaps) {
        const bits = new DirtyBitmap(img.size, 2 ** e.granularityBits);
        const inconsistent = (e.flags & BME_FLAG_IN_USE) !== 0;
        if (!inconsistent) await this.#loadData(e, bits);
        list.unshift({ name: e.name, bits, enabled: (e.flags & BME_FLAG_AUTO) !== 0, inconsistent });
      }
      if (!img.readOnly && dir.bitmaps.some((e) => !(e.flags & BME_FLAG_IN_USE))) {
        for (const e of dir.bitmaps) e.flags |= BME_FLAG_IN_USE;
        await this.#writeDirectoryInPlace(dir);
        this.#dirty = true; // the in-use marks are cleared only by storing at close
      }
    } else if (!img.readOnly && img.header.bitmapsExt && !(img.header.autoclear & AUTOCLEAR_BITMAPS)) {
      // A program without bitmap support changed the image: QEMU drops the stale extension
      // (its clusters leak until 'qemu-img check -r').
      delete img.header.bitmapsExt;
      await img.writeHeader();
    }
    this.#list = list;
  }

  /** QEMU load_bitmap_data: the table, then each data cluster (all-ones entries set bits). */
  async #loadData(e: BitmapEntry, bits: DirtyBitmap): Promise<void> {
    const img = this.#img;
    const cs = img.clusterSize;
    let table: TableEntry[];
    try {
      table = await readTable(img, e.tableOffset, e.tableSize);
    } catch (err) {
      throw corrupt(`Could not read bitmap_table table from image for bitmap '${e.name}': ${(err as Error).message}`, img.ctx, { code: 'Worded' });
    }
    if (table.length !== tableEntriesFor(img.size, e.granularityBits, cs)) throw corrupt(`Could not read bitmap '${e.name}' from image: Invalid argument`, img.ctx, { code: 'Worded' });
    const per = coverageBits(cs);
    for (let i = 0; i < table.length; i++) {
      const t = table[i]!;
      if (t.offset) {
        if (t.offset + cs > img.file.size) throw corrupt(`Could not read bitmap '${e.name}' from image: data cluster 0x${t.offset.toString(16)} lies past the end of the file`, img.ctx, { code: 'Worded' });
        bits.deserialize(i * per, per, await img.file.read(t.offset, cs));
      } else if (t.allOnes) bits.deserializeOnes(i * per, per);
    }
  }

  /** QEMU update_ext_header_and_dir_in_place: autoclear off, directory rewritten where it is,
   *  autoclear on, each step durable. */
  async #writeDirectoryInPlace(dir: BitmapDirectory): Promise<void> {
    const img = this.#img;
    const buf = encodeBitmapDirectory(dir.bitmaps);
    if (buf.length !== dir.size) throw corrupt('Bitmap directory would change size in place', img.ctx);
    img.header.autoclear &= ~AUTOCLEAR_BITMAPS;
    await img.writeHeader();
    await img.writeMeta(dir.offset, buf);
    await img.file.flush();
    img.header.autoclear |= AUTOCLEAR_BITMAPS;
    await img.writeHeader();
  }

  /** Write a directory of `entries` at a new place (none: drop the extension), point the header
   *  at it and free the old one (QEMU update_ext_header_and_dir). */
  async #replaceDirectory(entries: BitmapEntry[]): Promise<void> {
    const img = this.#img;
    const cs = img.clusterSize;
    const old = img.header.bitmapsExt && img.header.autoclear & AUTOCLEAR_BITMAPS ? decodeBitmapsExt(img.header.bitmapsExt) : undefined;
    if (entries.length > 0) {
      if (entries.length > MAX_BITMAPS) throw invalidArgument('Failed to update bitmap extension: Invalid argument', img.ctx);
      const buf = encodeBitmapDirectory(entries);
      if (buf.length > MAX_DIRECTORY_BYTES) throw invalidArgument('Failed to update bitmap extension: Invalid argument', img.ctx);
      const offset = await img.refcounts.allocate(Math.ceil(buf.length / cs));
      await img.writeMeta(offset, buf);
      await img.barrier();
      img.header.bitmapsExt = encodeBitmapsExt({ count: entries.length, dirSize: buf.length, dirOffset: offset });
      img.header.autoclear |= AUTOCLEAR_BITMAPS;
    } else {
      delete img.header.bitmapsExt;
      img.header.autoclear &= ~AUTOCLEAR_BITMAPS;
    }
    await img.writeHeader();
    if (old && old.dirSize > 0) {
      await img.refcounts.update(old.dirOffset, old.dirSize, -1);
      await img.refcounts.commit();
    }
  }

  /** Free a bitmap's data clusters, then its table (QEMU free_bitmap_clusters). */
  async #freeTable(offset: number, size: number): Promise<void> {
    const img = this.#img;
    let table: TableEntry[];
    try {
      table = await readTable(img, offset, size);
    } catch {
      return; // QEMU leaves an unreadable table's clusters leaked
    }
    const cs = img.clusterSize;
    const freed: number[] = [];
    for (const t of table) if (t.offset) freed.push(...(await img.refcounts.update(t.offset, cs, -1)));
    await img.refcounts.update(offset, size * TABLE_ENTRY_BYTES, -1);
    await img.refcounts.commit();
    // Freed data clusters are discarded in the file (QEMU frees them with QCOW2_DISCARD_ALWAYS).
    await img.barrier();
    for (const c of freed) if (c * cs + cs <= img.file.size) await img.file.discard(c * cs, cs);
  }

  /** Write a bitmap's data and table to new clusters (QEMU store_bitmap): a cluster for each
   *  part with a bit set, in order, then the table. */
  async #storeBitmap(b: Loaded): Promise<{ offset: number; size: number }> {
    const img = this.#img;
    const cs = img.clusterSize;
    const per = coverageBits(cs);
    const size = tableEntriesFor(b.bits.size, Math.log2(b.bits.granularity), cs);
    if (size > MAX_TABLE_ENTRIES || size * cs > MAX_PHYS_BYTES) throw invalidArgument(`Bitmap '${b.name}' is too big`, img.ctx);
    const table: TableEntry[] = [];
    for (let i = 0; i < size; i++) {
      const data = b.bits.serialize(i * per, per);
      if (!data) {
        table.push({ offset: 0, allOnes: false });
        continue;
      }
      const offset = await img.refcounts.allocate(1);
      const out = data.length === cs ? data : Buffer.concat([data, Buffer.alloc(cs - data.length)]);
      await img.writeMeta(offset, out);
      table.push({ offset, allOnes: false });
    }
    const tbuf = encodeBitmapTable(table);
    const offset = await img.refcounts.allocate(Math.ceil(tbuf.length / cs));
    await img.writeMeta(offset, tbuf);
    return { offset, size };
  }

  /**
   * Store every consistent bitmap (QEMU qcow2_store_persistent_dirty_bitmaps) and so clear the
   * in-use marks of loading. Run at close, with the image to itself.
   */
  async storeLocked(): Promise<void> {
    const img = this.#img;
    if (!this.#list || !this.#dirty || img.readOnly) return;
    const dir = await readBitmapDirectory(img);
    const entries: (BitmapEntry & { mem?: Loaded })[] = dir ? dir.bitmaps.map((e) => ({ ...e })) : [];
    const drop: { offset: number; size: number }[] = [];
    let count = entries.length;
    let dirBytes = dir?.size ?? 0;
    let needWrite = false;
    for (const b of this.#list) {
      if (b.inconsistent) continue;
      needWrite = true;
      const gbits = Math.log2(b.bits.granularity);
      const why = constraintError(b.name, gbits, img.size, img.clusterSize);
      if (why) throw invalidArgument(`Bitmap '${b.name}' doesn't satisfy the constraints: ${why}`, img.ctx);
      let e = entries.find((x) => x.name === b.name);
      if (!e) {
        if (++count > MAX_BITMAPS) throw invalidArgument('Too many persistent bitmaps', img.ctx);
        dirBytes += dirEntrySize(Buffer.byteLength(b.name));
        if (dirBytes > MAX_DIRECTORY_BYTES) throw invalidArgument('Bitmap directory is too large', img.ctx);
        e = { name: b.name, flags: 0, granularityBits: gbits, tableOffset: 0, tableSize: 0, type: BT_DIRTY_TRACKING };
        entries.push(e);
      } else {
        if (!(e.flags & BME_FLAG_IN_USE)) throw invalidArgument(`Bitmap '${b.name}' already exists in the image`, img.ctx);
        drop.push({ offset: e.tableOffset, size: e.tableSize });
      }
      e.flags = b.enabled ? BME_FLAG_AUTO : 0;
      e.granularityBits = gbits;
      e.mem = b;
    }
    if (needWrite) {
      for (const e of entries) {
        if (!e.mem) continue;
        const t = await this.#storeBitmap(e.mem);
        e.tableOffset = t.offset;
        e.tableSize = t.size;
      }
      await img.barrier(); // bitmap data and tables before the directory that names them
      await this.#replaceDirectory(entries.map(({ mem: _m, ...e }) => e));
      for (const t of drop) await this.#freeTable(t.offset, t.size);
    }
    this.#dirty = false;
  }

  /** Refuse to resize while a bitmap is inconsistent (QEMU qcow2_truncate_bitmaps_check).
   *  Caller holds the metadata lock. */
  async checkResizableLocked(): Promise<void> {
    if (!this.present) return;
    await this.loadLocked();
    for (const b of this.#list!) if (b.inconsistent) throw inconsistentError(b.name);
  }

  /** The image was resized: so are the bitmaps (QEMU bdrv_dirty_bitmap_truncate). */
  resized(size: number): void {
    if (!this.#list?.length) return;
    for (const b of this.#list) b.bits.resize(size);
    this.#dirty = true;
  }

  // ------------------------------------------------------------- BitmapCapability (QMP-like)

  async #loaded(): Promise<Loaded[]> {
    if (!this.#list) await this.#exclusive(() => this.loadLocked());
    return this.#list!;
  }

  async list(): Promise<PersistentBitmap[]> {
    return (await this.#loaded()).map((b) => ({ name: b.name, granularity: b.bits.granularity, enabled: b.enabled, inconsistent: b.inconsistent, readOnly: this.#img.readOnly, bits: b.bits }));
  }

  async lookup(name: string): Promise<PersistentBitmap> {
    const b = (await this.#loaded()).find((x) => x.name === name);
    if (!b) throw notFound(`Dirty bitmap '${name}' not found`);
    return { name: b.name, granularity: b.bits.granularity, enabled: b.enabled, inconsistent: b.inconsistent, readOnly: this.#img.readOnly, bits: b.bits };
  }

  /** QEMU bdrv_dirty_bitmap_check with BDRV_BITMAP_DEFAULT (read-only, inconsistent). */
  #modifiable(b: Loaded): void {
    if (this.#img.readOnly) throw invalidArgument(`Bitmap '${b.name}' is readonly and cannot be modified`);
    if (b.inconsistent) throw inconsistentError(b.name);
  }

  async #find(name: string): Promise<Loaded> {
    const b = (await this.#loaded()).find((x) => x.name === name);
    if (!b) throw notFound(`Dirty bitmap '${name}' not found`);
    return b;
  }

  /** Default granularity (QEMU bdrv_get_default_bitmap_granularity): the cluster size within
   *  4 KiB..64 KiB. */
  get defaultGranularity(): number {
    return Math.min(65536, Math.max(4096, this.#img.clusterSize));
  }

  async add(name: string, o: { granularity?: number; disabled?: boolean } = {}): Promise<void> {
    const img = this.#img;
    if (name === '') throw invalidArgument('Bitmap name cannot be empty');
    let granularity = this.defaultGranularity;
    if (o.granularity !== undefined) {
      granularity = o.granularity % 2 ** 32; // QMP's granularity is a uint32
      if (granularity < 512 || (granularity & (granularity - 1)) !== 0) throw invalidArgument('Granularity must be power of 2 and at least 512');
    }
    const list = await this.#loaded();
    // QEMU qcow2_co_can_store_new_dirty_bitmap.
    if (list.some((b) => b.name === name)) throw invalidArgument(`Bitmap already exists: ${name}`);
    const cannot = (why: string) => invalidArgument(`Can't make bitmap '${name}' persistent in '${img.ctx.path ?? ''}': ${why}`);
    if (img.header.version < 3) throw cannot('Cannot store dirty bitmaps in qcow2 v2 files');
    const why = constraintError(name, Math.log2(granularity), img.size, img.clusterSize);
    if (why) throw cannot(why);
    const dirBytes = list.reduce((n, b) => n + dirEntrySize(Buffer.byteLength(b.name)), 0) + dirEntrySize(Buffer.byteLength(name));
    if (list.length + 1 > MAX_BITMAPS) throw cannot('Maximum number of persistent bitmaps is already reached');
    if (dirBytes > MAX_DIRECTORY_BYTES) throw cannot('Not enough space in the bitmap directory');
    list.unshift({ name, bits: new DirtyBitmap(img.size, granularity), enabled: !o.disabled, inconsistent: false });
    this.#dirty = true;
  }

  async remove(name: string): Promise<void> {
    const list = await this.#loaded();
    const b = list.find((x) => x.name === name);
    if (!b) throw notFound(`Dirty bitmap '${name}' not found`);
    if (this.#img.readOnly) throw invalidArgument(`Bitmap '${b.name}' is readonly and cannot be modified`);
    // On disk at once (QEMU qcow2_co_remove_persistent_dirty_bitmap): a directory without it,
    // then its clusters freed.
    await this.#exclusive(async () => {
      const dir = await readBitmapDirectory(this.#img);
      const e = dir?.bitmaps.find((x) => x.name === name);
      if (dir && e) {
        await this.#replaceDirectory(dir.bitmaps.filter((x) => x !== e));
        await this.#freeTable(e.tableOffset, e.tableSize);
      }
    });
    list.splice(list.indexOf(b), 1);
  }

  async clear(name: string): Promise<void> {
    const b = await this.#find(name);
    this.#modifiable(b);
    b.bits.clear();
    this.#dirty = true;
  }

  async setEnabled(name: string, enabled: boolean): Promise<void> {
    const b = await this.#find(name);
    if (b.inconsistent) throw inconsistentError(b.name); // BDRV_BITMAP_ALLOW_RO
    b.enabled = enabled;
    this.#dirty = true;
  }

  async merge(target: string, source: BitmapCapability, sourceName: string): Promise<void> {
    const dst = await this.#find(target);
    const src = await source.lookup(sourceName);
    this.#modifiable(dst);
    if (src.inconsistent) throw inconsistentError(src.name);
    if (src.bits.size !== dst.bits.size) {
      throw invalidArgument(`Bitmaps are of different sizes (destination size is ${dst.bits.size}, source size is ${src.bits.size}) and can't be merged`);
    }
    dst.bits.merge(src.bits);
    this.#dirty = true;
  }
}

/** QEMU check_constraints_on_bitmap: the reason a bitmap cannot be stored, or undefined. */
function constraintError(name: string, granularityBits: number, imageSize: number, clusterSize: number): string | undefined {
  if (granularityBits > MAX_GRANULARITY_BITS) return `Granularity exceeds maximum (${2 ** MAX_GRANULARITY_BITS} bytes)`;
  if (granularityBits < MIN_GRANULARITY_BITS) return `Granularity is under minimum (${2 ** MIN_GRANULARITY_BITS} bytes)`;
  const bytes = Math.ceil(bitsFor(imageSize, granularityBits) / 8);
  if (bytes > MAX_PHYS_BYTES || bytes > MAX_TABLE_ENTRIES * clusterSize) return 'Too much space will be occupied by the bitmap. Use larger granularity';
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) return `Name length exceeds maximum (${MAX_NAME_BYTES} characters)`;
  return undefined;
}

/** QEMU's words for a bitmap whose bits are unusable (BDRV_BITMAP_INCONSISTENT). */
function inconsistentError(name: string): BlockError {
  return new BlockError('InvalidArgument', `Bitmap '${name}' is inconsistent and cannot be used`, {}, { hint: 'Try block-dirty-bitmap-remove to delete this bitmap from disk\n' });
}


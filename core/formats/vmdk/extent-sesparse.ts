// ESXi seSparse extents, read-only (the layout QEMU block/vmdk.c reads; VMware does not publish
// it): a 512-byte constant header (magic 0xcafebabe, version 2.1, 4 KiB grains, 64-sector grain
// tables), a volatile header (magic 0xcafecafe, journal must not need replay), a grain directory
// of u64 entries (0x1000_0000_xxxx_xxxx = grain table number), and grain tables of u64 entries
// whose top nibble says unallocated (0), unmapped (1) / zero (2), or allocated (3).

import type { BlockNode } from '../../block/node.ts';
import { invalidImage, unsupported } from '../../errors.ts';
import type { Extent, GrainState } from './extent.ts';
import { MAX_GD_ENTRIES, SECTOR } from './sparse-header.ts';

export const SESPARSE_CONST_MAGIC = 0xcafebaben;
export const SESPARSE_VOLATILE_MAGIC = 0xcafecafen;
/** Version 0x0000000200000001 is the only one QEMU (and Platter) reads. */
export const SESPARSE_VERSION = 0x0000000200000001n;
/** The fixed geometry QEMU accepts: 8-sector grains, 64-sector grain tables. */
export const SESPARSE_GRAIN_SECTORS = 8n;
export const SESPARSE_GT_SECTORS = 64n;
/** Const header field offsets. */
const F = { magic: 0, version: 8, capacity: 16, grainSize: 24, gtSize: 32, flags: 40, reserved: 48, volatileOffset: 80, gdOffset: 128, gdSize: 136, gtOffset: 144, grainsOffset: 192, pad: 208 } as const;
const GD_ALLOCATED = 0x10000000n;
const ENTRY_TYPE_SHIFT = 60n;

function u64(buf: Buffer, at: number, what: string, path: string): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidImage(`seSparse ${what} is too large (${v})`, { path });
  return Number(v);
}

export class SeSparseExtent implements Extent {
  readonly flat = false;
  readonly compressed = false;
  readonly grainBytes: number;
  readonly length: number;
  readonly #gd: BigUint64Array;
  readonly #gtOffsetSectors: number;
  readonly #grainsOffsetSectors: number;
  readonly #gtEntries: number;
  readonly #gtCache = new Map<number, Promise<BigUint64Array>>();

  private constructor(readonly file: BlockNode, readonly displayName: string, readonly type: string, readonly start: number, capacity: number, gd: BigUint64Array, gtOffset: number, grainsOffset: number) {
    this.grainBytes = Number(SESPARSE_GRAIN_SECTORS) * SECTOR;
    this.length = capacity * SECTOR;
    this.#gd = gd;
    this.#gtOffsetSectors = gtOffset;
    this.#grainsOffsetSectors = grainsOffset;
    this.#gtEntries = (Number(SESPARSE_GT_SECTORS) * SECTOR) / 8;
  }

  static async open(file: BlockNode, displayName: string, type: string, start: number): Promise<SeSparseExtent> {
    const path = displayName;
    if (file.size < SECTOR) throw invalidImage('File is too small, not a valid image', { path });
    const h = await file.read(0, SECTOR);
    const magic = h.readBigUInt64LE(F.magic);
    if (magic !== SESPARSE_CONST_MAGIC) throw invalidImage(`Bad const header magic: 0x${magic.toString(16).padStart(16, '0')}`, { path });
    const version = h.readBigUInt64LE(F.version);
    if (version !== SESPARSE_VERSION) throw unsupported(`Unsupported version: 0x${version.toString(16).padStart(16, '0')}`, { path });
    if (h.readBigUInt64LE(F.grainSize) !== SESPARSE_GRAIN_SECTORS) throw unsupported(`Unsupported grain size: ${h.readBigUInt64LE(F.grainSize)}`, { path });
    if (h.readBigUInt64LE(F.gtSize) !== SESPARSE_GT_SECTORS) throw unsupported(`Unsupported grain table size: ${h.readBigUInt64LE(F.gtSize)}`, { path });
    if (h.readBigUInt64LE(F.flags) !== 0n) throw unsupported(`Unsupported flags: 0x${h.readBigUInt64LE(F.flags).toString(16).padStart(16, '0')}`, { path });
    for (let i = 0; i < 4; i++) if (h.readBigUInt64LE(F.reserved + i * 8) !== 0n) throw unsupported('Unsupported reserved bits in the seSparse const header', { path });
    if (!h.subarray(F.pad).every((b) => b === 0)) throw unsupported('Unsupported non-zero const header padding', { path });
    const volatileAt = u64(h, F.volatileOffset, 'volatile header offset', path) * SECTOR;
    if (!Number.isSafeInteger(volatileAt) || volatileAt + SECTOR > file.size) throw invalidImage('seSparse volatile header is past the end of the file', { path });
    const v = await file.read(volatileAt, SECTOR);
    const vmagic = v.readBigUInt64LE(0);
    if (vmagic !== SESPARSE_VOLATILE_MAGIC) throw invalidImage(`Bad volatile header magic: 0x${vmagic.toString(16).padStart(16, '0')}`, { path });
    if (v.readBigUInt64LE(24) !== 0n) throw unsupported('Image is dirty, Replaying journal not supported', { path });
    if (!v.subarray(32).every((b) => b === 0)) throw unsupported('Unsupported non-zero volatile header padding', { path });

    const capacity = u64(h, F.capacity, 'capacity', path);
    if (!Number.isSafeInteger(capacity * SECTOR)) throw invalidImage(`seSparse capacity is too large (${capacity} sectors)`, { path });
    const gdEntries = (u64(h, F.gdSize, 'grain directory size', path) * SECTOR) / 8;
    if (gdEntries > MAX_GD_ENTRIES) throw invalidImage('L1 size too big', { path });
    const needed = Math.ceil(capacity / (Number(SESPARSE_GRAIN_SECTORS) * ((Number(SESPARSE_GT_SECTORS) * SECTOR) / 8)));
    if (gdEntries < needed) throw invalidImage(`seSparse grain directory has ${gdEntries} entries, ${needed} needed`, { path });
    const gdAt = u64(h, F.gdOffset, 'grain directory offset', path) * SECTOR;
    if (!Number.isSafeInteger(gdAt) || gdAt + gdEntries * 8 > file.size) throw invalidImage(`Grain directory at offset ${gdAt} is past the end of the file (${file.size} bytes)`, { path });
    const raw = await file.read(gdAt, gdEntries * 8);
    const gd = new BigUint64Array(gdEntries);
    for (let i = 0; i < gdEntries; i++) gd[i] = raw.readBigUInt64LE(i * 8);
    return new SeSparseExtent(file, displayName, type, start, capacity, gd, u64(h, F.gtOffset, 'grain tables offset', path), u64(h, F.grainsOffset, 'grains offset', path));
  }

  #gt(index: number): Promise<BigUint64Array> {
    let p = this.#gtCache.get(index);
    if (!p) {
      const bytes = this.#gtEntries * 8;
      const at = (this.#gtOffsetSectors + index * (bytes / SECTOR)) * SECTOR;
      p = (async () => {
        if (!Number.isSafeInteger(at) || at + bytes > this.file.size) throw invalidImage(`Grain table at offset ${at} is past the end of the file`, { path: this.displayName });
        const raw = await this.file.read(at, bytes);
        const t = new BigUint64Array(this.#gtEntries);
        for (let i = 0; i < this.#gtEntries; i++) t[i] = raw.readBigUInt64LE(i * 8);
        return t;
      })();
      p.catch(() => this.#gtCache.delete(index));
      this.#gtCache.set(index, p);
      if (this.#gtCache.size > 1024) this.#gtCache.delete(this.#gtCache.keys().next().value!);
    }
    return p;
  }

  async lookup(offset: number): Promise<GrainState> {
    const grain = Math.floor(offset / this.grainBytes);
    const l1 = Math.floor(grain / this.#gtEntries);
    const bad = (what: string) => invalidImage(`seSparse ${what} for offset ${offset} is invalid`, { path: this.displayName });
    if (l1 >= this.#gd.length) throw bad('grain directory index');
    const l1e = this.#gd[l1]!;
    if (l1e === 0n) return { kind: 'unalloc' };
    if (l1e >> 32n !== GD_ALLOCATED) throw bad('grain directory entry');
    const e = (await this.#gt(Number(l1e & 0xffffffffn)))[grain % this.#gtEntries]!;
    switch (e >> ENTRY_TYPE_SHIFT) {
      case 0n:
        if (e !== 0n) throw bad('grain table entry');
        return { kind: 'unalloc' };
      case 1n: // unmapped (SCSI UNMAP)
      case 2n: // zero
        return { kind: 'zero' };
      case 3n: {
        const cluster = ((e & 0x0fff000000000000n) >> 48n) | ((e & 0x0000ffffffffffffn) << 12n);
        const host = (BigInt(this.#grainsOffsetSectors) + cluster * SESPARSE_GRAIN_SECTORS) * BigInt(SECTOR);
        if (host > BigInt(Number.MAX_SAFE_INTEGER)) throw bad('grain offset');
        return { kind: 'data', host: Number(host), compressed: false };
      }
      default:
        throw bad('grain table entry');
    }
  }

  async readData(state: GrainState & { kind: 'data' }, inGrain: number, length: number): Promise<Buffer> {
    return this.file.read(state.host + inGrain, length);
  }
}

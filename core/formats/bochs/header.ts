// Bochs redolog header codec (Bochs "growing" disk images as bximage writes them, and as QEMU's
// block/bochs.c reads them): one 512-byte little-endian sector. decodeBochsHeader() only reads
// fields; validateBochsHeader() applies QEMU 7.2's checks in its order and words.

import { BlockError, invalidImage, type BlockErrorContext } from '../../errors.ts';
import { sizeToNumber } from '../../util/checked.ts';

/** The header sector (HEADER_SIZE). */
export const BOCHS_HEADER_SIZE = 512;
export const BOCHS_MAGIC = 'Bochs Virtual HD Image';
export const BOCHS_TYPE_REDOLOG = 'Redolog';
export const BOCHS_SUBTYPE_GROWING = 'Growing';
/** Header versions: 2.0 (disk size after a reserved word) and 1.0 (disk size right after extent). */
export const BOCHS_VERSION_2 = 0x00020000;
export const BOCHS_VERSION_1 = 0x00010000;
/** QEMU caps the catalog at 1M entries (the largest bximage makes, ~8 TB). */
export const BOCHS_CATALOG_MAX = 0x100000;
/** QEMU's extent size range: at least a sector, a power of two, at most 8 MiB. */
export const BOCHS_EXTENT_MIN = 512;
export const BOCHS_EXTENT_MAX = 0x800000;
/** A catalog entry naming no extent (not allocated). */
export const BOCHS_UNALLOCATED = 0xffffffff;

/** Byte offsets of the fields (bochs redolog_header_t: standard header, then the redolog part). */
const OFF = {
  magic: 0, // char[32]
  type: 32, // char[16]
  subtype: 48, // char[16]
  version: 64,
  header: 68, // header size: the catalog starts here
  catalog: 72, // catalog entries
  bitmap: 76, // bitmap bytes per extent
  extent: 80, // extent bytes
  diskV2: 88, // u64, after a reserved u32 (timestamp) at 84
  diskV1: 84, // u64
} as const;

/** The header, field by field (bochs redolog_header_t; QEMU struct bochs_header). */
export interface BochsHeader {
  /** The magic, type and subtype fields match (as C strings) and the version is 1 or 2. */
  recognised: boolean;
  version: number;
  /** Byte offset of the catalog (the header's size field). */
  header: number;
  /** Catalog entries. */
  catalog: number;
  /** Bitmap bytes before each extent's data. */
  bitmap: number;
  /** Extent bytes. */
  extent: number;
  /** Virtual disk size in bytes, as stored (v1 or v2 position by version). */
  disk: bigint;
}

/** A NUL-terminated string field equals `s` (C strcmp on the field). */
function cString(buf: Buffer, at: number, s: string): boolean {
  return buf.toString('latin1', at, at + s.length) === s && buf[at + s.length] === 0;
}

/** Whether a 512-byte sector (zero-padded if the file is shorter) is a Bochs growing redolog
 *  header (QEMU's bochs_probe, which scores it 100). */
export function isBochsHeader(buf: Buffer): boolean {
  if (buf.length < BOCHS_HEADER_SIZE) return false;
  const v = buf.readUInt32LE(OFF.version);
  return (
    cString(buf, OFF.magic, BOCHS_MAGIC) &&
    cString(buf, OFF.type, BOCHS_TYPE_REDOLOG) &&
    cString(buf, OFF.subtype, BOCHS_SUBTYPE_GROWING) &&
    (v === BOCHS_VERSION_2 || v === BOCHS_VERSION_1)
  );
}

/** Decode the header sector (exactly BOCHS_HEADER_SIZE bytes); no validation. */
export function decodeBochsHeader(buf: Buffer): BochsHeader {
  const version = buf.readUInt32LE(OFF.version);
  return {
    recognised: isBochsHeader(buf),
    version,
    header: buf.readUInt32LE(OFF.header),
    catalog: buf.readUInt32LE(OFF.catalog),
    bitmap: buf.readUInt32LE(OFF.bitmap),
    extent: buf.readUInt32LE(OFF.extent),
    disk: buf.readBigUInt64LE(version === BOCHS_VERSION_1 ? OFF.diskV1 : OFF.diskV2),
  };
}

/** The layout QEMU derives from a valid header (its u32 arithmetic kept: data_offset and the
 *  block counts wrap as QEMU's do). */
export interface BochsGeometry {
  /** Virtual size: the disk field rounded down to a sector. */
  size: number;
  catalog: number;
  extent: number;
  /** Byte offset of extent 0's bitmap: header + catalog * 4, as a u32. */
  dataOffset: number;
  /** Sectors of bitmap, then of data, per extent (1 + (field - 1) / 512, as u32). */
  bitmapBlocks: number;
  extentBlocks: number;
}

/** Checks of QEMU's bochs_open that need the header only, in its order: recognised, then the
 *  catalog's size. */
export function validateBochsHeader(h: BochsHeader, ctx: BlockErrorContext): void {
  if (!h.recognised) throw invalidImage('Image not in Bochs format', ctx);
  if (h.catalog > BOCHS_CATALOG_MAX) throw new BlockError('InvalidImage', 'Catalog size is too large', ctx, { errno: 'EFBIG' });
}

/** The checks QEMU makes after reading the catalog (extent size, catalog covering the disk). */
export function bochsGeometry(h: BochsHeader, ctx: BlockErrorContext): BochsGeometry {
  const e = h.extent;
  if (e < BOCHS_EXTENT_MIN) throw invalidImage('Extent size must be at least 512', ctx);
  if ((e & (e - 1)) !== 0) throw invalidImage(`Extent size ${e} is not a power of two`, ctx);
  if (e > BOCHS_EXTENT_MAX) throw invalidImage(`Extent size ${e} is too large`, ctx);
  // QEMU keeps disk / 512 sectors.
  const sectors = h.disk / 512n;
  const perExtent = BigInt(e / 512);
  if (BigInt(h.catalog) < (sectors + perExtent - 1n) / perExtent) throw invalidImage('Catalog size is too small for this disk size', ctx);
  // The catalog covers the disk now: at most 2^20 extents of 8 MiB.
  const size = sizeToNumber(sectors * 512n, 'Bochs disk size', ctx);
  return {
    size,
    catalog: h.catalog,
    extent: e,
    dataOffset: (h.header + h.catalog * 4) >>> 0,
    bitmapBlocks: (1 + Math.floor(((h.bitmap - 1) >>> 0) / 512)) >>> 0,
    extentBlocks: (1 + Math.floor(((e - 1) >>> 0) / 512)) >>> 0,
  };
}

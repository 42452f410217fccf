// Parallels image header codec (docs/interop/parallels.txt "Header", as QEMU 7.2's
// block/parallels.c reads and writes it): 64 little-endian bytes at offset 0, followed at once by
// the Block Allocation Table. decode() only reads fields; validateHeader() applies QEMU's open
// rules in QEMU's order and words.

import { invalidImage, BlockError, type BlockErrorContext } from '../../errors.ts';
import { sizeToNumber } from '../../util/checked.ts';

/** Magic of images whose BAT holds sector offsets ("v1"). */
export const MAGIC_V1 = 'WithoutFreeSpace';
/** Magic of images whose BAT holds cluster indexes ("v2", the only kind QEMU creates). */
export const MAGIC_V2 = 'WithouFreSpacExt';
/** The only header version QEMU opens. */
export const HEADER_VERSION = 2;
/** "inuse" value of an image left open (QEMU HEADER_INUSE_MAGIC, "Ynot"). */
export const INUSE_MAGIC = 0x746f6e59;
/** Header bytes (the BAT starts here). */
export const HEADER_SIZE = 64;
export const SECTOR = 512;
/** Geometry QEMU writes (not used on the image level). */
export const HEADS_NUMBER = 16;
export const SEC_IN_CYL = 32;
/** Default cluster size of new images (1 MiB). */
export const DEFAULT_CLUSTER_SIZE = 1 << 20;
/** QEMU's MAX_PARALLELS_IMAGE_FACTOR: an image has fewer than 2^32 clusters. */
export const MAX_IMAGE_FACTOR = 2 ** 32;
/** QEMU refuses more than INT_MAX / 4 BAT entries ("Catalog too large"). */
export const MAX_BAT_ENTRIES = Math.floor(0x7fffffff / 4);
/** QEMU refuses clusters of more than INT32_MAX / 513 sectors ("Too big cluster"). */
export const MAX_TRACKS = Math.floor(0x7fffffff / 513);

/** Byte offsets of the header fields (ParallelsHeader). */
const OFF = {
  magic: 0,
  version: 16,
  heads: 20,
  cylinders: 24,
  tracks: 28,
  batEntries: 32,
  nbSectors: 36, // u64
  inuse: 44,
  dataOff: 48,
  flags: 52,
  extOff: 56, // u64
} as const;

export const INUSE_OFFSET = OFF.inuse;

/** The 64-byte header, field by field. */
export interface ParallelsHeader {
  magic: string;
  version: number;
  heads: number;
  cylinders: number;
  /** Sectors per cluster. */
  tracks: number;
  batEntries: number;
  /** Virtual size in sectors (v1: only the low 32 bits count). */
  nbSectors: bigint;
  inuse: number;
  /** First data sector (0: right after the BAT). */
  dataOff: number;
  flags: number;
  /** Sector of the format extension cluster (0: none). */
  extOff: bigint;
}

/** Decode the header from at least 64 bytes (shorter input reads as if padded with zeros, as
 *  QEMU's read past the end of the file does). */
export function decodeHeader(input: Buffer): ParallelsHeader {
  const buf = input.length >= HEADER_SIZE ? input : Buffer.concat([input, Buffer.alloc(HEADER_SIZE - input.length)]);
  return {
    magic: buf.toString('latin1', OFF.magic, OFF.magic + 16),
    version: buf.readUInt32LE(OFF.version),
    heads: buf.readUInt32LE(OFF.heads),
    cylinders: buf.readUInt32LE(OFF.cylinders),
    tracks: buf.readUInt32LE(OFF.tracks),
    batEntries: buf.readUInt32LE(OFF.batEntries),
    nbSectors: buf.readBigUInt64LE(OFF.nbSectors),
    inuse: buf.readUInt32LE(OFF.inuse),
    dataOff: buf.readUInt32LE(OFF.dataOff),
    flags: buf.readUInt32LE(OFF.flags),
    extOff: buf.readBigUInt64LE(OFF.extOff),
  };
}

export function encodeHeader(h: ParallelsHeader): Buffer {
  const buf = Buffer.alloc(HEADER_SIZE);
  buf.write(h.magic, OFF.magic, 16, 'latin1');
  buf.writeUInt32LE(h.version, OFF.version);
  buf.writeUInt32LE(h.heads, OFF.heads);
  buf.writeUInt32LE(h.cylinders, OFF.cylinders);
  buf.writeUInt32LE(h.tracks, OFF.tracks);
  buf.writeUInt32LE(h.batEntries, OFF.batEntries);
  buf.writeBigUInt64LE(h.nbSectors, OFF.nbSectors);
  buf.writeUInt32LE(h.inuse, OFF.inuse);
  buf.writeUInt32LE(h.dataOff, OFF.dataOff);
  buf.writeUInt32LE(h.flags, OFF.flags);
  buf.writeBigUInt64LE(h.extOff, OFF.extOff);
  return buf;
}

/** QEMU's parallels_probe: either magic with version 2 scores 100. */
export function probeHeader(head: Buffer): number {
  const h = decodeHeader(head.subarray(0, HEADER_SIZE));
  return (h.magic === MAGIC_V1 || h.magic === MAGIC_V2) && h.version === HEADER_VERSION ? 100 : 0;
}

/** Byte offset of BAT entry `i` (QEMU bat_entry_off). */
export const batEntryOffset = (i: number) => HEADER_SIZE + 4 * i;

/** What the open path derives from a valid header. */
export interface HeaderLayout {
  /** BAT entries hold cluster indexes (v2) rather than sectors (v1). */
  ext: boolean;
  /** Sectors per BAT unit: 1 (v1) or `tracks` (v2). */
  offMultiplier: number;
  tracks: number;
  clusterSize: number;
  batSize: number;
  /** Virtual size in bytes. */
  size: number;
}

/**
 * QEMU's parallels_open checks, in its order and words: version, magic, zero and too-big
 * clusters, catalog size. The virtual size is nb_sectors (its low 32 bits for v1); Platter
 * refuses sizes past 2^53 bytes, which QEMU would take.
 */
export function validateHeader(h: ParallelsHeader, ctx: BlockErrorContext): HeaderLayout {
  if (h.version !== HEADER_VERSION) throw invalidImage('Image not in Parallels format', ctx);
  let ext: boolean;
  let sectors = h.nbSectors;
  if (h.magic === MAGIC_V1) {
    ext = false;
    sectors &= 0xffffffffn;
  } else if (h.magic === MAGIC_V2) ext = true;
  else throw invalidImage('Image not in Parallels format', ctx);
  if (h.tracks === 0) throw invalidImage('Invalid image: Zero sectors per track', ctx);
  if (h.tracks > MAX_TRACKS) throw new BlockError('Unsupported', 'Invalid image: Too big cluster', ctx, { errno: 'EFBIG' });
  if (h.batEntries > MAX_BAT_ENTRIES) throw new BlockError('Unsupported', 'Catalog too large', ctx, { errno: 'EFBIG' });
  const bytes = sectors * BigInt(SECTOR);
  // QEMU's bdrv_getlength fails past INT64_MAX ("File too large"); Platter keeps sizes below
  // 2^62 (every multiple of 512 there is an exact JS number; guest I/O stops at 2^53).
  if (bytes > 2n ** 63n - 1n) throw new BlockError('Unsupported', `Can't get image size: File too large (${sectors} sectors)`, ctx, { errno: 'EFBIG' });
  const size = sizeToNumber(bytes, 'Virtual size', ctx);
  return {
    ext,
    offMultiplier: ext ? h.tracks : 1,
    tracks: h.tracks,
    clusterSize: h.tracks * SECTOR,
    batSize: h.batEntries,
    size,
  };
}

/** The header QEMU's parallels_co_create writes for `size` bytes (a multiple of 512) in clusters
 *  of `clusterSize` bytes (a multiple of 512); returns it with the data offset in sectors. */
export function newHeader(size: number, clusterSize: number): { header: ParallelsHeader; batSectors: number } {
  const batEntries = Math.ceil(size / clusterSize);
  // The BAT area is rounded up to whole clusters (QEMU: DIV_ROUND_UP(bat_entry_off, cl_size)),
  // in QEMU's uint32 arithmetic: past 2^30 entries the offset wraps (QEMU then writes an image
  // it refuses to open, "Catalog too large"; Platter writes the same bytes).
  const batBytes = batEntryOffset(batEntries) % 2 ** 32;
  const batSectors = ((Math.ceil(batBytes / clusterSize) * clusterSize) / SECTOR) >>> 0;
  const header: ParallelsHeader = {
    magic: MAGIC_V2,
    version: HEADER_VERSION,
    heads: HEADS_NUMBER,
    // uint32 field: QEMU truncates the quotient to 32 bits.
    cylinders: Math.floor(size / SECTOR / HEADS_NUMBER / SEC_IN_CYL) >>> 0,
    tracks: clusterSize / SECTOR,
    batEntries,
    nbSectors: BigInt(Math.ceil(size / SECTOR)),
    inuse: 0,
    dataOff: batSectors >>> 0,
    flags: 0,
    extOff: 0n,
  };
  return { header, batSectors };
}

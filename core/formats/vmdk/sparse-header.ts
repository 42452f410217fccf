// Codecs for the binary structures of VMDK sparse extents: the hosted sparse extent header
// ("KDMV", VMware Virtual Disk Format 1.1 section "Hosted Sparse Extent Header"), the older
// VMFS sparse (COWD) header, and the stream-optimized markers (section "Stream-Optimized
// Compressed Sparse Extents": grain marker, GT/GD/footer/end-of-stream metadata markers).
// Decoding is kept apart from validation (validateSparseHeader).

import { invalidImage, unsupported, type BlockErrorContext } from '../../errors.ts';
import { isPowerOfTwo, u64ToNumber } from '../../util/checked.ts';

export const SECTOR = 512;
/** "KDMV" read as a big-endian u32 (hosted sparse extent magic). */
export const VMDK4_MAGIC = 0x4b444d56;
/** "COWD" read as a big-endian u32 (VMFS sparse / ESX 2 extent magic). */
export const VMDK3_MAGIC = 0x434f5744;
/** Size of the on-disk header structure including the magic (one sector). */
export const SPARSE_HEADER_SIZE = SECTOR;

/** Header flag bits (spec: "flags"). */
export const FLAG_NL_DETECT = 1 << 0; // the newline test bytes are valid
export const FLAG_RGD = 1 << 1; // a redundant grain directory is present
export const FLAG_ZERO_GRAIN = 1 << 2; // GTE value 1 means "zeroed grain"
export const FLAG_COMPRESSED = 1 << 16; // grains are compressed
export const FLAG_MARKERS = 1 << 17; // grains and metadata carry markers (stream format)

/** compressAlgorithm values. */
export const COMPRESSION_NONE = 0;
export const COMPRESSION_DEFLATE = 1;
/** gdOffset value meaning "the grain directory is at the end; read the footer". */
export const GD_AT_END = 0xffffffffffffffffn;
/** Highest header version QEMU (and Platter) knows. */
export const MAX_VERSION = 3;
/** The newline-test bytes: "\n", " ", "\r", "\n". */
export const NL_TEST_BYTES = [0x0a, 0x20, 0x0d, 0x0a] as const;

/** QEMU's limits (block/vmdk.c vmdk_add_extent): a grain over 1 GiB (0x200000 sectors) is not
 *  realistic; a grain directory over 32 Mi entries covers far more than the 2 TiB VMDK maximum. */
export const MAX_GRAIN_SECTORS = 0x200000;
export const MAX_GD_ENTRIES = 32 * 1024 * 1024;
/** numGTEsPerGT above 512 is refused by QEMU ("L2 table size too big"). */
export const MAX_GTES_PER_GT = 512;
/** A sparse extent addresses at most 2^32 sectors of its file (32-bit GTEs). */
export const MAX_EXTENT_FILE_SECTORS = 2 ** 32;
/** VMFS sparse (COWD) grain tables always have 4096 entries. */
export const VMDK3_GT_ENTRIES = 4096;

/** Marker types (spec: "Stream-Optimized ... Markers"). */
export const MARKER_EOS = 0;
export const MARKER_GT = 1;
export const MARKER_GD = 2;
export const MARKER_FOOTER = 3;
/** Grain marker: lba u64 + size u32, then the compressed bytes. */
export const GRAIN_MARKER_SIZE = 12;

/** The hosted sparse extent header (spec section "Hosted Sparse Extent Header"), decoded. */
export interface SparseHeader {
  version: number;
  flags: number;
  /** Virtual size of the extent, in sectors. */
  capacity: bigint;
  /** Grain size in sectors. */
  grainSize: bigint;
  descriptorOffset: bigint;
  descriptorSize: bigint;
  numGTEsPerGT: number;
  rgdOffset: bigint;
  gdOffset: bigint;
  /** Sectors of metadata before the first grain ("overHead", QEMU's grain_offset). */
  overHead: bigint;
  uncleanShutdown: number;
  nlTest: number[];
  compressAlgorithm: number;
}

/** Decode the 512-byte hosted sparse header at the start of `buf` (magic included). */
export function decodeSparseHeader(buf: Buffer): SparseHeader {
  if (buf.length < SPARSE_HEADER_SIZE) throw invalidImage(`VMDK sparse header is truncated (${buf.length} bytes, expected ${SPARSE_HEADER_SIZE})`);
  return {
    version: buf.readUInt32LE(4),
    flags: buf.readUInt32LE(8),
    capacity: buf.readBigUInt64LE(12),
    grainSize: buf.readBigUInt64LE(20),
    descriptorOffset: buf.readBigUInt64LE(28),
    descriptorSize: buf.readBigUInt64LE(36),
    numGTEsPerGT: buf.readUInt32LE(44),
    rgdOffset: buf.readBigUInt64LE(48),
    gdOffset: buf.readBigUInt64LE(56),
    overHead: buf.readBigUInt64LE(64),
    uncleanShutdown: buf[72]!,
    nlTest: [buf[73]!, buf[74]!, buf[75]!, buf[76]!],
    compressAlgorithm: buf.readUInt16LE(77),
  };
}

/** Encode a hosted sparse header into one sector. */
export function encodeSparseHeader(h: SparseHeader): Buffer {
  const buf = Buffer.alloc(SPARSE_HEADER_SIZE);
  buf.writeUInt32BE(VMDK4_MAGIC, 0);
  buf.writeUInt32LE(h.version, 4);
  buf.writeUInt32LE(h.flags, 8);
  buf.writeBigUInt64LE(h.capacity, 12);
  buf.writeBigUInt64LE(h.grainSize, 20);
  buf.writeBigUInt64LE(h.descriptorOffset, 28);
  buf.writeBigUInt64LE(h.descriptorSize, 36);
  buf.writeUInt32LE(h.numGTEsPerGT, 44);
  buf.writeBigUInt64LE(h.rgdOffset, 48);
  buf.writeBigUInt64LE(h.gdOffset, 56);
  buf.writeBigUInt64LE(h.overHead, 64);
  buf[72] = h.uncleanShutdown;
  for (let i = 0; i < 4; i++) buf[73 + i] = h.nlTest[i] ?? 0;
  buf.writeUInt16LE(h.compressAlgorithm, 77);
  return buf;
}

/** The geometry of a sparse extent once its header passed validation (numbers, sectors). */
export interface SparseLayout {
  version: number;
  capacitySectors: number;
  grainSectors: number;
  gtEntries: number;
  gdEntries: number;
  gdOffset: number; // bytes
  rgdOffset: number; // bytes, 0 when absent
  overHeadSectors: number;
  compressed: boolean;
  markers: boolean;
  zeroGrain: boolean;
}

/**
 * Validate a decoded header (QEMU block/vmdk.c vmdk_open_vmdk4 + vmdk_add_extent rules, in the
 * order magic, version, ranges, overflow), and work out the grain directory geometry.
 * `fileSize` bounds every table so a hostile header cannot make us allocate or read past EOF.
 */
export function validateSparseHeader(h: SparseHeader, fileSize: number, writable: boolean, ctx?: BlockErrorContext): SparseLayout {
  if (h.version > MAX_VERSION) throw unsupported(`Unsupported VMDK version ${h.version}`, ctx);
  const compressed = h.compressAlgorithm === COMPRESSION_DEFLATE;
  if (h.version === MAX_VERSION && writable && !compressed) throw invalidImage('VMDK version 3 must be read only', ctx);
  if (h.compressAlgorithm !== COMPRESSION_NONE && h.compressAlgorithm !== COMPRESSION_DEFLATE) {
    throw unsupported(`Unsupported VMDK compression algorithm ${h.compressAlgorithm} (expecting 0 or 1 (deflate))`, ctx);
  }
  if (h.numGTEsPerGT > MAX_GTES_PER_GT) throw invalidImage('L2 table size too big', ctx);
  const l1EntrySectors = h.grainSize * BigInt(h.numGTEsPerGT);
  if (l1EntrySectors === 0n) throw invalidImage('L1 entry size is invalid', ctx);
  const overHeadSectors = u64ToNumber(h.overHead, 'VMDK overHead', ctx);
  if (Math.ceil(fileSize / SECTOR) < overHeadSectors) {
    throw invalidImage(`File truncated, expecting at least ${overHeadSectors * SECTOR} bytes`, ctx);
  }
  if (h.grainSize > BigInt(MAX_GRAIN_SECTORS)) throw invalidImage('Invalid granularity, image may be corrupt', ctx);
  const gdEntriesBig = (h.capacity + l1EntrySectors - 1n) / l1EntrySectors;
  if (gdEntriesBig > BigInt(MAX_GD_ENTRIES)) throw invalidImage('L1 size too big', ctx);
  const gdEntries = Number(gdEntriesBig);
  const grainSectors = Number(h.grainSize);
  const gtEntries = h.numGTEsPerGT;
  if (!isPowerOfTwo(grainSectors)) throw invalidImage(`Invalid granularity ${grainSectors} (expecting a power of two number of sectors)`, ctx);
  const capacitySectors = u64ToNumber(h.capacity, 'VMDK capacity', ctx);
  if (capacitySectors * SECTOR > Number.MAX_SAFE_INTEGER) throw invalidImage(`VMDK capacity is too large (${h.capacity} sectors)`, ctx);
  const gdBytes = gdEntries * 4;
  const checkTable = (sectors: bigint, what: string): number => {
    const off = u64ToNumber(sectors, what, ctx) * SECTOR;
    if (!Number.isSafeInteger(off) || off + gdBytes > fileSize) {
      throw invalidImage(`${what} at offset ${off} (${gdBytes} bytes) is past the end of the file (${fileSize} bytes)`, ctx);
    }
    return off;
  };
  const gdOffset = checkTable(h.gdOffset, 'Grain directory');
  const rgdOffset = (h.flags & FLAG_RGD) !== 0 ? checkTable(h.rgdOffset, 'Redundant grain directory') : 0;
  if ((h.flags & FLAG_NL_DETECT) !== 0 && h.nlTest.some((b, i) => b !== NL_TEST_BYTES[i])) {
    throw invalidImage('VMDK header newline test failed: the file was damaged by a text-mode transfer', ctx);
  }
  return {
    version: h.version,
    capacitySectors,
    grainSectors,
    gtEntries,
    gdEntries,
    gdOffset,
    rgdOffset,
    overHeadSectors,
    compressed,
    markers: (h.flags & FLAG_MARKERS) !== 0,
    zeroGrain: (h.flags & FLAG_ZERO_GRAIN) !== 0,
  };
}

/** The VMFS sparse ("COWD", VMDK3) header: fields after the magic (QEMU VMDK3Header). */
export interface CowdHeader {
  version: number;
  flags: number;
  diskSectors: number;
  granularity: number;
  gdOffsetSectors: number;
  gdEntries: number;
}

export function decodeCowdHeader(buf: Buffer): CowdHeader {
  if (buf.length < 44) throw invalidImage('VMFS sparse header is truncated');
  return {
    version: buf.readUInt32LE(4),
    flags: buf.readUInt32LE(8),
    diskSectors: buf.readUInt32LE(12),
    granularity: buf.readUInt32LE(16),
    gdOffsetSectors: buf.readUInt32LE(20),
    gdEntries: buf.readUInt32LE(24),
  };
}

/** Validate a COWD header and return the same layout a KDMV extent has. */
export function validateCowdHeader(h: CowdHeader, fileSize: number, ctx?: BlockErrorContext): SparseLayout {
  if (h.granularity > MAX_GRAIN_SECTORS) throw invalidImage('Invalid granularity, image may be corrupt', ctx);
  if (!isPowerOfTwo(h.granularity)) throw invalidImage(`Invalid granularity ${h.granularity} (expecting a power of two number of sectors)`, ctx);
  if (h.gdEntries > MAX_GD_ENTRIES) throw invalidImage('L1 size too big', ctx);
  const gdOffset = h.gdOffsetSectors * SECTOR;
  if (gdOffset + h.gdEntries * 4 > fileSize) throw invalidImage(`Grain directory at offset ${gdOffset} is past the end of the file (${fileSize} bytes)`, ctx);
  const needed = Math.ceil(h.diskSectors / (h.granularity * VMDK3_GT_ENTRIES));
  if (needed > h.gdEntries) throw invalidImage(`Grain directory has ${h.gdEntries} entries, ${needed} needed for ${h.diskSectors} sectors`, ctx);
  return {
    version: 0,
    capacitySectors: h.diskSectors,
    grainSectors: h.granularity,
    gtEntries: VMDK3_GT_ENTRIES,
    gdEntries: h.gdEntries,
    gdOffset,
    rgdOffset: 0,
    overHeadSectors: 0,
    compressed: false,
    markers: false,
    zeroGrain: false,
  };
}

/** A metadata marker sector (spec: "Metadata markers": numSectors u64, size u32 = 0, type u32). */
export interface MetadataMarker {
  value: bigint;
  size: number;
  type: number;
}

export function decodeMarker(buf: Buffer, at = 0): MetadataMarker {
  return { value: buf.readBigUInt64LE(at), size: buf.readUInt32LE(at + 8), type: buf.readUInt32LE(at + 12) };
}

export function encodeMarker(m: MetadataMarker): Buffer {
  const buf = Buffer.alloc(SECTOR);
  buf.writeBigUInt64LE(m.value, 0);
  buf.writeUInt32LE(m.size, 8);
  buf.writeUInt32LE(m.type, 12);
  return buf;
}

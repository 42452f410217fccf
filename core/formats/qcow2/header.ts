// qcow2 image header codec (docs/interop/qcow2.txt "Header", "Header extensions"): the fixed
// header of version 2 (72 bytes) and version 3 (104+ bytes), the header extensions that follow
// it in cluster 0, and the backing file name. decode() only parses; validate.ts checks ranges.
// encode() lays out cluster 0 the way QEMU does: header, extensions, end marker, backing name.

import { invalidImage, type BlockErrorContext } from '../../errors.ts';
import { sizeToNumber, u64ToNumber } from '../../util/checked.ts';

/** "QFI\xfb" (qcow2.txt "magic"). */
export const QCOW2_MAGIC = 0x514649fb;
/** Length of the version 2 header (qcow2.txt: bytes 0..71). */
export const HEADER_V2_LENGTH = 72;
/** Shortest version 3 header (qcow2.txt: bytes 0..103). */
export const HEADER_V3_MIN_LENGTH = 104;
/** Version 3 header with the compression_type byte, padded to 8 (what QEMU writes). */
export const HEADER_V3_LENGTH = 112;
/** Bytes any probe/decode reads first: the longest fixed header we know. */
export const HEADER_READ_BYTES = HEADER_V3_LENGTH;

/** Header extension types (qcow2.txt "Header extensions"). */
export const EXT_END = 0x00000000;
export const EXT_BACKING_FORMAT = 0xe2792aca;
export const EXT_FEATURE_TABLE = 0x6803f857;
export const EXT_CRYPTO = 0x0537be77;
export const EXT_BITMAPS = 0x23852875;
export const EXT_DATA_FILE = 0x44415441;
/** Clusters of this size or smaller get no feature name table. */
const FEATURE_TABLE_MIN_CLUSTER = 4096;
/** Size of one feature name table entry: type u8, bit u8, name[46]. */
export const FEATURE_ENTRY_SIZE = 48;
const FEATURE_NAME_BYTES = 46;

/** Incompatible feature bits (qcow2.txt bytes 72-79). */
export const INCOMPAT_DIRTY = 1n << 0n;
export const INCOMPAT_CORRUPT = 1n << 1n;
export const INCOMPAT_DATA_FILE = 1n << 2n;
export const INCOMPAT_COMPRESSION = 1n << 3n;
export const INCOMPAT_EXTL2 = 1n << 4n;
export const INCOMPAT_KNOWN = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;
/** Compatible feature bits (qcow2.txt bytes 80-87). */
export const COMPAT_LAZY_REFCOUNTS = 1n << 0n;
/** Autoclear feature bits (qcow2.txt bytes 88-95). */
export const AUTOCLEAR_BITMAPS = 1n << 0n;
export const AUTOCLEAR_DATA_FILE_RAW = 1n << 1n;
export const AUTOCLEAR_KNOWN = AUTOCLEAR_BITMAPS | AUTOCLEAR_DATA_FILE_RAW;

/** compression_type values (qcow2.txt byte 104). */
export const COMPRESSION_ZLIB = 0;
export const COMPRESSION_ZSTD = 1;

/** crypt_method values (qcow2.txt bytes 32-35). */
export const CRYPT_NONE = 0;
export const CRYPT_AES = 1;
export const CRYPT_LUKS = 2;

/** The longest backing file name QEMU accepts (1023 bytes, qcow2.txt backing_file_size). */
export const MAX_BACKING_NAME = 1023;

/** Names QEMU puts in the feature name table (qcow2.txt "Feature name table"). */
export const KNOWN_FEATURE_NAMES: readonly { type: number; bit: number; name: string }[] = [
  { type: 0, bit: 0, name: 'dirty bit' },
  { type: 0, bit: 1, name: 'corrupt bit' },
  { type: 0, bit: 2, name: 'external data file' },
  { type: 0, bit: 3, name: 'compression type' },
  { type: 0, bit: 4, name: 'extended L2 entries' },
  { type: 1, bit: 0, name: 'lazy refcounts' },
  { type: 2, bit: 0, name: 'bitmaps' },
  { type: 2, bit: 1, name: 'raw external data' },
];

export interface FeatureName {
  type: number;
  bit: number;
  name: string;
}

/** A header extension kept as bytes (unknown types are preserved on rewrite). */
export interface RawExtension {
  type: number;
  data: Buffer;
}

/** The decoded header and extensions (qcow2.txt "Header"). */
export interface Qcow2Header {
  version: number;
  backingFileOffset: number;
  backingFileSize: number;
  clusterBits: number;
  /** Virtual disk size in bytes. */
  size: number;
  cryptMethod: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  incompatible: bigint;
  compatible: bigint;
  autoclear: bigint;
  refcountOrder: number;
  headerLength: number;
  compressionType: number;
  backingFile?: string;
  backingFormat?: string;
  dataFile?: string;
  featureNames: FeatureName[];
  /** Bitmaps extension payload, preserved byte for byte. */
  bitmapsExt?: Buffer;
  /** Full disk encryption header pointer (offset, length), kept for the encryption work. */
  cryptoExt?: Buffer;
  /** Extensions Platter does not know, preserved on rewrite. */
  unknownExtensions: RawExtension[];
}

/** Decode the fixed header fields from the first HEADER_READ_BYTES of the file. */
export function decodeFixedHeader(buf: Buffer, ctx: BlockErrorContext): Qcow2Header {
  if (buf.length < HEADER_V2_LENGTH) throw invalidImage('Image is not in qcow2 format', ctx);
  const magic = buf.readUInt32BE(0);
  if (magic !== QCOW2_MAGIC) throw invalidImage('Image is not in qcow2 format', ctx);
  const version = buf.readUInt32BE(4);
  const h: Qcow2Header = {
    version,
    backingFileOffset: u64ToNumber(buf.readBigUInt64BE(8), 'backing_file_offset', ctx),
    backingFileSize: buf.readUInt32BE(16),
    clusterBits: buf.readUInt32BE(20),
    size: sizeToNumber(buf.readBigUInt64BE(24), 'Image size', ctx),
    cryptMethod: buf.readUInt32BE(32),
    l1Size: buf.readUInt32BE(36),
    l1TableOffset: u64ToNumber(buf.readBigUInt64BE(40), 'L1 table offset', ctx),
    refcountTableOffset: u64ToNumber(buf.readBigUInt64BE(48), 'Refcount table offset', ctx),
    refcountTableClusters: buf.readUInt32BE(56),
    nbSnapshots: buf.readUInt32BE(60),
    snapshotsOffset: u64ToNumber(buf.readBigUInt64BE(64), 'Snapshot table offset', ctx),
    incompatible: 0n,
    compatible: 0n,
    autoclear: 0n,
    refcountOrder: 4,
    headerLength: HEADER_V2_LENGTH,
    compressionType: COMPRESSION_ZLIB,
    featureNames: [],
    unknownExtensions: [],
  };
  if (version >= 3) {
    if (buf.length < HEADER_V3_MIN_LENGTH) throw invalidImage('qcow2 header too short', ctx);
    h.incompatible = buf.readBigUInt64BE(72);
    h.compatible = buf.readBigUInt64BE(80);
    h.autoclear = buf.readBigUInt64BE(88);
    h.refcountOrder = buf.readUInt32BE(96);
    h.headerLength = buf.readUInt32BE(100);
    if (h.headerLength > HEADER_V3_MIN_LENGTH && buf.length > HEADER_V3_MIN_LENGTH) h.compressionType = buf.readUInt8(104);
  }
  return h;
}

/**
 * Decode the header extensions found in `cluster0` (the whole first cluster) after the fixed
 * header, into `h` (qcow2.txt "Header extensions": type u32, length u32, data padded to 8).
 */
export function decodeExtensions(h: Qcow2Header, cluster0: Buffer, ctx: BlockErrorContext): void {
  let off = h.version >= 3 ? h.headerLength : HEADER_V2_LENGTH;
  // Extensions end at the backing file name when there is one (QEMU: ext_end).
  const end = h.backingFileOffset > 0 ? Math.min(h.backingFileOffset, cluster0.length) : cluster0.length;
  for (;;) {
    if (off + 8 > end) {
      if (off >= end) break;
      throw invalidImage('ext_magic: Failed to read header extension', ctx);
    }
    const type = cluster0.readUInt32BE(off);
    const len = cluster0.readUInt32BE(off + 4);
    off += 8;
    if (type === EXT_END) break;
    if (len > end - off) throw invalidImage(`ext_len too large: header extension 0x${type.toString(16)} of ${len} bytes runs past the end of the header area (${end - off} bytes left)`, ctx);
    const data = Buffer.from(cluster0.subarray(off, off + len));
    off += (len + 7) & ~7;
    switch (type) {
      case EXT_BACKING_FORMAT:
        h.backingFormat = trimNul(data.toString('latin1'));
        break;
      case EXT_DATA_FILE:
        h.dataFile = trimNul(data.toString('utf8'));
        break;
      case EXT_FEATURE_TABLE:
        {
          // A last entry cut short still counts (its missing bytes read as zero); the table
          // ends at the first entry with an empty name, as QEMU reads it.
          const table = Buffer.alloc(Math.ceil(data.length / FEATURE_ENTRY_SIZE) * FEATURE_ENTRY_SIZE);
          data.copy(table);
          for (let p = 0; p + FEATURE_ENTRY_SIZE <= table.length && table[p + 2] !== 0; p += FEATURE_ENTRY_SIZE) {
            h.featureNames.push({ type: table[p]!, bit: table[p + 1]!, name: trimNul(table.toString('utf8', p + 2, p + FEATURE_ENTRY_SIZE)) });
          }
        }
        break;
      case EXT_BITMAPS:
        h.bitmapsExt = data;
        break;
      case EXT_CRYPTO:
        h.cryptoExt = data;
        break;
      default:
        h.unknownExtensions.push({ type, data });
    }
  }
}

function trimNul(s: string): string {
  const i = s.indexOf('\0');
  return i < 0 ? s : s.slice(0, i);
}

/**
 * The unsupported incompatible bits in words, as QEMU reports them: the names the image's own
 * feature table gives, in table order, then the remaining bits as one hexadecimal mask.
 */
export function unsupportedFeatureText(h: Qcow2Header, mask: bigint): string {
  const parts: string[] = [];
  for (const f of h.featureNames) {
    const bit = 1n << BigInt(f.bit);
    if (f.type === 0 && f.bit < 64 && mask & bit) {
      parts.push(f.name);
      mask &= ~bit;
    }
  }
  if (mask) parts.push(`Unknown incompatible feature: ${mask.toString(16)}`);
  return parts.join(', ');
}

function extension(type: number, data: Buffer): Buffer {
  const padded = (data.length + 7) & ~7;
  const out = Buffer.alloc(8 + padded);
  out.writeUInt32BE(type, 0);
  out.writeUInt32BE(data.length, 4);
  data.copy(out, 8);
  return out;
}

/**
 * Encode cluster 0 (header, extensions, backing name) for `h`, at most `clusterSize` bytes.
 * Sets h.headerLength, h.backingFileOffset and h.backingFileSize to where things went.
 */
export function encodeHeader(h: Qcow2Header, clusterSize: number): Buffer {
  const headerLength = h.version >= 3 ? HEADER_V3_LENGTH : HEADER_V2_LENGTH;
  const parts: Buffer[] = [];
  if (h.backingFormat) parts.push(extension(EXT_BACKING_FORMAT, Buffer.from(h.backingFormat, 'latin1')));
  if (h.dataFile) parts.push(extension(EXT_DATA_FILE, Buffer.from(h.dataFile, 'utf8')));
  if (h.cryptoExt) parts.push(extension(EXT_CRYPTO, h.cryptoExt));
  // The feature name table is left out of small clusters, where it would crowd out the rest
  // (QEMU writes it only for clusters above 4 KiB).
  if (h.version >= 3 && clusterSize > FEATURE_TABLE_MIN_CLUSTER) {
    const table = Buffer.alloc(KNOWN_FEATURE_NAMES.length * FEATURE_ENTRY_SIZE);
    KNOWN_FEATURE_NAMES.forEach((f, i) => {
      table[i * FEATURE_ENTRY_SIZE] = f.type;
      table[i * FEATURE_ENTRY_SIZE + 1] = f.bit;
      table.write(f.name, i * FEATURE_ENTRY_SIZE + 2, FEATURE_NAME_BYTES, 'utf8');
    });
    parts.push(extension(EXT_FEATURE_TABLE, table));
  }
  if (h.bitmapsExt) parts.push(extension(EXT_BITMAPS, h.bitmapsExt));
  for (const e of h.unknownExtensions) parts.push(extension(e.type, e.data));
  parts.push(Buffer.alloc(8)); // end of extensions
  const exts = Buffer.concat(parts);
  const name = h.backingFile !== undefined ? Buffer.from(h.backingFile, 'utf8') : Buffer.alloc(0);
  const total = headerLength + exts.length + name.length;
  if (total > clusterSize) throw invalidImage(`qcow2 header (${total} bytes with extensions and backing file name) does not fit in one cluster (${clusterSize} bytes)`);
  h.headerLength = h.version >= 3 ? headerLength : HEADER_V2_LENGTH;
  h.backingFileOffset = name.length > 0 ? headerLength + exts.length : 0;
  h.backingFileSize = name.length;

  const out = Buffer.alloc(total);
  out.writeUInt32BE(QCOW2_MAGIC, 0);
  out.writeUInt32BE(h.version, 4);
  out.writeBigUInt64BE(BigInt(h.backingFileOffset), 8);
  out.writeUInt32BE(h.backingFileSize, 16);
  out.writeUInt32BE(h.clusterBits, 20);
  out.writeBigUInt64BE(BigInt(h.size), 24);
  out.writeUInt32BE(h.cryptMethod, 32);
  out.writeUInt32BE(h.l1Size, 36);
  out.writeBigUInt64BE(BigInt(h.l1TableOffset), 40);
  out.writeBigUInt64BE(BigInt(h.refcountTableOffset), 48);
  out.writeUInt32BE(h.refcountTableClusters, 56);
  out.writeUInt32BE(h.nbSnapshots, 60);
  out.writeBigUInt64BE(BigInt(h.snapshotsOffset), 64);
  if (h.version >= 3) {
    out.writeBigUInt64BE(h.incompatible, 72);
    out.writeBigUInt64BE(h.compatible, 80);
    out.writeBigUInt64BE(h.autoclear, 88);
    out.writeUInt32BE(h.refcountOrder, 96);
    out.writeUInt32BE(headerLength, 100);
    out.writeUInt8(h.compressionType, 104);
  }
  exts.copy(out, headerLength);
  name.copy(out, headerLength + exts.length);
  return out;
}

/** A fresh header with QEMU's defaults for the fields create does not choose. */
export function emptyHeader(version: number, clusterBits: number, size: number): Qcow2Header {
  return {
    version,
    backingFileOffset: 0,
    backingFileSize: 0,
    clusterBits,
    size,
    cryptMethod: CRYPT_NONE,
    l1Size: 0,
    l1TableOffset: 0,
    refcountTableOffset: 0,
    refcountTableClusters: 0,
    nbSnapshots: 0,
    snapshotsOffset: 0,
    incompatible: 0n,
    compatible: 0n,
    autoclear: 0n,
    refcountOrder: 4,
    headerLength: version >= 3 ? HEADER_V3_LENGTH : HEADER_V2_LENGTH,
    compressionType: COMPRESSION_ZLIB,
    featureNames: [],
    unknownExtensions: [],
  };
}

// The VHD hard disk footer (Microsoft "Virtual Hard Disk Image Format Specification", section
// "Hard Disk Footer Format"): 512 bytes, big-endian, cookie "conectix", checksum = one's
// complement of the byte sum with the checksum field taken as zero. Fixed disks carry it at the
// end of the file only; dynamic and differencing disks also keep a copy at offset 0.

import { invalidImage } from '../../errors.ts';

export const FOOTER_SIZE = 512;
/** Footer cookie (spec: "Cookie"). */
export const FOOTER_COOKIE = 'conectix';
/** Disk types (spec: "Disk Type"). */
export const DISK_TYPE_FIXED = 2;
export const DISK_TYPE_DYNAMIC = 3;
export const DISK_TYPE_DIFFERENCING = 4;
/** "Features": bit 1 is reserved and must always be set. */
export const FEATURES_RESERVED = 0x2;
/** "File Format Version" 1.0. */
export const FORMAT_VERSION = 0x00010000;
/** "Data Offset" of a fixed disk: no further structure. */
export const NO_DATA_OFFSET = 0xffffffffffffffffn;
/** Timestamps count seconds since 2000-01-01 00:00:00 UTC. */
export const VHD_EPOCH_UNIX = 946684800;
/** Byte offset of the checksum field inside the footer. */
const CHECKSUM_OFFSET = 64;

export interface VhdFooter {
  features: number;
  version: number;
  /** Offset of the dynamic disk header (fixed: all ones). */
  dataOffset: bigint;
  timestamp: number;
  /** Four bytes, e.g. "qemu", "win ", "d2v ", "tap\0". */
  creatorApp: string;
  creatorVersion: number;
  creatorOs: string;
  originalSize: bigint;
  currentSize: bigint;
  cylinders: number;
  heads: number;
  sectorsPerTrack: number;
  diskType: number;
  checksum: number;
  uuid: Buffer;
  savedState: number;
}

/** The spec's checksum: one's complement of the sum of all bytes, checksum field as zero. */
export function vhdChecksum(buf: Buffer, checksumOffset: number): number {
  let sum = 0;
  for (let i = 0; i < buf.length; i++) {
    if (i >= checksumOffset && i < checksumOffset + 4) continue;
    sum = (sum + buf[i]!) >>> 0;
  }
  return ~sum >>> 0;
}

export function hasCookie(buf: Buffer): boolean {
  return buf.length >= 8 && buf.toString('latin1', 0, 8) === FOOTER_COOKIE;
}

export function decodeFooter(buf: Buffer): VhdFooter {
  if (buf.length < FOOTER_SIZE) throw invalidImage(`VHD footer is ${buf.length} bytes, expected ${FOOTER_SIZE}`);
  return {
    features: buf.readUInt32BE(8),
    version: buf.readUInt32BE(12),
    dataOffset: buf.readBigUInt64BE(16),
    timestamp: buf.readUInt32BE(24),
    creatorApp: buf.toString('latin1', 28, 32),
    creatorVersion: buf.readUInt32BE(32),
    creatorOs: buf.toString('latin1', 36, 40),
    originalSize: buf.readBigUInt64BE(40),
    currentSize: buf.readBigUInt64BE(48),
    cylinders: buf.readUInt16BE(56),
    heads: buf.readUInt8(58),
    sectorsPerTrack: buf.readUInt8(59),
    diskType: buf.readUInt32BE(60),
    checksum: buf.readUInt32BE(CHECKSUM_OFFSET),
    uuid: Buffer.from(buf.subarray(68, 84)),
    savedState: buf.readUInt8(84),
  };
}

/** Cookie then checksum, in that order, with QEMU's words. */
export function validateFooter(buf: Buffer, f: VhdFooter): void {
  if (!hasCookie(buf)) throw invalidImage('invalid VPC image');
  if (vhdChecksum(buf.subarray(0, FOOTER_SIZE), CHECKSUM_OFFSET) !== f.checksum) throw invalidImage('Incorrect header checksum');
}

/** Encode with a freshly computed checksum. */
export function encodeFooter(f: Omit<VhdFooter, 'checksum'>): Buffer {
  const buf = Buffer.alloc(FOOTER_SIZE);
  buf.write(FOOTER_COOKIE, 0, 'latin1');
  buf.writeUInt32BE(f.features, 8);
  buf.writeUInt32BE(f.version, 12);
  buf.writeBigUInt64BE(f.dataOffset, 16);
  buf.writeUInt32BE(f.timestamp >>> 0, 24);
  buf.write(f.creatorApp.padEnd(4, '\0').slice(0, 4), 28, 'latin1');
  buf.writeUInt32BE(f.creatorVersion, 32);
  buf.write(f.creatorOs.padEnd(4, '\0').slice(0, 4), 36, 'latin1');
  buf.writeBigUInt64BE(f.originalSize, 40);
  buf.writeBigUInt64BE(f.currentSize, 48);
  buf.writeUInt16BE(f.cylinders, 56);
  buf.writeUInt8(f.heads, 58);
  buf.writeUInt8(f.sectorsPerTrack, 59);
  buf.writeUInt32BE(f.diskType, 60);
  f.uuid.copy(buf, 68, 0, 16);
  buf.writeUInt8(f.savedState, 84);
  buf.writeUInt32BE(vhdChecksum(buf, CHECKSUM_OFFSET), CHECKSUM_OFFSET);
  return buf;
}

// The VHD dynamic disk header (VHD specification, section "Dynamic Disk Header Format"):
// 1024 bytes, big-endian, cookie "cxsparse", at the footer's Data Offset. Names the Block
// Allocation Table, the block size and, for differencing disks, the parent (UUID, timestamp,
// UTF-16BE name and eight parent locator entries).

import { invalidImage } from '../../errors.ts';
import { vhdChecksum } from './footer.ts';

export const DYN_HEADER_SIZE = 1024;
export const DYN_HEADER_COOKIE = 'cxsparse';
/** Header version 1.0. */
export const DYN_HEADER_VERSION = 0x00010000;
/** QEMU and Microsoft tools write all 64 bits set in the unused "Data Offset". */
export const DYN_NO_DATA_OFFSET = 0xffffffffffffffffn;
const CHECKSUM_OFFSET = 36;
const PARENT_NAME_OFFSET = 64;
const PARENT_NAME_BYTES = 512;
const LOCATOR_OFFSET = 576;
const LOCATOR_COUNT = 8;
const LOCATOR_SIZE = 24;

/** Parent locator platform codes (spec: "Platform Code"). */
export const PLATFORM_W2KU = 'W2ku'; // absolute Windows path, UTF-16LE
export const PLATFORM_W2RU = 'W2ru'; // relative Windows path, UTF-16LE
export const PLATFORM_MACX = 'MacX'; // file URL, UTF-8

export interface ParentLocator {
  platform: string;
  dataSpace: number;
  dataLength: number;
  dataOffset: bigint;
}

export interface VhdDynHeader {
  dataOffset: bigint;
  tableOffset: bigint;
  version: number;
  maxTableEntries: number;
  blockSize: number;
  checksum: number;
  parentUuid: Buffer;
  parentTimestamp: number;
  parentName: string;
  locators: ParentLocator[];
}

export function decodeDynHeader(buf: Buffer): VhdDynHeader {
  if (buf.length < DYN_HEADER_SIZE) throw invalidImage('Error reading dynamic VHD header');
  if (buf.toString('latin1', 0, 8) !== DYN_HEADER_COOKIE) throw invalidImage('Invalid header magic');
  const nameBytes = Buffer.from(buf.subarray(PARENT_NAME_OFFSET, PARENT_NAME_OFFSET + PARENT_NAME_BYTES));
  nameBytes.swap16(); // UTF-16BE on disk
  const nul = nameBytes.toString('utf16le').indexOf('\0');
  const parentName = nameBytes.toString('utf16le').slice(0, nul < 0 ? undefined : nul);
  const locators: ParentLocator[] = [];
  for (let i = 0; i < LOCATOR_COUNT; i++) {
    const o = LOCATOR_OFFSET + i * LOCATOR_SIZE;
    const platform = buf.toString('latin1', o, o + 4);
    if (buf.readUInt32BE(o) === 0) continue;
    locators.push({ platform, dataSpace: buf.readUInt32BE(o + 4), dataLength: buf.readUInt32BE(o + 8), dataOffset: buf.readBigUInt64BE(o + 16) });
  }
  return {
    dataOffset: buf.readBigUInt64BE(8),
    tableOffset: buf.readBigUInt64BE(16),
    version: buf.readUInt32BE(24),
    maxTableEntries: buf.readUInt32BE(28),
    blockSize: buf.readUInt32BE(32),
    checksum: buf.readUInt32BE(CHECKSUM_OFFSET),
    parentUuid: Buffer.from(buf.subarray(40, 56)),
    parentTimestamp: buf.readUInt32BE(56),
    parentName,
    locators,
  };
}

/** True when the stored checksum matches (QEMU does not check it; we only report it). */
export function dynHeaderChecksumOk(buf: Buffer, h: VhdDynHeader): boolean {
  return vhdChecksum(buf.subarray(0, DYN_HEADER_SIZE), CHECKSUM_OFFSET) === h.checksum;
}

/** A header for a new dynamic disk (no parent). */
export function encodeDynHeader(tableOffset: number, maxTableEntries: number, blockSize: number): Buffer {
  const buf = Buffer.alloc(DYN_HEADER_SIZE);
  buf.write(DYN_HEADER_COOKIE, 0, 'latin1');
  buf.writeBigUInt64BE(DYN_NO_DATA_OFFSET, 8);
  buf.writeBigUInt64BE(BigInt(tableOffset), 16);
  buf.writeUInt32BE(DYN_HEADER_VERSION, 24);
  buf.writeUInt32BE(maxTableEntries, 28);
  buf.writeUInt32BE(blockSize, 32);
  buf.writeUInt32BE(vhdChecksum(buf, CHECKSUM_OFFSET), CHECKSUM_OFFSET);
  return buf;
}

// VHDX file identifier and headers (MS-VHDX 2.2.1 File Type Identifier, 2.2.2 Headers): the
// identifier "vhdxfile" at 0, two 4 KiB headers at 64 KiB and 128 KiB, each with a CRC-32C over
// the 4 KiB and a sequence number; the valid one with the higher sequence number is current.

import { invalidImage } from '../../errors.ts';
import { crc32cWithZeroField } from '../../util/crc32c.ts';
import { GUID_SIZE } from './guid.ts';

export const FILE_SIGNATURE = 'vhdxfile';
/** Bytes of the creator field (UTF-16LE) after the signature. */
export const CREATOR_BYTES = 512;
export const HEADER_OFFSETS = [64 * 1024, 128 * 1024] as const;
/** A header occupies 4 KiB; its checksum covers all of it. */
export const HEADER_SIZE = 4096;
export const HEADER_SIGNATURE = 'head';
/** The only header version (MS-VHDX 2.2.2.1 "Version"). */
export const HEADER_VERSION = 1;
/** The only log version (MS-VHDX 2.2.2.1 "LogVersion"). */
export const LOG_VERSION = 0;
/** The header section (identifier, headers, region tables) spans the first 1 MiB. */
export const HEADER_SECTION_END = 1 << 20;
const MIB = 1 << 20;
const CHECKSUM_OFFSET = 4;

export interface VhdxHeader {
  sequence: bigint;
  fileWriteGuid: Buffer;
  dataWriteGuid: Buffer;
  logGuid: Buffer;
  logVersion: number;
  version: number;
  logLength: number;
  logOffset: number;
}

export function hasFileSignature(buf: Buffer): boolean {
  return buf.length >= 8 && buf.toString('latin1', 0, 8) === FILE_SIGNATURE;
}

/** Decode one header slot, or undefined when its signature, CRC or version is wrong. */
export function decodeHeader(buf: Buffer): VhdxHeader | undefined {
  if (buf.length < HEADER_SIZE || buf.toString('latin1', 0, 4) !== HEADER_SIGNATURE) return undefined;
  if (crc32cWithZeroField(buf.subarray(0, HEADER_SIZE), CHECKSUM_OFFSET) !== buf.readUInt32LE(CHECKSUM_OFFSET)) return undefined;
  const version = buf.readUInt16LE(66);
  if (version !== HEADER_VERSION) return undefined;
  const logOffset = buf.readBigUInt64LE(72);
  return {
    sequence: buf.readBigUInt64LE(8),
    fileWriteGuid: Buffer.from(buf.subarray(16, 16 + GUID_SIZE)),
    dataWriteGuid: Buffer.from(buf.subarray(32, 32 + GUID_SIZE)),
    logGuid: Buffer.from(buf.subarray(48, 48 + GUID_SIZE)),
    logVersion: buf.readUInt16LE(64),
    version,
    logLength: buf.readUInt32LE(68),
    logOffset: logOffset > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(logOffset),
  };
}

export function encodeHeader(h: VhdxHeader): Buffer {
  const buf = Buffer.alloc(HEADER_SIZE);
  buf.write(HEADER_SIGNATURE, 0, 'latin1');
  buf.writeBigUInt64LE(h.sequence, 8);
  h.fileWriteGuid.copy(buf, 16);
  h.dataWriteGuid.copy(buf, 32);
  h.logGuid.copy(buf, 48);
  buf.writeUInt16LE(h.logVersion, 64);
  buf.writeUInt16LE(h.version, 66);
  buf.writeUInt32LE(h.logLength, 68);
  buf.writeBigUInt64LE(BigInt(h.logOffset), 72);
  buf.writeUInt32LE(crc32cWithZeroField(buf, CHECKSUM_OFFSET), CHECKSUM_OFFSET);
  return buf;
}

/**
 * Pick the current header (MS-VHDX 2.2.2): the valid one with the higher sequence number. Equal
 * sequence numbers are accepted only when the headers are identical (Disk2VHD writes two).
 * Returns the slot index and the header.
 */
export function chooseHeader(slots: Buffer[]): { slot: number; header: VhdxHeader } {
  const h = slots.map(decodeHeader);
  const [a, b] = h;
  let slot: number;
  if (a && !b) slot = 0;
  else if (!a && b) slot = 1;
  else if (!a || !b) throw invalidImage('No valid VHDX header found (both headers have a bad signature, version or CRC-32C checksum)');
  else if (a.sequence > b.sequence) slot = 0;
  else if (b.sequence > a.sequence) slot = 1;
  else if (slots[0]!.subarray(0, 80).equals(slots[1]!.subarray(0, 80))) slot = 0;
  else throw invalidImage(`No valid VHDX header found (both headers have sequence number ${a.sequence} but differ)`);
  const header = h[slot]!;
  validateLogPlacement(header);
  return { slot, header };
}

/** The log must be 1 MiB aligned, a multiple of 1 MiB, and past the header section. */
function validateLogPlacement(h: VhdxHeader): void {
  if (h.logVersion !== LOG_VERSION) throw invalidImage(`Unsupported VHDX log version ${h.logVersion} (expected ${LOG_VERSION})`);
  if (h.logLength % MIB !== 0 || h.logOffset % MIB !== 0) {
    throw invalidImage(`VHDX log (offset ${h.logOffset}, length ${h.logLength}) is not aligned to 1 MiB`);
  }
  if (h.logLength > 0 && h.logOffset < HEADER_SECTION_END) throw invalidImage(`VHDX log at offset ${h.logOffset} overlaps the header section`);
}

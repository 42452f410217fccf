// VHDX region table (MS-VHDX 2.2.3): 64 KiB at 192 KiB (copy at 256 KiB), signature "regi",
// CRC-32C over the 64 KiB, up to 2047 entries of {GUID, file offset, length, required}. Platter
// needs the BAT and metadata regions; an unknown region marked required is refused (the spec
// says a reader must fail). Regions may not overlap each other, the header section or the log.

import { invalidImage, unsupported } from '../../errors.ts';
import { crc32cWithZeroField } from '../../util/crc32c.ts';
import { BAT_REGION_GUID, METADATA_REGION_GUID, guidToString } from './guid.ts';

export const REGION_TABLE_OFFSETS = [192 * 1024, 256 * 1024] as const;
export const REGION_TABLE_SIZE = 64 * 1024;
export const REGION_SIGNATURE = 'regi';
/** MS-VHDX 2.2.3.1: at most 2047 entries. */
export const MAX_REGION_ENTRIES = 2047;
const HEADER_BYTES = 16;
const ENTRY_BYTES = 32;
const CHECKSUM_OFFSET = 4;
const REQUIRED_BIT = 1;
const MIB = 1 << 20;

export interface Region {
  guid: string;
  offset: number;
  length: number;
  required: boolean;
}

/** Byte ranges of the file already claimed, for overlap checks. */
export class RegionMap {
  readonly #ranges: { start: number; end: number; what: string }[] = [];
  add(start: number, length: number, what: string): void {
    this.#ranges.push({ start, end: start + length, what });
  }
  /** The name of a claimed range that [start, start+length) overlaps, if any. */
  overlap(start: number, length: number): string | undefined {
    const end = start + length;
    return this.#ranges.find((r) => r.start < end && start < r.end)?.what;
  }
}

export function decodeRegionTable(buf: Buffer, regions: RegionMap): { bat: Region; metadata: Region } {
  if (buf.toString('latin1', 0, 4) !== REGION_SIGNATURE) {
    throw invalidImage(`VHDX region table has signature '${buf.toString('latin1', 0, 4).replace(/[^\x20-\x7e]/g, '?')}' (expected '${REGION_SIGNATURE}')`);
  }
  if (crc32cWithZeroField(buf.subarray(0, REGION_TABLE_SIZE), CHECKSUM_OFFSET) !== buf.readUInt32LE(CHECKSUM_OFFSET)) {
    throw invalidImage('VHDX region table has a bad CRC-32C checksum');
  }
  const count = buf.readUInt32LE(8);
  if (count > MAX_REGION_ENTRIES) throw invalidImage(`VHDX region table has ${count} entries (at most ${MAX_REGION_ENTRIES} allowed)`);
  let bat: Region | undefined;
  let metadata: Region | undefined;
  for (let i = 0; i < count; i++) {
    const o = HEADER_BYTES + i * ENTRY_BYTES;
    const offset = buf.readBigUInt64LE(o + 16);
    const r: Region = {
      guid: guidToString(buf.subarray(o, o + 16)),
      offset: offset > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(offset),
      length: buf.readUInt32LE(o + 24),
      required: (buf.readUInt32LE(o + 28) & REQUIRED_BIT) !== 0,
    };
    if (r.offset % MIB !== 0 || r.length % MIB !== 0 || r.length === 0 || !Number.isSafeInteger(r.offset + r.length)) {
      throw invalidImage(`VHDX region ${r.guid} (offset ${r.offset}, length ${r.length}) is not a non-empty multiple of 1 MiB at a 1 MiB boundary`);
    }
    const hit = regions.overlap(r.offset, r.length);
    if (hit) throw invalidImage(`VHDX region ${r.guid} (offset ${r.offset}, length ${r.length}) overlaps the ${hit}`);
    regions.add(r.offset, r.length, `region ${r.guid}`);
    if (r.guid === BAT_REGION_GUID) {
      if (bat) throw invalidImage('VHDX region table lists the BAT region twice');
      bat = r;
    } else if (r.guid === METADATA_REGION_GUID) {
      if (metadata) throw invalidImage('VHDX region table lists the metadata region twice');
      metadata = r;
    } else if (r.required) {
      throw unsupported(`VHDX region ${r.guid} is required but unknown`);
    }
  }
  if (!bat || !metadata) throw invalidImage(`VHDX region table lacks the ${bat ? 'metadata' : 'BAT'} region`);
  return { bat, metadata };
}

/** A region table naming the BAT and metadata regions. */
export function encodeRegionTable(bat: { offset: number; length: number }, metadata: { offset: number; length: number }, guidBytes: (g: string) => Buffer): Buffer {
  const buf = Buffer.alloc(REGION_TABLE_SIZE);
  buf.write(REGION_SIGNATURE, 0, 'latin1');
  buf.writeUInt32LE(2, 8);
  [[BAT_REGION_GUID, bat], [METADATA_REGION_GUID, metadata]].forEach(([g, r], i) => {
    const o = HEADER_BYTES + i * ENTRY_BYTES;
    const reg = r as { offset: number; length: number };
    guidBytes(g as string).copy(buf, o);
    buf.writeBigUInt64LE(BigInt(reg.offset), o + 16);
    buf.writeUInt32LE(reg.length, o + 24);
  });
  buf.writeUInt32LE(crc32cWithZeroField(buf, CHECKSUM_OFFSET), CHECKSUM_OFFSET);
  return buf;
}

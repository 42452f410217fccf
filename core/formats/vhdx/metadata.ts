// VHDX metadata region (MS-VHDX 2.6): a table (signature "metadata", up to 2047 entries of
// {item GUID, offset, length, flags}) in the first 64 KiB of the region, and the items it points
// at. Platter reads the five required system items: file parameters (block size, leave blocks
// allocated, has parent), virtual disk size, page 83 data, logical and physical sector size.

import { invalidImage, unsupported } from '../../errors.ts';
import {
  FILE_PARAMETERS_GUID, LOGICAL_SECTOR_SIZE_GUID, PAGE83_GUID, PARENT_LOCATOR_GUID, PHYSICAL_SECTOR_SIZE_GUID,
  VIRTUAL_DISK_SIZE_GUID, guidFromString, guidToString,
} from './guid.ts';

export const METADATA_SIGNATURE = 'metadata';
/** The table takes the first 64 KiB of the region; items live after it. */
export const METADATA_TABLE_SIZE = 64 * 1024;
export const MAX_METADATA_ENTRIES = 2047;
const TABLE_HEADER_BYTES = 32;
const ENTRY_BYTES = 32;
/** Entry flags (MS-VHDX 2.6.1.2). */
export const META_IS_USER = 1;
export const META_IS_VIRTUAL_DISK = 2;
export const META_IS_REQUIRED = 4;
/** File parameter bits (MS-VHDX 2.6.2.1). */
export const PARAM_LEAVE_BLOCKS_ALLOCATED = 1;
export const PARAM_HAS_PARENT = 2;
/** Block size limits (MS-VHDX 2.6.2.1: 1 MiB to 256 MiB, a power of two). */
export const BLOCK_SIZE_MIN = 1 << 20;
export const BLOCK_SIZE_MAX = 256 << 20;
/** Largest virtual disk (MS-VHDX 2.6.2.2: 64 TiB). */
export const MAX_VIRTUAL_SIZE = 64 * 2 ** 40;

export interface VhdxMetadata {
  blockSize: number;
  leaveBlocksAllocated: boolean;
  hasParent: boolean;
  virtualSize: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
  page83: string;
}

interface Entry {
  offset: number;
  length: number;
  flags: number;
}

/** Decode the table and items from the region's bytes (`region` = whole region, length checked). */
export function decodeMetadata(region: Buffer): VhdxMetadata {
  if (region.toString('latin1', 0, 8) !== METADATA_SIGNATURE) throw invalidImage(`VHDX metadata table has signature '${region.toString('latin1', 0, 8).replace(/[^\x20-\x7e]/g, '?')}' (expected '${METADATA_SIGNATURE}')`);
  const count = region.readUInt16LE(10);
  if (count > MAX_METADATA_ENTRIES) throw invalidImage(`VHDX metadata table has ${count} entries (at most ${MAX_METADATA_ENTRIES})`);
  const items = new Map<string, Entry>();
  for (let i = 0; i < count; i++) {
    const o = TABLE_HEADER_BYTES + i * ENTRY_BYTES;
    const guid = guidToString(region.subarray(o, o + 16));
    const e: Entry = { offset: region.readUInt32LE(o + 16), length: region.readUInt32LE(o + 20), flags: region.readUInt32LE(o + 24) };
    if (items.has(guid)) throw invalidImage(`VHDX metadata item ${guid} is listed twice`);
    if (e.length > 0 && (e.offset < METADATA_TABLE_SIZE || e.offset + e.length > region.length)) {
      throw invalidImage(`VHDX metadata item ${guid} (offset ${e.offset}, length ${e.length}) lies outside the metadata region (${region.length} bytes, items start at ${METADATA_TABLE_SIZE})`);
    }
    const known = [FILE_PARAMETERS_GUID, VIRTUAL_DISK_SIZE_GUID, PAGE83_GUID, LOGICAL_SECTOR_SIZE_GUID, PHYSICAL_SECTOR_SIZE_GUID, PARENT_LOCATOR_GUID].includes(guid);
    if (!known && e.flags & META_IS_REQUIRED) throw unsupported(`VHDX metadata item ${guid} is required but unknown`);
    items.set(guid, e);
  }
  const item = (guid: string, name: string, minLength: number): Buffer => {
    const e = items.get(guid);
    if (!e) throw unsupported(`VHDX metadata lacks the required ${name} item`);
    if (e.length < minLength) throw invalidImage(`VHDX ${name} item is ${e.length} bytes (expected ${minLength})`);
    return region.subarray(e.offset, e.offset + e.length);
  };
  const params = item(FILE_PARAMETERS_GUID, 'file parameters', 8);
  const bits = params.readUInt32LE(4);
  const hasParent = (bits & PARAM_HAS_PARENT) !== 0;
  if (hasParent) {
    if (!items.has(PARENT_LOCATOR_GUID)) throw invalidImage('VHDX file parameters say the image has a parent, but there is no parent locator');
    // QEMU 7.2 has no differencing VHDX support and fails with ENOTSUP.
    throw unsupported('Operation not supported (differencing VHDX images are not supported)');
  }
  const blockSize = params.readUInt32LE(0);
  const sizeRaw = item(VIRTUAL_DISK_SIZE_GUID, 'virtual disk size', 8).readBigUInt64LE(0);
  const page83 = guidToString(item(PAGE83_GUID, 'page 83 data', 16));
  const logical = item(LOGICAL_SECTOR_SIZE_GUID, 'logical sector size', 4).readUInt32LE(0);
  const physical = item(PHYSICAL_SECTOR_SIZE_GUID, 'physical sector size', 4).readUInt32LE(0);
  if (blockSize < BLOCK_SIZE_MIN || blockSize > BLOCK_SIZE_MAX || (blockSize & (blockSize - 1)) !== 0) {
    throw invalidImage(`VHDX block size ${blockSize} is invalid (expected a power of two from 1 MiB to 256 MiB)`);
  }
  if (logical !== 512 && logical !== 4096) throw invalidImage(`VHDX logical sector size ${logical} is invalid (expected 512 or 4096)`);
  if (physical !== 512 && physical !== 4096) throw invalidImage(`VHDX physical sector size ${physical} is invalid (expected 512 or 4096)`);
  if (sizeRaw > BigInt(MAX_VIRTUAL_SIZE)) throw invalidImage(`VHDX virtual disk size ${sizeRaw} is over the 64 TiB limit`);
  const virtualSize = Number(sizeRaw);
  if (virtualSize % logical !== 0) throw invalidImage(`VHDX virtual disk size ${virtualSize} is not a multiple of the logical sector size ${logical}`);
  return { blockSize, leaveBlocksAllocated: (bits & PARAM_LEAVE_BLOCKS_ALLOCATED) !== 0, hasParent, virtualSize, logicalSectorSize: logical, physicalSectorSize: physical, page83 };
}

/** Table + items of a new image (the layout QEMU writes: items at 64 KiB, in this order). */
export function encodeMetadata(m: Omit<VhdxMetadata, 'hasParent'>, regionLength: number): Buffer {
  const buf = Buffer.alloc(regionLength);
  buf.write(METADATA_SIGNATURE, 0, 'latin1');
  const list: [string, number, number, (b: Buffer, o: number) => void][] = [
    [FILE_PARAMETERS_GUID, 8, META_IS_REQUIRED, (b, o) => { b.writeUInt32LE(m.blockSize, o); b.writeUInt32LE(m.leaveBlocksAllocated ? PARAM_LEAVE_BLOCKS_ALLOCATED : 0, o + 4); }],
    [VIRTUAL_DISK_SIZE_GUID, 8, META_IS_REQUIRED | META_IS_VIRTUAL_DISK, (b, o) => void b.writeBigUInt64LE(BigInt(m.virtualSize), o)],
    [PAGE83_GUID, 16, META_IS_REQUIRED | META_IS_VIRTUAL_DISK, (b, o) => void guidFromString(m.page83).copy(b, o)],
    [LOGICAL_SECTOR_SIZE_GUID, 4, META_IS_REQUIRED | META_IS_VIRTUAL_DISK, (b, o) => void b.writeUInt32LE(m.logicalSectorSize, o)],
    [PHYSICAL_SECTOR_SIZE_GUID, 4, META_IS_REQUIRED | META_IS_VIRTUAL_DISK, (b, o) => void b.writeUInt32LE(m.physicalSectorSize, o)],
  ];
  buf.writeUInt16LE(list.length, 10);
  let at = METADATA_TABLE_SIZE;
  list.forEach(([guid, len, flags, put], i) => {
    const o = TABLE_HEADER_BYTES + i * ENTRY_BYTES;
    guidFromString(guid).copy(buf, o);
    buf.writeUInt32LE(at, o + 16);
    buf.writeUInt32LE(len, o + 20);
    buf.writeUInt32LE(flags, o + 24);
    put(buf, at);
    at += len;
  });
  return buf;
}

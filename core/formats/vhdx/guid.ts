// GUIDs as VHDX stores them (MS-VHDX 2.1: GUIDs in the Microsoft mixed-endian layout: the first
// three fields little-endian, the last eight bytes as they are), and the GUIDs the spec names.

import { nodeCrypto } from '../../host/lazy-node-modules.ts';

export const GUID_SIZE = 16;

/** Text form (lower case, dashed) of 16 on-disk bytes. */
export function guidToString(b: Buffer): string {
  const h = (s: number, e: number, rev: boolean) => {
    const part = Buffer.from(b.subarray(s, e));
    if (rev) part.reverse();
    return part.toString('hex');
  };
  return `${h(0, 4, true)}-${h(4, 6, true)}-${h(6, 8, true)}-${h(8, 10, false)}-${h(10, 16, false)}`;
}

/** On-disk bytes of a dashed GUID text. */
export function guidFromString(s: string): Buffer {
  const [a, b, c, d, e] = s.split('-') as [string, string, string, string, string];
  return Buffer.concat([Buffer.from(a, 'hex').reverse(), Buffer.from(b, 'hex').reverse(), Buffer.from(c, 'hex').reverse(), Buffer.from(d, 'hex'), Buffer.from(e, 'hex')]);
}

export const isNullGuid = (b: Buffer) => b.every((x) => x === 0);

/** A random (version 4) GUID in on-disk layout. */
export function newGuid(): Buffer {
  const b = nodeCrypto().randomBytes(GUID_SIZE);
  b[7] = (b[7]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return b;
}

/** Region table entries (MS-VHDX 2.2.3.1). */
export const BAT_REGION_GUID = '2dc27766-f623-4200-9d64-115e9bfd4a08';
export const METADATA_REGION_GUID = '8b7ca206-4790-4b9a-b8fe-575f050f886e';
/** Known metadata items (MS-VHDX 2.6.2). */
export const FILE_PARAMETERS_GUID = 'caa16737-fa36-4d43-b3b6-33f0aa44e76b';
export const VIRTUAL_DISK_SIZE_GUID = '2fa54224-cd1b-4876-b211-5dbed83bf4b8';
export const PAGE83_GUID = 'beca12ab-b2e6-4523-93ef-c309e000c746';
export const LOGICAL_SECTOR_SIZE_GUID = '8141bf1d-a96f-4709-ba47-f233a8faab5f';
export const PHYSICAL_SECTOR_SIZE_GUID = 'cda348c7-445d-4471-9cc9-e9885251c556';
export const PARENT_LOCATOR_GUID = 'a8d35f2d-b30b-454d-abf7-d3d84834ab0c';

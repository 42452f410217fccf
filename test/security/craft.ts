// Byte-level crafting for the CVE corpus: locate and rewrite the on-disk fields a CVE is about,
// written from the specs (qcow2: docs/interop/qcow2.txt; VHDX: Microsoft VHDX spec v1.00 §2.2-2.6;
// VMDK: VMware Virtual Disk Format 1.1 §"The Descriptor File"). Independent of Platter's codecs on
// purpose: the tests must not share a decoder's mistakes.
import { crc32c } from '../../core/util/crc32c.ts';
import { qemuImg, qemuIo } from '../helpers/qemu.ts';

/** qcow2 header fields (qcow2.txt "Header"): byte offsets. */
export const Q2 = { size: 24, clusterBits: 20, l1Size: 36, l1Offset: 40, refcountOffset: 48, refcountClusters: 56, nbSnapshots: 60, snapshotsOffset: 64, headerLength: 100 } as const;
/** qcow2 L1/L2 entry: the host offset bits (qcow2.txt "L1 table entry" bits 9-55). */
export const Q2_OFFSET_MASK = 0x00fffffffffffe00n;
/** qcow2 L1/L2 entry bit 63: refcount exactly one ("COPIED"). */
export const Q2_COPIED = 1n << 63n;
/** qcow2 header extension type of the external data file name (qcow2.txt "Header extensions"). */
const Q2_EXT_DATA_FILE = 0x44415441;
/** qcow2 snapshot table entry: fixed part before the extra data (qcow2.txt "Snapshots"). */
export const Q2_SNAPSHOT_FIXED = 40;

/** Make an image with qemu-img (and, when asked, two data clusters with qemu-io). */
export function qemuImage(path: string, format: string, size: string, o: { data?: boolean; options?: string } = {}): string {
  qemuImg('create', '-q', '-f', format, ...(o.options ? ['-o', o.options] : []), path, size);
  if (o.data) qemuIo('-f', format, '-c', 'write -q -P 0x11 0 64k', '-c', 'write -q -P 0x22 4M 64k', path);
  return path;
}

/** Offset of the first qcow2 L2 table (through L1 entry 0). */
export function qcow2FirstL2(b: Buffer): number {
  const l1 = Number(b.readBigUInt64BE(Q2.l1Offset));
  return Number(b.readBigUInt64BE(l1) & Q2_OFFSET_MASK);
}

/** Rewrite the qcow2 header extensions, replacing the external data file name with `name`. */
export function setQcow2DataFile(b: Buffer, name: string): void {
  const start = b.readUInt32BE(Q2.headerLength);
  const exts: [number, Buffer][] = [];
  let p = start;
  for (;;) {
    const type = b.readUInt32BE(p);
    const len = b.readUInt32BE(p + 4);
    if (type === 0) break;
    exts.push([type, Buffer.from(b.subarray(p + 8, p + 8 + len))]);
    p += 8 + Math.ceil(len / 8) * 8;
  }
  b.fill(0, start, p + 8);
  p = start;
  for (const [type, old] of exts) {
    const data = type === Q2_EXT_DATA_FILE ? Buffer.from(name) : old;
    b.writeUInt32BE(type, p);
    b.writeUInt32BE(data.length, p + 4);
    data.copy(b, p + 8);
    p += 8 + Math.ceil(data.length / 8) * 8;
  }
}

/**
 * Append a snapshot table of `count` entries at the next cluster boundary; each entry points at
 * the active L1 table, has a 1-byte id and name and 24 bytes of extra data (qcow2 v3), and is then
 * passed to `edit`. Returns the grown image.
 */
export function withSnapshotTable(b: Buffer, count: number, edit: (entry: Buffer, i: number) => void = () => {}): Buffer {
  const extra = 24;
  const entryLen = Math.ceil((Q2_SNAPSHOT_FIXED + extra + 2) / 8) * 8;
  const cluster = 1 << b.readUInt32BE(Q2.clusterBits);
  const at = Math.ceil(b.length / cluster) * cluster;
  const out = Buffer.alloc(at + count * entryLen);
  b.copy(out);
  for (let i = 0; i < count; i++) {
    const e = out.subarray(at + i * entryLen, at + (i + 1) * entryLen);
    e.writeBigUInt64BE(b.readBigUInt64BE(Q2.l1Offset), 0);
    e.writeUInt32BE(b.readUInt32BE(Q2.l1Size), 8);
    e.writeUInt16BE(1, 12); // id_str_size
    e.writeUInt16BE(1, 14); // name_size
    e.writeUInt32BE(extra, 36);
    e.fill(0x41 + (i % 26), Q2_SNAPSHOT_FIXED + extra, Q2_SNAPSHOT_FIXED + extra + 2);
    edit(e, i);
  }
  out.writeUInt32BE(count, Q2.nbSnapshots);
  out.writeBigUInt64BE(BigInt(at), Q2.snapshotsOffset);
  return out;
}

// ---- VHDX (VHDX spec §2.2.2 region table, §2.6 metadata region)

/** The two region table copies (header section layout, VHDX spec §2.1). */
const VHDX_REGION_TABLES = [192 * 1024, 256 * 1024];
/** Each region table is 64 KiB, CRC-32C over all of it with the checksum field zeroed. */
const VHDX_REGION_TABLE_SIZE = 64 * 1024;
/** Region/metadata GUIDs as stored on disk (mixed endian, VHDX spec §2.2.2, §2.6.2). */
export const VHDX_BAT_GUID = Buffer.from('6677c22d23f600429d64115e9bfd4a08', 'hex');
export const VHDX_METADATA_GUID = Buffer.from('06a27c8b90479a4bb8fe575f050f886e', 'hex');
export const VHDX_FILE_PARAMETERS_GUID = Buffer.from('3767a1ca36fa434db3b633f0aa44e76b', 'hex');

/** The region table entry for `guid` in the first copy: entry offset, region offset, length. */
export function vhdxRegion(b: Buffer, guid: Buffer): { entry: number; offset: number; length: number } {
  const t = VHDX_REGION_TABLES[0]!;
  const n = b.readUInt32LE(t + 8);
  for (let i = 0; i < n; i++) {
    const e = t + 16 + 32 * i;
    if (b.subarray(e, e + 16).equals(guid)) return { entry: e - t, offset: Number(b.readBigUInt64LE(e + 16)), length: b.readUInt32LE(e + 24) };
  }
  throw new Error('region not found');
}

/** Apply `edit(tableOffset)` to both region table copies and fix their CRC-32C. */
export function editVhdxRegionTables(b: Buffer, edit: (table: number) => void): void {
  for (const t of VHDX_REGION_TABLES) {
    edit(t);
    b.writeUInt32LE(0, t + 4);
    b.writeUInt32LE(crc32c(b.subarray(t, t + VHDX_REGION_TABLE_SIZE)), t + 4);
  }
}

/** The metadata table entry for `guid`: entry position and absolute data position. */
export function vhdxMetadataItem(b: Buffer, guid: Buffer): { entry: number; data: number } {
  const m = vhdxRegion(b, VHDX_METADATA_GUID).offset;
  const n = b.readUInt16LE(m + 10);
  for (let i = 0; i < n; i++) {
    const e = m + 32 + 32 * i;
    if (b.subarray(e, e + 16).equals(guid)) return { entry: e, data: m + b.readUInt32LE(e + 16) };
  }
  throw new Error('metadata item not found');
}

// ---- VMDK

/** A monolithicFlat descriptor with one FLAT extent of 1 MiB named `extent`. */
export function vmdkFlatDescriptor(extent: string): string {
  return [
    '# Disk DescriptorFile',
    'version=1',
    'CID=fffffffe',
    'parentCID=ffffffff',
    'createType="monolithicFlat"',
    '',
    '# Extent description',
    `RW 2048 FLAT "${extent}" 0`,
    '',
    '# The Disk Data Base',
    '#DDB',
    'ddb.virtualHWVersion = "4"',
    'ddb.geometry.cylinders = "2"',
    'ddb.geometry.heads = "16"',
    'ddb.geometry.sectors = "63"',
    'ddb.adapterType = "ide"',
    '',
  ].join('\n');
}

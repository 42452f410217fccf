// The geometry and layout math of the virtual FAT disk, and the codecs of its fixed sectors (MBR,
// boot sector, FAT32 FSInfo). Facts from QEMU 7.2 block/vvfat.c (vvfat_open, init_directories,
// init_mbr) and the Microsoft FAT specification 1.03 (BPB fields, FSInfo, cluster-count rules).
//
// FAT12/16 follow QEMU's layout exactly: a volume of 16-sector (8 KiB) clusters, one reserved
// sector, two FATs, a 512-entry root directory that QEMU counts as clusters 0 and 1 (so cluster N
// starts at root + N * 16 sectors for every N). FAT32 is Platter's own: QEMU 7.2 writes a FAT16
// boot sector over a FAT32 table, which no checker accepts; Platter writes a real FAT32 volume
// (FAT spec "FAT32 BPB", FSInfo, backup boot sector) of the same disk size.

import { invalidArgument } from '../../errors.ts';

export const SECTOR = 512;
/** Sectors per cluster of QEMU's volumes (vvfat_open sets 0x10 for every type). */
export const QEMU_SECTORS_PER_CLUSTER = 16;
/** Root directory entries of a FAT12/16 volume (0x20 per sector of a cluster, as QEMU). */
export const QEMU_ROOT_ENTRIES = 0x20 * QEMU_SECTORS_PER_CLUSTER;
/** FAT32 volumes: 4 KiB clusters, so a 504 MiB disk has more than the 65525 clusters FAT32 needs
 *  (FAT spec "FAT Type Determination"). */
export const FAT32_SECTORS_PER_CLUSTER = 8;
/** FAT32 reserved sectors: boot sector, FSInfo (1), backup boot sector and FSInfo (6, 7). */
export const FAT32_RESERVED = 32;
export const FAT32_FSINFO_SECTOR = 1;
export const FAT32_BACKUP_BOOT_SECTOR = 6;
/** Minimum cluster counts per type (FAT spec: fewer than 4085 is FAT12, fewer than 65525 FAT16). */
export const FAT16_MIN_CLUSTERS = 4085;
export const FAT32_MIN_CLUSTERS = 65525;

export type FatType = 12 | 16 | 32;

/** What vvfat_open decides from the options. */
export interface Geometry {
  floppy: boolean;
  fatType: FatType;
  cylinders: number;
  heads: number;
  sectorsPerTrack: number;
  /** Sectors before the boot sector: 0 for a floppy, 63 (one track, MBR first) for a disk. */
  bootSector: number;
  /** The whole disk. */
  totalSectors: number;
}

/** Disk geometry for fat-type (0: the default) and floppy, as vvfat_open picks it. */
export function geometryFor(fatTypeOption: number, floppy: boolean): Geometry {
  let fat = fatTypeOption;
  let cylinders: number;
  let heads: number;
  let secs: number;
  let bootSector = 0;
  if (floppy) {
    // 1.44 MB (FAT12 named) or 2.88 MB (the default, or FAT16/32 named).
    if (!fat) {
      fat = 12;
      secs = 36;
    } else secs = fat === 12 ? 18 : 36;
    cylinders = 80;
    heads = 2;
  } else {
    // 32 MB (FAT12) or 504 MB disk with an MBR in front.
    if (!fat) fat = 16;
    bootSector = 0x3f;
    cylinders = fat === 12 ? 64 : 1024;
    heads = 16;
    secs = 63;
  }
  if (fat !== 12 && fat !== 16 && fat !== 32) throw invalidArgument('Valid FAT types are only 12, 16 and 32');
  return { floppy, fatType: fat, cylinders, heads, sectorsPerTrack: secs, bootSector, totalSectors: cylinders * heads * secs };
}

/** Where each part of the volume lies (absolute disk sectors) and how many clusters it has. */
export interface VolumeLayout {
  geometry: Geometry;
  fatType: FatType;
  sectorsPerCluster: number;
  clusterBytes: number;
  /** Sectors of the partition (from the boot sector to the end of the disk). */
  partitionSectors: number;
  reservedSectors: number;
  /** First sector of the first FAT. */
  fatStart: number;
  sectorsPerFat: number;
  /** FAT12/16: the fixed root directory's first sector (QEMU's offset_to_root_dir). */
  rootDirStart: number;
  /** FAT12/16: entries of the fixed root directory; 0 for FAT32. */
  rootEntries: number;
  /** Disk sector of cluster 0, so cluster N starts at clusterBase + N * sectorsPerCluster. */
  clusterBase: number;
  /** The first cluster number files may use (2). */
  firstDataCluster: number;
  /** One past the last cluster number the volume may use. */
  clusterLimit: number;
  /** The root directory's first cluster (FAT12/16: 0, QEMU's view of the fixed root area). */
  rootCluster: number;
  /** Highest FAT value (end-of-chain marker). */
  maxFatValue: number;
  /** Capacity as QEMU states it in "Directory does not fit" (partition sectors / 2000). */
  capacityMb: string;
}

/** The layout of a volume of geometry `g` (QEMU's init_directories for FAT12/16). */
export function layoutFor(g: Geometry): VolumeLayout {
  const partitionSectors = g.totalSectors - g.bootSector;
  const capacityMb = (partitionSectors / 2000).toFixed(2);
  if (g.fatType !== 32) {
    const spc = QEMU_SECTORS_PER_CLUSTER;
    // QEMU's formula: sectors = spf + 1 + spf * spc * (512 * 8 / fat_type), solved for spf and rounded up.
    const per = 1 + Math.floor((spc * SECTOR * 8) / g.fatType);
    const sectorsPerFat = Math.floor((partitionSectors + per) / per);
    const fatStart = g.bootSector + 1;
    const rootDirStart = fatStart + sectorsPerFat * 2;
    // QEMU counts clusters from the root directory with the partition's sector count (a disk's
    // 63 leading sectors are not subtracted twice): kept, it bounds what QEMU accepts.
    const clusterCount = Math.floor((partitionSectors - rootDirStart) / spc);
    return {
      geometry: g,
      fatType: g.fatType,
      sectorsPerCluster: spc,
      clusterBytes: spc * SECTOR,
      partitionSectors,
      reservedSectors: 1,
      fatStart,
      sectorsPerFat,
      rootDirStart,
      rootEntries: QEMU_ROOT_ENTRIES,
      clusterBase: rootDirStart,
      firstDataCluster: 2,
      clusterLimit: clusterCount,
      rootCluster: 0,
      maxFatValue: g.fatType === 12 ? 0xfff : 0xffff,
      capacityMb,
    };
  }
  // FAT32 (FAT spec): reserved area, two FATs of 4-byte entries, then clusters from number 2.
  const spc = g.floppy ? 1 : FAT32_SECTORS_PER_CLUSTER;
  const fatStart = g.bootSector + FAT32_RESERVED;
  const avail = partitionSectors - FAT32_RESERVED;
  // Smallest FAT that covers every cluster the rest of the partition holds.
  let sectorsPerFat = Math.ceil(((Math.floor(avail / spc) + 2) * 4) / SECTOR);
  for (;;) {
    const clusters = Math.floor((avail - 2 * sectorsPerFat) / spc);
    const need = Math.ceil(((clusters + 2) * 4) / SECTOR);
    if (need >= sectorsPerFat) break;
    sectorsPerFat = need;
  }
  const dataStart = fatStart + 2 * sectorsPerFat;
  const clusters = Math.floor((g.totalSectors - dataStart) / spc);
  return {
    geometry: g,
    fatType: 32,
    sectorsPerCluster: spc,
    clusterBytes: spc * SECTOR,
    partitionSectors,
    reservedSectors: FAT32_RESERVED,
    fatStart,
    sectorsPerFat,
    rootDirStart: dataStart,
    rootEntries: 0,
    clusterBase: dataStart - 2 * spc,
    firstDataCluster: 2,
    clusterLimit: clusters + 2,
    rootCluster: 2,
    maxFatValue: 0x0fffffff,
    capacityMb,
  };
}

/** A cylinder/head/sector triple as an MBR stores it, or the overflow marker (QEMU's sector2CHS). */
function chs(out: Buffer, at: number, lba: number, g: Geometry): boolean {
  const sector = lba % g.sectorsPerTrack;
  let rest = Math.floor(lba / g.sectorsPerTrack);
  const head = rest % g.heads;
  rest = Math.floor(rest / g.heads);
  if (rest >= g.cylinders) {
    out[at] = 0xff;
    out[at + 1] = 0xff;
    out[at + 2] = 0xff;
    return true;
  }
  out[at] = head;
  out[at + 1] = ((sector + 1) | ((rest >> 8) << 6)) & 0xff;
  out[at + 2] = rest & 0xff;
  return false;
}

/** The MBR of a hard-disk volume: one bootable partition from the boot sector to the end
 *  (QEMU's init_mbr: NT disk signature 0xbe1afdfa, LBA partition types when CHS overflows). */
export function encodeMbr(l: VolumeLayout): Buffer {
  const g = l.geometry;
  const mbr = Buffer.alloc(SECTOR);
  mbr.writeUInt32LE(0xbe1afdfa, 0x1b8);
  const p = 0x1be;
  mbr[p] = 0x80;
  let lba = chs(mbr, p + 1, g.bootSector, g);
  lba = chs(mbr, p + 5, g.totalSectors - 1, g) || lba;
  mbr[p + 4] = l.fatType === 12 ? 0x01 : l.fatType === 16 ? (lba ? 0x0e : 0x06) : lba ? 0x0c : 0x0b;
  mbr.writeUInt32LE(g.bootSector, p + 8);
  mbr.writeUInt32LE(g.totalSectors - g.bootSector, p + 12);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  return mbr;
}

/** The volume serial number QEMU writes (0xfabe1afd). */
const VOLUME_ID = 0xfabe1afd;

/** The boot sector (FAT spec "Boot Sector and BPB"): QEMU's FAT12/16 one, or a FAT32 one. */
export function encodeBootSector(l: VolumeLayout, label11: Buffer): Buffer {
  const g = l.geometry;
  const b = Buffer.alloc(SECTOR);
  b[0] = 0xeb;
  b[1] = l.fatType === 32 ? 0x58 : 0x3e;
  b[2] = 0x90;
  b.write('MSWIN4.1', 3, 'latin1');
  b.writeUInt16LE(SECTOR, 11);
  b[13] = l.sectorsPerCluster;
  b.writeUInt16LE(l.reservedSectors, 14);
  b[16] = 2;
  b.writeUInt16LE(l.rootEntries, 17);
  const total = l.partitionSectors;
  b.writeUInt16LE(l.fatType !== 32 && total <= 0xffff ? total : 0, 19);
  b[21] = g.bootSector > 0 ? 0xf8 : 0xf0;
  b.writeUInt16LE(l.fatType === 32 ? 0 : l.sectorsPerFat, 22);
  b.writeUInt16LE(g.sectorsPerTrack, 24);
  b.writeUInt16LE(g.heads, 26);
  b.writeUInt32LE(g.bootSector, 28);
  b.writeUInt32LE(l.fatType === 32 || total > 0xffff ? total : 0, 32);
  let ext = 36;
  if (l.fatType === 32) {
    b.writeUInt32LE(l.sectorsPerFat, 36);
    b.writeUInt16LE(0, 40); // flags: both FATs mirrored
    b.writeUInt16LE(0, 42); // version 0.0
    b.writeUInt32LE(l.rootCluster, 44);
    b.writeUInt16LE(FAT32_FSINFO_SECTOR, 48);
    b.writeUInt16LE(FAT32_BACKUP_BOOT_SECTOR, 50);
    ext = 64;
  }
  b[ext] = g.bootSector === 0 ? 0 : 0x80; // drive number
  b[ext + 1] = 0;
  b[ext + 2] = 0x29; // extended boot signature
  b.writeUInt32LE(VOLUME_ID, ext + 3);
  label11.copy(b, ext + 7, 0, 11);
  b.write(l.fatType === 12 ? 'FAT12   ' : l.fatType === 16 ? 'FAT16   ' : 'FAT32   ', ext + 18, 'latin1');
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

/** The FAT32 FSInfo sector (FAT spec "FAT32 FSInfo Sector Structure"). */
export function encodeFsInfo(freeClusters: number, nextFree: number): Buffer {
  const b = Buffer.alloc(SECTOR);
  b.writeUInt32LE(0x41615252, 0);
  b.writeUInt32LE(0x61417272, 484);
  b.writeUInt32LE(freeClusters >>> 0, 488);
  b.writeUInt32LE(nextFree >>> 0, 492);
  b.writeUInt32LE(0xaa550000, 508);
  return b;
}

/** A FAT of `sectors` sectors for `fatType` with entry get/set (FAT spec "FAT Data Structure"). */
export class FatTable {
  readonly bytes: Buffer;
  constructor(
    readonly fatType: FatType,
    sectors: number,
  ) {
    this.bytes = Buffer.alloc(sectors * SECTOR);
  }

  /** How many entries fit. */
  get entries(): number {
    return this.fatType === 12 ? Math.floor((this.bytes.length * 2) / 3) : this.bytes.length / (this.fatType / 8);
  }

  set(cluster: number, value: number): void {
    const b = this.bytes;
    if (this.fatType === 32) b.writeUInt32LE(value >>> 0, cluster * 4);
    else if (this.fatType === 16) b.writeUInt16LE(value & 0xffff, cluster * 2);
    else {
      const o = Math.floor((cluster * 3) / 2);
      if (cluster & 1) {
        b[o] = (b[o]! & 0x0f) | ((value & 0x0f) << 4);
        b[o + 1] = (value >> 4) & 0xff;
      } else {
        b[o] = value & 0xff;
        b[o + 1] = (b[o + 1]! & 0xf0) | ((value >> 8) & 0x0f);
      }
    }
  }

  get(cluster: number): number {
    const b = this.bytes;
    if (this.fatType === 32) return b.readUInt32LE(cluster * 4);
    if (this.fatType === 16) return b.readUInt16LE(cluster * 2);
    const o = Math.floor((cluster * 3) / 2);
    const v = b[o]! | (b[o + 1]! << 8);
    return (cluster & 1 ? v >> 4 : v) & 0xfff;
  }
}

/** FAT date and time words of a time in the local time zone (QEMU's fat_datetime, localtime). */
export function fatDateTime(ms: number): { date: number; time: number } {
  const d = new Date(Math.floor(ms / 1000) * 1000);
  const date = (d.getDate() | ((d.getMonth() + 1) << 5) | ((d.getFullYear() - 1980) << 9)) & 0xffff;
  const time = ((d.getSeconds() >> 1) | (d.getMinutes() << 5) | (d.getHours() << 11)) & 0xffff;
  return { date, time };
}

// Persistent dirty bitmaps, read-only (docs/interop/qcow2.txt "Bitmaps extension", "Bitmap
// directory", "Bitmap table"): Platter preserves them untouched and decodes them only to report
// them (qemu-img info "bitmaps"), to count their clusters in check, and for measure.

import { corrupt } from '../../errors.ts';
import type { Qcow2Image } from './image.ts';

/** Bitmaps extension payload: nb_bitmaps u32, reserved u32, directory size u64, offset u64. */
const BITMAPS_EXT_SIZE = 24;
/** Fixed part of a bitmap directory entry. */
const DIR_ENTRY_FIXED = 24;
/** Directory size cap (QEMU: QCOW2_MAX_BITMAP_DIRECTORY_SIZE, 64 KiB per bitmap x 65535). */
const MAX_DIRECTORY_BYTES = 64 << 20;
/** Bitmap flags (bitmap directory entry "flags"). */
const BME_FLAG_IN_USE = 1 << 0;
const BME_FLAG_AUTO = 1 << 1;
/** Offset bits of a bitmap table entry (bits 9..55). */
const BMT_OFFSET_MASK = 0x00fffffffffffe00n;

export interface BitmapEntry {
  name: string;
  flags: number;
  granularityBits: number;
  tableOffset: number;
  tableSize: number;
}

export interface BitmapDirectory {
  offset: number;
  size: number;
  bitmaps: BitmapEntry[];
}

export async function readBitmapDirectory(img: Qcow2Image): Promise<BitmapDirectory | undefined> {
  const ext = img.header.bitmapsExt;
  if (!ext || ext.length < BITMAPS_EXT_SIZE) return undefined;
  const count = ext.readUInt32BE(0);
  const size = Number(ext.readBigUInt64BE(8));
  const offset = Number(ext.readBigUInt64BE(16));
  if (size > MAX_DIRECTORY_BYTES || offset % img.clusterSize !== 0 || offset + size > img.file.size) {
    throw corrupt(`Bitmap directory at 0x${offset.toString(16)} (${size} bytes) is invalid for a file of ${img.file.size} bytes`, img.ctx);
  }
  const dir = await img.file.read(offset, size);
  const bitmaps: BitmapEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + DIR_ENTRY_FIXED > dir.length) throw corrupt('Bitmap directory is truncated', img.ctx);
    const tableOffset = Number(dir.readBigUInt64BE(p));
    const tableSize = dir.readUInt32BE(p + 8);
    const flags = dir.readUInt32BE(p + 12);
    const granularityBits = dir[p + 17]!;
    const nameSize = dir.readUInt16BE(p + 18);
    const extra = dir.readUInt32BE(p + 20);
    const nameAt = p + DIR_ENTRY_FIXED + extra;
    if (nameAt + nameSize > dir.length) throw corrupt('Bitmap directory entry runs past the directory', img.ctx);
    bitmaps.push({ name: dir.toString('utf8', nameAt, nameAt + nameSize), flags, granularityBits, tableOffset, tableSize });
    p = Math.ceil((nameAt + nameSize) / 8) * 8;
  }
  return { offset, size, bitmaps };
}

/** qemu-img info's "bitmaps" list. */
export async function bitmapInfo(img: Qcow2Image): Promise<{ flags: string[]; name: string; granularity: number }[]> {
  const d = await readBitmapDirectory(img);
  if (!d) return [];
  return d.bitmaps.map((b) => ({
    flags: [...(b.flags & BME_FLAG_IN_USE ? ['in-use'] : []), ...(b.flags & BME_FLAG_AUTO ? ['auto'] : [])],
    name: b.name,
    granularity: 2 ** b.granularityBits,
  }));
}

/** Every host byte range the bitmaps use (directory, tables, data clusters), for check. */
export async function bitmapRanges(img: Qcow2Image): Promise<[number, number][]> {
  const d = await readBitmapDirectory(img);
  if (!d) return [];
  const out: [number, number][] = [[d.offset, d.size]];
  for (const b of d.bitmaps) {
    const bytes = b.tableSize * 8;
    if (b.tableOffset + bytes > img.file.size) throw corrupt(`Bitmap '${b.name}' table lies past the end of the file`, img.ctx);
    out.push([b.tableOffset, bytes]);
    const t = await img.file.read(b.tableOffset, bytes);
    for (let i = 0; i < b.tableSize; i++) {
      const off = Number(t.readBigUInt64BE(i * 8) & BMT_OFFSET_MASK);
      if (off) out.push([off, img.clusterSize]);
    }
  }
  return out;
}

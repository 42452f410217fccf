// Image builders and real-tool runners for the read-only formats bochs and cloop: crafted bytes
// for malformed-image tests (laid out as bximage and create_compressed_fs lay them out), and
// bximage / create_compressed_fs runs for images the real writers make.

import { deflateSync } from 'node:zlib';
import { existsSync } from 'node:fs';
import { run, runOk } from './qemu.ts';

export const BOCHS_MAGIC = 'Bochs Virtual HD Image';
/** Field offsets of the bochs redolog header (version 2; v1 keeps the disk size at 84). */
export const BOCHS = { version: 64, header: 68, catalog: 72, bitmap: 76, extent: 80, diskV2: 88, diskV1: 84 } as const;
/** Field offsets of the cloop V2.0 header. */
export const CLOOP = { blockSize: 128, nBlocks: 132, offsets: 136 } as const;
export const CLOOP_PREAMBLE = '#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\nexit $?\n';

export interface BochsBuild {
  /** Guest content; its length is the disk size unless `diskSize` says otherwise. */
  data: Buffer;
  diskSize?: bigint;
  extentSize?: number;
  version?: 1 | 2;
}

/**
 * A bochs growing image of `data` as bximage writes one: the header, the catalog right after it,
 * then one slot per extent that has non-zero sectors (bitmap, then data; only those sectors marked).
 */
export function buildBochs(o: BochsBuild): Buffer {
  const extent = o.extentSize ?? 8192;
  const disk = o.diskSize ?? BigInt(o.data.length);
  const catalog = Math.max(1, Math.ceil(Number(disk) / extent));
  const bitmapBytes = Math.ceil(extent / 512 / 8);
  const bitmapBlocks = Math.ceil(bitmapBytes / 512);
  const header = Buffer.alloc(512);
  header.write(BOCHS_MAGIC, 0, 'latin1');
  header.write('Redolog', 32, 'latin1');
  header.write('Growing', 48, 'latin1');
  header.writeUInt32LE(o.version === 1 ? 0x10000 : 0x20000, BOCHS.version);
  header.writeUInt32LE(512, BOCHS.header);
  header.writeUInt32LE(catalog, BOCHS.catalog);
  header.writeUInt32LE(bitmapBytes, BOCHS.bitmap);
  header.writeUInt32LE(extent, BOCHS.extent);
  header.writeBigUInt64LE(disk, o.version === 1 ? BOCHS.diskV1 : BOCHS.diskV2);
  const cat = Buffer.alloc(catalog * 4, 0xff);
  const slots: Buffer[] = [];
  for (let e = 0; e < catalog; e++) {
    const chunk = o.data.subarray(e * extent, (e + 1) * extent);
    if (chunk.every((b) => b === 0)) continue;
    const slot = Buffer.alloc((bitmapBlocks + extent / 512) * 512);
    for (let s = 0; s * 512 < chunk.length; s++) {
      const sector = chunk.subarray(s * 512, (s + 1) * 512);
      if (sector.every((b) => b === 0)) continue;
      slot[s >> 3]! |= 1 << (s & 7);
      sector.copy(slot, (bitmapBlocks + s) * 512);
    }
    cat.writeUInt32LE(slots.length, e * 4);
    slots.push(slot);
  }
  return Buffer.concat([header, cat, ...slots]);
}

/** A cloop V2.0 image of `data` (a multiple of `blockSize`), each block one zlib stream. */
export function buildCloop(data: Buffer, blockSize = 4096): Buffer {
  const n = Math.ceil(data.length / blockSize);
  const head = Buffer.alloc(136);
  head.write(CLOOP_PREAMBLE, 0, 'latin1');
  head.writeUInt32BE(blockSize, CLOOP.blockSize);
  head.writeUInt32BE(n, CLOOP.nBlocks);
  const blocks: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const b = Buffer.alloc(blockSize);
    data.copy(b, 0, i * blockSize, (i + 1) * blockSize);
    blocks.push(deflateSync(b, { level: 9 }));
  }
  const table = Buffer.alloc((n + 1) * 8);
  let at = 136 + table.length;
  for (let i = 0; i <= n; i++) {
    table.writeBigUInt64BE(BigInt(at), i * 8);
    if (i < n) at += blocks[i]!.length;
  }
  return Buffer.concat([head, table, ...blocks]);
}

/** Deterministic guest content: patterned sectors, random-looking runs and zero gaps. */
export function patterned(length: number, seed = 1): Buffer {
  const b = Buffer.alloc(length);
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < length; i += 512) {
    const kind = (i / 512 + seed) % 7;
    if (kind === 0 || kind === 3) continue; // zero sectors
    for (let j = i; j < Math.min(length, i + 512); j++) {
      x = (x * 1103515245 + 12345) >>> 0;
      b[j] = kind === 5 ? (x >>> 16) & 0xff : (kind * 37 + (j & 0xff)) & 0xff;
    }
  }
  return b;
}

export const HAVE_BXIMAGE = run('sh', ['-c', 'command -v bximage']).status === 0;
export const HAVE_CLOOP_UTILS = run('sh', ['-c', 'command -v create_compressed_fs']).status === 0;
export const SKIP_NO_BXIMAGE = HAVE_BXIMAGE ? false : 'bximage not installed (apt-get install bximage)';
export const SKIP_NO_CLOOP_UTILS = HAVE_CLOOP_UTILS ? false : 'create_compressed_fs not installed (apt-get install cloop-utils)';

/** bximage -func=convert -imgmode=growing: a growing image of a raw file (its size, rounded as bximage rounds). */
export function bximageConvert(raw: string, out: string): void {
  runOk('bximage', ['-func=convert', '-imgmode=growing', '-q', raw, out]);
  if (!existsSync(out)) throw new Error(`bximage wrote no ${out}`);
}

/** bximage -func=create -hd=SIZE -imgmode=growing: an empty growing image (bximage 2.7 made a
 *  flat image with -imgmode before -hd). */
export function bximageCreate(out: string, size: string): void {
  runOk('bximage', ['-func=create', `-hd=${size}`, '-imgmode=growing', '-q', out]);
  if (!existsSync(out)) throw new Error(`bximage wrote no ${out}`);
}

/** create_compressed_fs -B blockSize: a cloop V2.0 image of a raw file. */
export function createCompressedFs(raw: string, out: string, blockSize: number, extra: string[] = []): void {
  runOk('create_compressed_fs', ['-q', '-B', String(blockSize), ...extra, raw, out]);
  if (!existsSync(out)) throw new Error(`create_compressed_fs wrote no ${out}`);
}

// qemu-img create -f vmdk (QEMU block/vmdk.c vmdk_co_do_create / vmdk_init_extent): the
// subformats monolithicSparse, monolithicFlat, twoGbMaxExtentSparse, twoGbMaxExtentFlat and
// streamOptimized, the extent file names qemu-img uses (NAME-flat.vmdk, NAME-s001.vmdk,
// NAME-f001.vmdk), the sparse extent layout (header, embedded descriptor area, redundant GD +
// GTs, GD + GTs, grains from a 64 KiB boundary) and the descriptor text, byte for byte.

import { nodeCrypto } from '../../host/lazy-node-modules.ts';
import { basename } from 'node:path';
import type { BlockNode } from '../../block/node.ts';
import type { CreateContext } from '../../block/types.ts';
import type { OptionSpec } from '../../block/options-schema.ts';
import { BlockError, invalidArgument, unsupported } from '../../errors.ts';
import { NO_PARENT_CID, serialiseDescriptor } from './descriptor.ts';
import {
  COMPRESSION_DEFLATE,
  COMPRESSION_NONE,
  encodeSparseHeader,
  FLAG_COMPRESSED,
  FLAG_MARKERS,
  FLAG_NL_DETECT,
  FLAG_RGD,
  FLAG_ZERO_GRAIN,
  NL_TEST_BYTES,
  SECTOR,
} from './sparse-header.ts';
import { EMBEDDED_DESCRIPTOR_OFFSET } from './open.ts';
import { VmdkNode } from './vmdk-node.ts';

export const SUBFORMATS = ['monolithicSparse', 'monolithicFlat', 'twoGbMaxExtentSparse', 'twoGbMaxExtentFlat', 'streamOptimized'] as const;
export const ADAPTER_TYPES = ['ide', 'buslogic', 'lsilogic', 'legacyESX'] as const;
/** Split subformats cut the disk into extents of this size (VMDK's fixed 2 GiB split). */
export const SPLIT_EXTENT_BYTES = 0x80000000;
/** qemu-img's new sparse extents: 64 KiB grains (128 sectors), 512 GTEs per grain table. */
export const NEW_GRAIN_SECTORS = 128;
export const NEW_GTES_PER_GT = 512;
/** Embedded descriptor area of a new sparse extent: sector 1, 20 sectors. */
const NEW_DESC_OFFSET_SECTORS = 1;
const NEW_DESC_SECTORS = 20;
/** Defaults of the descriptor's ddb keys (qemu-img). */
const DEFAULT_HW_VERSION = '4';
const COMPAT6_HW_VERSION = '6';
const DEFAULT_TOOLS_VERSION = '2147483647';
/** Geometry: 63 sectors per track; 16 heads for IDE, 255 for the SCSI adapters (VMware's values). */
const SECTORS_PER_TRACK = 63;
const IDE_HEADS = 16;
const SCSI_HEADS = 255;

export const VMDK_CREATE_OPTIONS: readonly OptionSpec[] = [
  { name: 'adapter_type', type: 'enum', values: ADAPTER_TYPES, default: 'ide', help: 'Virtual adapter type, can be one of ide (default), lsilogic, buslogic or legacyESX' },
  { name: 'backing_file', type: 'path', help: 'File name of a base image' },
  { name: 'backing_fmt', type: 'string', help: "Must be 'vmdk' if present" },
  { name: 'compat6', type: 'bool', default: false, help: 'VMDK version 6 image', advanced: true },
  { name: 'hwversion', type: 'string', default: 'undefined', help: 'VMDK hardware version', advanced: true },
  { name: 'subformat', type: 'enum', values: SUBFORMATS, default: 'monolithicSparse', help: 'VMDK flat extent format, can be one of {monolithicSparse (default) | monolithicFlat | twoGbMaxExtentSparse | twoGbMaxExtentFlat | streamOptimized}' },
  { name: 'toolsversion', type: 'string', help: 'VMware guest tools version', advanced: true },
  { name: 'zeroed_grain', type: 'bool', default: false, help: 'Enable efficient zero writes using the zeroed-grain GTE feature', advanced: true },
];

/** Write a new, empty hosted sparse extent of `bytes` virtual bytes into `file`. */
export async function initSparseExtent(file: BlockNode, bytes: number, compress: boolean, zeroedGrain: boolean): Promise<void> {
  const capacity = Math.floor(bytes / SECTOR);
  const grains = Math.ceil(capacity / NEW_GRAIN_SECTORS);
  const gtSectors = Math.ceil((NEW_GTES_PER_GT * 4) / SECTOR);
  const gtCount = Math.ceil(grains / NEW_GTES_PER_GT);
  const gdSectors = Math.ceil((gtCount * 4) / SECTOR);
  const rgdOffset = NEW_DESC_OFFSET_SECTORS + NEW_DESC_SECTORS;
  const gdOffset = rgdOffset + gdSectors + gtSectors * gtCount;
  const overHead = Math.ceil((gdOffset + gdSectors + gtSectors * gtCount) / NEW_GRAIN_SECTORS) * NEW_GRAIN_SECTORS;
  const header = encodeSparseHeader({
    version: compress ? 3 : zeroedGrain ? 2 : 1,
    flags: FLAG_RGD | FLAG_NL_DETECT | (compress ? FLAG_COMPRESSED | FLAG_MARKERS : 0) | (zeroedGrain ? FLAG_ZERO_GRAIN : 0),
    capacity: BigInt(capacity),
    grainSize: BigInt(NEW_GRAIN_SECTORS),
    descriptorOffset: BigInt(NEW_DESC_OFFSET_SECTORS),
    descriptorSize: BigInt(NEW_DESC_SECTORS),
    numGTEsPerGT: NEW_GTES_PER_GT,
    rgdOffset: BigInt(rgdOffset),
    gdOffset: BigInt(gdOffset),
    overHead: BigInt(overHead),
    uncleanShutdown: 0,
    nlTest: [...NL_TEST_BYTES],
    compressAlgorithm: compress ? COMPRESSION_DEFLATE : COMPRESSION_NONE,
  });
  await file.write(0, header);
  await file.truncate(overHead * SECTOR, { shrink: true });
  const gd = Buffer.alloc(gdSectors * SECTOR);
  for (const [at, base] of [
    [rgdOffset, rgdOffset + gdSectors],
    [gdOffset, gdOffset + gdSectors],
  ] as const) {
    for (let i = 0; i < gtCount; i++) gd.writeUInt32LE(base + i * gtSectors, i * 4);
    if (gd.length) await file.write(at * SECTOR, gd);
  }
}

/** QEMU's filename_decompose: "dir/name.ext" -> prefix "name", postfix ".ext". */
function decompose(filename: string): { prefix: string; postfix: string } {
  const base = basename(filename);
  const dot = base.lastIndexOf('.');
  return dot < 0 ? { prefix: base, postfix: '' } : { prefix: base.slice(0, dot), postfix: base.slice(dot) };
}

export async function createVmdk(file: BlockNode, ctx: CreateContext): Promise<void> {
  const o = ctx.options;
  const backingFmt = o['backing_fmt'] as string | undefined;
  const backingFile = o['backing_file'] as string | undefined;
  if (backingFmt !== undefined && backingFmt !== 'vmdk') throw invalidArgument('backing_file must be a vmdk image');
  const subformat = (o['subformat'] as string | undefined) ?? 'monolithicSparse';
  const adapterType = (o['adapter_type'] as string | undefined) ?? 'ide';
  let hwVersion = o['hwversion'] as string | undefined;
  if (hwVersion === 'undefined') hwVersion = undefined;
  if (o['compat6'] === true) {
    if (hwVersion !== undefined) throw invalidArgument('compat6 cannot be enabled with hwversion set');
    hwVersion = COMPAT6_HW_VERSION;
  }
  hwVersion ??= DEFAULT_HW_VERSION;
  const toolsVersion = (o['toolsversion'] as string | undefined) ?? DEFAULT_TOOLS_VERSION;
  const zeroedGrain = o['zeroed_grain'] === true;
  const size = Math.ceil(ctx.size / SECTOR) * SECTOR;
  const split = subformat === 'twoGbMaxExtentFlat' || subformat === 'twoGbMaxExtentSparse';
  const flat = subformat === 'monolithicFlat' || subformat === 'twoGbMaxExtentFlat';
  const compress = subformat === 'streamOptimized';
  if (flat && backingFile) throw unsupported("Flat image can't have backing file");
  if (flat && zeroedGrain) throw unsupported("Flat image can't enable zeroed grain");

  let parentCid = NO_PARENT_CID;
  if (backingFile) {
    const b = ctx.backing;
    if (!b) throw new BlockError('InvalidArgument', `Could not open backing file '${backingFile}' to read its CID`, {}, { code: 'OpenFailed' });
    if (!(b.impl instanceof VmdkNode)) throw invalidArgument(`Invalid backing file format: ${b.format}. Must be vmdk`);
    parentCid = b.impl.cid;
  }

  const { prefix, postfix } = decompose(ctx.filename);
  const lines: string[] = [];
  const line = (bytes: number, name: string) => (flat ? `RW ${bytes / SECTOR} FLAT "${name}" 0` : `RW ${bytes / SECTOR} SPARSE "${name}"`);
  if (!split && !flat) {
    await initSparseExtent(file, size, compress, zeroedGrain);
    lines.push(line(size, basename(ctx.filename)));
  } else {
    const extentBytes = split ? SPLIT_EXTENT_BYTES : size;
    let idx = 1;
    for (let created = 0; created < size; idx++) {
      const cur = Math.min(size - created, extentBytes);
      const name = split ? `${prefix}-${flat ? 'f' : 's'}${String(idx).padStart(3, '0')}${postfix}` : `${prefix}-flat${postfix}`;
      const ext = await ctx.createSibling(name);
      if (flat) await ext.truncate(cur, { shrink: true });
      else await initSparseExtent(ext, cur, compress, zeroedGrain);
      lines.push(line(cur, name));
      created += cur;
      if (ctx.signal?.aborted) throw new BlockError('Cancelled', 'Operation cancelled', { path: ctx.filename });
    }
  }

  const heads = adapterType === 'ide' ? IDE_HEADS : SCSI_HEADS;
  const text = serialiseDescriptor({
    cid: nodeCrypto().randomInt(0, 0x100000000),
    parentCid,
    createType: subformat,
    ...(backingFile ? { parentFileNameHint: backingFile } : {}),
    extentLines: lines,
    hwVersion,
    cylinders: Math.floor(size / (SECTORS_PER_TRACK * heads * SECTOR)),
    heads,
    adapterType,
    toolsVersion,
  });
  const bytes = Buffer.from(text, 'utf8');
  if (!split && !flat) {
    if (bytes.length > NEW_DESC_SECTORS * SECTOR) throw invalidArgument('The VMDK descriptor is too long for its 20-sector area');
    await file.write(EMBEDDED_DESCRIPTOR_OFFSET, bytes);
  } else {
    await file.write(0, bytes);
  }
}

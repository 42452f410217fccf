// Opening a VMDK image (QEMU block/vmdk.c vmdk_open): either a file that starts with a sparse
// header (monolithicSparse / streamOptimized, descriptor embedded at sector 1), or a text
// descriptor whose extent lines name the extent files (monolithicFlat, twoGbMaxExtent*, vmfs*).
// Extent files are opened with ctx.openSibling, which enforces the rules of docs/security.md
// (plain files next to the image only: the CVE-2022-47951 rule).

import type { BlockNode } from '../../block/node.ts';
import type { OpenContext } from '../../block/types.ts';
import { BlockError, invalidImage, unsupported } from '../../errors.ts';
import { descriptorText, EMBEDDED_DESCRIPTOR_BYTES, MAX_DESCRIPTOR_BYTES, parseDescriptor, type Descriptor } from './descriptor.ts';
import type { Extent } from './extent.ts';
import { FlatExtent } from './extent-flat.ts';
import { SparseExtent } from './extent-sparse.ts';
import { SeSparseExtent } from './extent-sesparse.ts';
import { decodeSparseHeader, SECTOR, VMDK3_MAGIC, VMDK4_MAGIC } from './sparse-header.ts';
import { VmdkNode } from './vmdk-node.ts';

/** Byte offset of the descriptor embedded in a sparse file (QEMU always reads it there). */
export const EMBEDDED_DESCRIPTOR_OFFSET = 0x200;
/** createType values a descriptor file may have (QEMU vmdk_open_desc_file). */
const DESCRIPTOR_CREATE_TYPES = ['monolithicFlat', 'vmfs', 'vmfsSparse', 'seSparse', 'twoGbMaxExtentSparse', 'twoGbMaxExtentFlat'];

/** The name qemu-img shows for an extent: the descriptor's directory (as given) + the name. */
function extentDisplayName(imageName: string, extent: string): string {
  if (extent.startsWith('/')) return extent;
  const slash = imageName.lastIndexOf('/');
  return slash < 0 ? extent : imageName.slice(0, slash + 1) + extent;
}

function requireCids(d: Descriptor, name: string): { cid: number; parentCid: number } {
  if (d.cid === undefined || d.parentCid === undefined) {
    throw invalidImage(`Invalid argument: the VMDK descriptor has no ${d.cid === undefined ? 'CID' : 'parentCID'} line`, { path: name });
  }
  return { cid: d.cid, parentCid: d.parentCid };
}

export async function openVmdk(file: BlockNode, ctx: OpenContext): Promise<VmdkNode> {
  const name = ctx.filename;
  if (file.size < 4) throw invalidImage('File is too small, not a valid image', { path: name });
  const magic = (await file.read(0, 4)).readUInt32BE(0);
  let descAt = 0;
  if (magic === VMDK4_MAGIC && file.size >= SECTOR) {
    // A sparse header with capacity 0 and a descriptor offset holds only a descriptor (QEMU
    // vmdk_open_vmdk4): the descriptor then describes the extents, as a descriptor file does.
    const h = decodeSparseHeader(await file.read(0, SECTOR));
    if (h.capacity === 0n && h.descriptorOffset !== 0n) {
      if (h.descriptorOffset * BigInt(SECTOR) >= BigInt(file.size)) throw invalidImage('The VMDK descriptor offset is past the end of the file', { path: name });
      descAt = Number(h.descriptorOffset) * SECTOR;
    }
  }
  if ((magic === VMDK4_MAGIC || magic === VMDK3_MAGIC) && descAt === 0) {
    const extent = await SparseExtent.open(file, name, '', 0, { workers: ctx.workers, writable: !ctx.readOnly });
    // QEMU reads (and on the first write rewrites) 20 sectors from 0x200; a header that says the
    // descriptor there is smaller bounds the area, so the rewrite cannot reach the tables after it.
    const h = extent.header;
    const areaSectors = BigInt(EMBEDDED_DESCRIPTOR_BYTES / SECTOR);
    const declared =
      h && h.descriptorOffset * BigInt(SECTOR) === BigInt(EMBEDDED_DESCRIPTOR_OFFSET) && h.descriptorSize > 0n
        ? Number(h.descriptorSize < areaSectors ? h.descriptorSize : areaSectors) * SECTOR
        : EMBEDDED_DESCRIPTOR_BYTES;
    const descLength = Math.max(0, Math.min(declared, file.size - EMBEDDED_DESCRIPTOR_OFFSET));
    const d = parseDescriptor(descriptorText(await file.read(EMBEDDED_DESCRIPTOR_OFFSET, descLength)));
    const { cid, parentCid } = requireCids(d, name);
    return new VmdkNode({
      file,
      ctx,
      extents: [extent],
      cid,
      parentCid,
      createType: extent.compressed ? 'streamOptimized' : 'monolithicSparse',
      descriptor: { file, offset: EMBEDDED_DESCRIPTOR_OFFSET, length: descLength, embedded: true },
      ...(d.parentFileNameHint !== undefined ? { parentFileNameHint: d.parentFileNameHint } : {}),
    });
  }

  // A text descriptor file (or a descriptor held by an empty sparse header, at descAt).
  const textLength = Math.min(file.size - descAt, MAX_DESCRIPTOR_BYTES);
  const d = parseDescriptor(descriptorText(await file.read(descAt, textLength)));
  if (d.createType === undefined) throw invalidImage('invalid VMDK image descriptor', { path: name });
  if (!DESCRIPTOR_CREATE_TYPES.includes(d.createType)) throw unsupported(`Unsupported image type '${d.createType}'`, { path: name });
  const { cid, parentCid } = requireCids(d, name);
  const extents: Extent[] = [];
  let start = 0;
  for (const line of d.extents) {
    // QEMU uses only RW extents of the types it knows, with a positive size; it skips the rest.
    if (line.access !== 'RW' || line.sectors <= 0 || !['FLAT', 'SPARSE', 'VMFS', 'VMFSSPARSE', 'SESPARSE'].includes(line.type)) {
      ctx.warn(`vmdk: '${name}': ignoring extent line '${line.text.trim()}' (as QEMU does, only RW FLAT/SPARSE/VMFS/VMFSSPARSE extents are used)`);
      continue;
    }
    if (line.type === 'VMFS' && line.offset !== undefined) throw invalidImage(`Invalid extent line: ${line.text.trim()}`, { path: name });
    const sibling = await ctx.openSibling(line.filename, { readOnly: ctx.readOnly }).catch((e: unknown) => {
      // vmdk_parse_extents: a relative extent name needs the descriptor file's directory.
      if (e instanceof BlockError && e.context.op === 'dirname') throw new BlockError(e.kind, `Cannot use relative paths with VMDK descriptor file '${file.filename}': ${e.message}`, { path: name }, { cause: e });
      throw e;
    });
    const display = extentDisplayName(name, line.filename);
    let extent: Extent;
    if (line.type === 'FLAT' || line.type === 'VMFS') {
      extent = new FlatExtent(sibling, display, line.type, start, line.sectors * SECTOR, (line.offset ?? 0) * SECTOR);
    } else if (line.type === 'SESPARSE') {
      extent = await SeSparseExtent.open(sibling, display, line.type, start);
    } else {
      extent = await SparseExtent.open(sibling, display, line.type, start, { workers: ctx.workers, writable: !ctx.readOnly });
    }
    start += extent.length;
    if (!Number.isSafeInteger(start)) throw invalidImage('The VMDK extents add up to more than Platter can address', { path: name });
    extents.push(extent);
  }
  if (extents.length === 0) throw invalidImage('The VMDK descriptor lists no usable extent', { path: name });
  return new VmdkNode({
    file,
    ctx,
    extents,
    cid,
    parentCid,
    createType: d.createType,
    descriptor: { file, offset: descAt, length: textLength, embedded: descAt !== 0 },
    ...(d.parentFileNameHint !== undefined ? { parentFileNameHint: d.parentFileNameHint } : {}),
  });
}

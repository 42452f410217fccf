// VDI block map codec (VirtualBox VDI "block array"; QEMU block/vdi.c bmap): one little-endian u32
// per virtual block giving the index of the block's data in the image, or one of two markers.
// Kept in memory as a Uint32Array (4 bytes per MiB of disk, as QEMU keeps it).

import { corrupt, type BlockErrorContext } from '../../errors.ts';
import { VDI_SECTOR_SIZE } from './header.ts';

/** Never-allocated block: reads as zeros (QEMU VDI_UNALLOCATED). */
export const VDI_UNALLOCATED = 0xffffffff;
/** Discarded block, known to read as zeros (QEMU VDI_DISCARDED; VirtualBox VDI_IMAGE_BLOCK_ZERO). */
export const VDI_DISCARDED = 0xfffffffe;
/** Bytes per entry. */
export const VDI_BMAP_ENTRY_SIZE = 4;
/** Entries per 512-byte sector of the map (the unit QEMU rewrites). */
export const VDI_BMAP_ENTRIES_PER_SECTOR = VDI_SECTOR_SIZE / VDI_BMAP_ENTRY_SIZE;

export const isAllocated = (entry: number) => entry < VDI_DISCARDED;

/** Decode `count` entries from the bytes read at the map's offset. */
export function decodeBlockMap(buf: Buffer, count: number): Uint32Array {
  const map = new Uint32Array(count);
  for (let i = 0; i < count; i++) map[i] = buf.readUInt32LE(i * VDI_BMAP_ENTRY_SIZE);
  return map;
}

/** Encode entries [first, first+n) (for writing back the sectors that changed). */
export function encodeBlockMap(map: Uint32Array, first: number, n: number): Buffer {
  const buf = Buffer.alloc(n * VDI_BMAP_ENTRY_SIZE);
  for (let i = 0; i < n && first + i < map.length; i++) buf.writeUInt32LE(map[first + i]!, i * VDI_BMAP_ENTRY_SIZE);
  return buf;
}

/** The entries of a new map: every block preallocated in order (static) or unallocated. */
export function newBlockMap(blocks: number, isStatic: boolean): Uint32Array {
  const map = new Uint32Array(blocks);
  for (let i = 0; i < blocks; i++) map[i] = isStatic ? i : VDI_UNALLOCATED;
  return map;
}

/** The data block an entry points to, refusing indexes past the image's block count. */
export function checkedDataBlock(map: Uint32Array, block: number, blocksInImage: number, ctx: BlockErrorContext): number | undefined {
  // Entries past the map's end (a map cut short by the end of the file) are unallocated.
  const entry = map[block] ?? VDI_UNALLOCATED;
  if (!isAllocated(entry)) return undefined;
  if (entry >= blocksInImage) {
    throw corrupt(`VDI block map entry ${block} points to data block ${entry}, but the image has only ${blocksInImage} blocks`, ctx);
  }
  return entry;
}

/** qemu-img check for a block map (QEMU vdi_check): every allocated entry in range, used once,
 *  and the header's allocated count equal to the entries in use. */
export function checkBlockMap(map: Uint32Array, blocksInImage: number, blocksAllocated: number): { corruptions: number; messages: string[] } {
  const messages: string[] = [];
  let corruptions = 0;
  let used = 0;
  const owner = new Uint32Array(blocksInImage).fill(VDI_UNALLOCATED);
  for (let block = 0; block < map.length; block++) {
    const entry = map[block]!;
    if (!isAllocated(entry)) continue;
    if (entry >= blocksInImage) {
      messages.push(`ERROR: block index ${block} too large, is ${entry}`);
      corruptions++;
      continue;
    }
    used++;
    if (isAllocated(owner[entry]!)) {
      messages.push(`ERROR: block index ${owner[entry]} also used by ${block}`);
      corruptions++;
    } else owner[entry] = block;
  }
  if (used !== blocksAllocated) {
    messages.push(`ERROR: allocated blocks mismatch, is ${used}, should be ${blocksAllocated}`);
    corruptions++;
  }
  return { corruptions, messages };
}

// Creating a VHDX image with QEMU's layout (block/vhdx.c vhdx_co_create): file identifier,
// two headers, two region tables, the log at 1 MiB, the BAT and 1 MiB of metadata after it, and
// payload data from BAT end + 5 MiB. Option names, defaults, limits and messages are qemu-img's.

import type { CreateContext } from '../../block/types.ts';
import type { BlockNode } from '../../block/node.ts';
import type { OptionSpec } from '../../block/options-schema.ts';
import { invalidArgument, throwIfAborted } from '../../errors.ts';
import { guidFromString, guidToString, newGuid, GUID_SIZE } from './guid.ts';
import { encodeHeader, FILE_SIGNATURE, HEADER_OFFSETS, HEADER_SECTION_END, HEADER_VERSION, LOG_VERSION } from './header.ts';
import { encodeRegionTable, REGION_TABLE_OFFSETS } from './region.ts';
import { encodeMetadata, BLOCK_SIZE_MAX, MAX_VIRTUAL_SIZE } from './metadata.ts';
import { BAT_ENTRY_BYTES, batGeometry, makeEntry, PAYLOAD_FULLY_PRESENT, PAYLOAD_ZERO } from './bat.ts';

const MIB = 1 << 20;
const GIB = 2 ** 30;
const TIB = 2 ** 40;
/** QEMU's default log size. */
const DEFAULT_LOG_SIZE = MIB;
/** The metadata region QEMU writes: 1 MiB ("min size, and more than enough"). */
const METADATA_REGION_SIZE = MIB;
/** Room QEMU leaves between the BAT and the first payload block, for future metadata. */
const DATA_GAP = 5 * MIB;
const SECTOR = 512;
const CREATOR = 'Platter';
/** Bytes of BAT built and written at once. */
const BAT_WRITE_PIECE = 4 * MIB;

export const vhdxCreateOptions: readonly OptionSpec[] = [
  { name: 'log_size', type: 'size', default: DEFAULT_LOG_SIZE, help: 'Log size; min 1MB.' },
  { name: 'block_size', type: 'size', default: 0, help: 'Block Size; min 1MB, max 256MB. 0 means auto-calculate based on image size.' },
  { name: 'subformat', type: 'enum', values: ['dynamic', 'fixed'], default: 'dynamic', help: "VHDX format type, can be either 'dynamic' or 'fixed'. Default is 'dynamic'." },
  { name: 'block_state_zero', type: 'bool', default: true, help: "Force use of payload blocks of type 'ZERO'. Non-standard, but default.  Do not set to 'off' when using 'qemu-img convert' with subformat=dynamic." },
  { name: 'nocow', type: 'bool', default: false, help: 'Turn off copy-on-write (valid only on btrfs)', advanced: true },
];

/** QEMU's automatic block size: bigger images get bigger blocks to keep the BAT small. */
export function autoBlockSize(size: number): number {
  if (size > 32 * TIB) return 64 * MIB;
  if (size > 100 * GIB) return 32 * MIB;
  if (size > GIB) return 16 * MIB;
  return 8 * MIB;
}

export async function createVhdx(file: BlockNode, ctx: CreateContext): Promise<void> {
  const size = Math.ceil(ctx.size / SECTOR) * SECTOR;
  if (size > MAX_VIRTUAL_SIZE) throw invalidArgument('Image size too large; max of 64TB');
  const logSize = Number(ctx.options['log_size'] ?? DEFAULT_LOG_SIZE);
  if (logSize > 0xffffffff) throw invalidArgument('Log size must be smaller than 4 GB');
  if (logSize < MIB || logSize % MIB !== 0) throw invalidArgument('Log size must be a multiple of 1 MB');
  let blockSize = Number(ctx.options['block_size'] ?? 0);
  if (blockSize === 0) blockSize = autoBlockSize(size);
  if (blockSize < MIB || blockSize % MIB !== 0) throw invalidArgument('Block size must be a multiple of 1 MB');
  if ((blockSize & (blockSize - 1)) !== 0) throw invalidArgument('Block size must be a power of two');
  if (blockSize > BLOCK_SIZE_MAX) throw invalidArgument(`Block size must not exceed ${BLOCK_SIZE_MAX}`);
  const fixed = ctx.options['subformat'] === 'fixed';
  const zeroBlocks = ctx.options['block_state_zero'] !== false;

  // (A) file identifier with a UTF-16LE creator string.
  const ident = Buffer.alloc(8 + 512);
  ident.write(FILE_SIGNATURE, 0, 'latin1');
  ident.write(CREATOR, 8, 'utf16le');
  await file.write(0, ident);

  // (B), (C) headers: same GUIDs, consecutive sequence numbers.
  const seq = BigInt(Math.floor(Math.random() * 2 ** 31)) + 1n;
  const base = { fileWriteGuid: newGuid(), dataWriteGuid: newGuid(), logGuid: Buffer.alloc(GUID_SIZE), logVersion: LOG_VERSION, version: HEADER_VERSION, logLength: logSize, logOffset: HEADER_SECTION_END };
  await file.write(HEADER_OFFSETS[0], encodeHeader({ ...base, sequence: seq }));
  await file.write(HEADER_OFFSETS[1], encodeHeader({ ...base, sequence: seq + 1n }));

  // (D), (E) region tables; (G) BAT; (H) metadata.
  const geo = batGeometry(size, blockSize, SECTOR);
  const batOffset = Math.ceil((HEADER_SECTION_END + logSize) / MIB) * MIB;
  const batLength = Math.max(MIB, Math.ceil((geo.totalEntries * BAT_ENTRY_BYTES) / MIB) * MIB);
  const metadataOffset = batOffset + batLength;
  const table = encodeRegionTable({ offset: batOffset, length: batLength }, { offset: metadataOffset, length: METADATA_REGION_SIZE }, guidFromString);
  const dataStart = batOffset + batLength + DATA_GAP;
  await file.truncate(fixed ? dataStart + size : dataStart, { shrink: true });
  if (fixed || zeroBlocks) {
    // Written a piece at a time: a 64 TiB image with 1 MiB blocks has a 512 MiB BAT.
    const entriesPerPiece = BAT_WRITE_PIECE / BAT_ENTRY_BYTES;
    for (let first = 0; first < geo.totalEntries; first += entriesPerPiece) {
      const count = Math.min(entriesPerPiece, geo.totalEntries - first);
      const piece = Buffer.alloc(count * BAT_ENTRY_BYTES);
      for (let i = first; i < first + count; i++) {
        const b = i - Math.floor(i / (geo.chunkRatio + 1)); // payload block of entry i
        if ((i + 1) % (geo.chunkRatio + 1) === 0 || b >= geo.dataBlocks) continue; // a sector bitmap entry
        const offset = Math.ceil((dataStart + b * blockSize) / MIB) * MIB;
        const entry = zeroBlocks ? makeEntry(PAYLOAD_ZERO, 0) : makeEntry(PAYLOAD_FULLY_PRESENT, offset);
        piece.writeBigUInt64LE(entry, (i - first) * BAT_ENTRY_BYTES);
      }
      await file.write(batOffset + first * BAT_ENTRY_BYTES, piece);
      throwIfAborted(ctx.signal);
    }
  }
  await file.write(REGION_TABLE_OFFSETS[0], table);
  await file.write(REGION_TABLE_OFFSETS[1], table);
  const meta = encodeMetadata({ blockSize, leaveBlocksAllocated: fixed, virtualSize: size, logicalSectorSize: SECTOR, physicalSectorSize: SECTOR, page83: guidToString(newGuid()) }, METADATA_REGION_SIZE);
  // Only the table and the items: the rest of the region stays a hole.
  await file.write(metadataOffset, meta.subarray(0, 64 * 1024 + 64));
}

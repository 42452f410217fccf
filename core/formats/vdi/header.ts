// VDI header codec (VirtualBox Virtual Disk Image, header version 1.1, as QEMU's block/vdi.c reads
// and writes it): the 64-byte pre-header text, then the little-endian v1.1 header in sector 0.
// decode() only reads fields; validateVdiHeader() checks them in order
// (magic, version, ranges, overflow, overlap) with QEMU's wording where users know it.

import { nodeCrypto } from '../../host/lazy-node-modules.ts';
import { invalidImage, unsupported, type BlockErrorContext } from '../../errors.ts';

/** VDI signature at byte 0x40 (VirtualBox VDI_IMAGE_SIGNATURE). */
export const VDI_SIGNATURE = 0xbeda107f;
/** Header version 1.1 (major in the high 16 bits). */
export const VDI_VERSION_1_1 = 0x00010001;
/** Image types of the v1.1 header ("normal" = dynamic, "fixed" = static). */
export const VDI_TYPE_DYNAMIC = 1;
export const VDI_TYPE_STATIC = 2;
/** Pre-header text QEMU writes; VirtualBox writes "<<< Oracle VM VirtualBox Disk Image >>>\n" and
 *  older Sun/innotek texts. The text does not matter when reading. */
export const VDI_TEXT_QEMU = '<<< QEMU VM Virtual Disk Image >>>\n';
/** Size of the pre-header text field. */
const TEXT_SIZE = 0x40;
/** The header v1.1 size field QEMU writes (bytes from the signature to the end of the UUIDs + pad). */
export const VDI_HEADER_SIZE_V1_1 = 0x180;
/** The whole header struct occupies sector 0. */
export const VDI_SECTOR_SIZE = 512;
export const VDI_HEADER_BYTES = VDI_SECTOR_SIZE;
/** QEMU reads and writes only 1 MiB blocks (DEFAULT_CLUSTER_SIZE; the header allows others). */
export const VDI_BLOCK_SIZE = 1 << 20;
/** QEMU reads the whole block map in one request, so it caps the map at the largest request
 *  (BDRV_REQUEST_MAX_BYTES = INT_MAX rounded down to a sector): (2^31 - 512) / 4 entries
 *  (VDI_BLOCKS_IN_IMAGE_MAX = 536870784), and the disk at that many MiB. */
export const VDI_BLOCKS_IN_IMAGE_MAX = (2 ** 31 - 512) / 4;
export const VDI_DISK_SIZE_MAX = VDI_BLOCKS_IN_IMAGE_MAX * VDI_BLOCK_SIZE;
/** Where QEMU puts the block map when creating (right after the header sector). */
export const VDI_CREATE_BMAP_OFFSET = 0x200;

const UUID_SIZE = 16;

/** Byte offsets of the v1.1 header fields (VirtualBox VDIHEADER1PLUS layout). */
const OFF = {
  text: 0x000,
  signature: 0x040,
  version: 0x044,
  headerSize: 0x048,
  imageType: 0x04c,
  imageFlags: 0x050,
  description: 0x054, // 256 bytes
  offsetBmap: 0x154,
  offsetData: 0x158,
  cylinders: 0x15c,
  heads: 0x160,
  sectors: 0x164,
  sectorSize: 0x168,
  unused1: 0x16c,
  diskSize: 0x170, // u64
  blockSize: 0x178,
  blockExtra: 0x17c,
  blocksInImage: 0x180,
  blocksAllocated: 0x184,
  uuidImage: 0x188,
  uuidLastSnap: 0x198,
  uuidLink: 0x1a8,
  uuidParent: 0x1b8,
} as const;

/** The VDI v1.1 header, field by field (VirtualBox VDIHEADER1PLUS; QEMU VdiHeader). */
export interface VdiHeader {
  /** Pre-header text, NUL-terminated. */
  text: string;
  signature: number;
  version: number;
  headerSize: number;
  imageType: number;
  imageFlags: number;
  /** Byte offset of the block map (sector aligned). */
  offsetBmap: number;
  /** Byte offset of block 0's data (sector aligned). */
  offsetData: number;
  /** Legacy geometry (unused by QEMU, kept as found). */
  cylinders: number;
  heads: number;
  sectors: number;
  sectorSize: number;
  /** Virtual disk size in bytes (u64 as found; validate() bounds it). */
  diskSize: bigint;
  blockSize: number;
  blockExtra: number;
  blocksInImage: number;
  blocksAllocated: number;
  /** UUIDs as stored on disk (16 raw bytes each; the first three fields are little endian). */
  uuidImage: Buffer;
  uuidLastSnap: Buffer;
  uuidLink: Buffer;
  uuidParent: Buffer;
  /** The description field, kept so a rewrite preserves it. */
  description: Buffer;
}

/** Decode sector 0 (VDIHEADER1PLUS); no validation. */
export function decodeVdiHeader(buf: Buffer): VdiHeader {
  if (buf.length < VDI_HEADER_BYTES) throw invalidImage(`VDI header is truncated (${buf.length} of ${VDI_HEADER_BYTES} bytes)`);
  const nul = buf.subarray(0, TEXT_SIZE).indexOf(0);
  return {
    text: buf.toString('latin1', 0, nul < 0 ? TEXT_SIZE : nul),
    signature: buf.readUInt32LE(OFF.signature),
    version: buf.readUInt32LE(OFF.version),
    headerSize: buf.readUInt32LE(OFF.headerSize),
    imageType: buf.readUInt32LE(OFF.imageType),
    imageFlags: buf.readUInt32LE(OFF.imageFlags),
    description: Buffer.from(buf.subarray(OFF.description, OFF.description + 256)),
    offsetBmap: buf.readUInt32LE(OFF.offsetBmap),
    offsetData: buf.readUInt32LE(OFF.offsetData),
    cylinders: buf.readUInt32LE(OFF.cylinders),
    heads: buf.readUInt32LE(OFF.heads),
    sectors: buf.readUInt32LE(OFF.sectors),
    sectorSize: buf.readUInt32LE(OFF.sectorSize),
    diskSize: buf.readBigUInt64LE(OFF.diskSize),
    blockSize: buf.readUInt32LE(OFF.blockSize),
    blockExtra: buf.readUInt32LE(OFF.blockExtra),
    blocksInImage: buf.readUInt32LE(OFF.blocksInImage),
    blocksAllocated: buf.readUInt32LE(OFF.blocksAllocated),
    uuidImage: Buffer.from(buf.subarray(OFF.uuidImage, OFF.uuidImage + UUID_SIZE)),
    uuidLastSnap: Buffer.from(buf.subarray(OFF.uuidLastSnap, OFF.uuidLastSnap + UUID_SIZE)),
    uuidLink: Buffer.from(buf.subarray(OFF.uuidLink, OFF.uuidLink + UUID_SIZE)),
    uuidParent: Buffer.from(buf.subarray(OFF.uuidParent, OFF.uuidParent + UUID_SIZE)),
  };
}

/** Encode the header into a fresh 512-byte sector (unused fields zero). */
export function encodeVdiHeader(h: VdiHeader): Buffer {
  const buf = Buffer.alloc(VDI_HEADER_BYTES);
  buf.write(h.text, OFF.text, TEXT_SIZE - 1, 'latin1');
  buf.writeUInt32LE(h.signature, OFF.signature);
  buf.writeUInt32LE(h.version, OFF.version);
  buf.writeUInt32LE(h.headerSize, OFF.headerSize);
  buf.writeUInt32LE(h.imageType, OFF.imageType);
  buf.writeUInt32LE(h.imageFlags, OFF.imageFlags);
  h.description.copy(buf, OFF.description, 0, 256);
  buf.writeUInt32LE(h.offsetBmap, OFF.offsetBmap);
  buf.writeUInt32LE(h.offsetData, OFF.offsetData);
  buf.writeUInt32LE(h.cylinders, OFF.cylinders);
  buf.writeUInt32LE(h.heads, OFF.heads);
  buf.writeUInt32LE(h.sectors, OFF.sectors);
  buf.writeUInt32LE(h.sectorSize, OFF.sectorSize);
  buf.writeBigUInt64LE(h.diskSize, OFF.diskSize);
  buf.writeUInt32LE(h.blockSize, OFF.blockSize);
  buf.writeUInt32LE(h.blockExtra, OFF.blockExtra);
  buf.writeUInt32LE(h.blocksInImage, OFF.blocksInImage);
  buf.writeUInt32LE(h.blocksAllocated, OFF.blocksAllocated);
  h.uuidImage.copy(buf, OFF.uuidImage);
  h.uuidLastSnap.copy(buf, OFF.uuidLastSnap);
  h.uuidLink.copy(buf, OFF.uuidLink);
  h.uuidParent.copy(buf, OFF.uuidParent);
  return buf;
}

/** Bytes of the block map for `blocks` entries, rounded up to whole sectors. */
export function bmapBytes(blocks: number): number {
  return Math.ceil((blocks * 4) / VDI_SECTOR_SIZE) * VDI_SECTOR_SIZE;
}

const isNullUuid = (u: Buffer) => u.every((b) => b === 0);

/**
 * Validate a decoded header against QEMU's rules (vdi_open) and the file's size. Returns the
 * virtual disk size (rounded up to a sector, as QEMU accepts odd sizes from VBoxManage).
 */
export function validateVdiHeader(h: VdiHeader, fileSize: number, ctx: BlockErrorContext): number {
  const hex = (v: number) => v.toString(16).padStart(8, '0');
  if (h.signature !== VDI_SIGNATURE) throw invalidImage(`Image not in VDI format (bad signature ${hex(h.signature)})`, ctx);
  if (h.version !== VDI_VERSION_1_1) {
    throw unsupported(`unsupported VDI image (version ${h.version >>> 16}.${h.version & 0xffff})`, ctx);
  }
  if (h.diskSize > BigInt(VDI_DISK_SIZE_MAX)) {
    throw unsupported(`Unsupported VDI image size (size is 0x${h.diskSize.toString(16)}, max supported is 0x${VDI_DISK_SIZE_MAX.toString(16)})`, ctx);
  }
  if (h.offsetBmap % VDI_SECTOR_SIZE !== 0) throw unsupported(`unsupported VDI image (unaligned block map offset 0x${h.offsetBmap.toString(16)})`, ctx);
  if (h.offsetData % VDI_SECTOR_SIZE !== 0) throw unsupported(`unsupported VDI image (unaligned data offset 0x${h.offsetData.toString(16)})`, ctx);
  if (h.sectorSize !== VDI_SECTOR_SIZE) throw unsupported(`unsupported VDI image (sector size ${h.sectorSize} is not ${VDI_SECTOR_SIZE})`, ctx);
  if (h.blockSize !== VDI_BLOCK_SIZE) throw unsupported(`unsupported VDI image (block size ${h.blockSize} is not ${VDI_BLOCK_SIZE})`, ctx);
  if (h.blocksInImage > VDI_BLOCKS_IN_IMAGE_MAX) {
    throw unsupported(`unsupported VDI image (too many blocks ${h.blocksInImage}, max is ${VDI_BLOCKS_IN_IMAGE_MAX})`, ctx);
  }
  const size = Math.ceil(Number(h.diskSize) / VDI_SECTOR_SIZE) * VDI_SECTOR_SIZE;
  const room = h.blocksInImage * h.blockSize; // < 2^52: both factors are bounded above
  if (size > room) throw unsupported(`unsupported VDI image (disk size ${h.diskSize}, image bitmap has room for ${room})`, ctx);
  if (!isNullUuid(h.uuidLink)) throw unsupported('unsupported VDI image (non-NULL link UUID)', ctx);
  if (!isNullUuid(h.uuidParent)) throw unsupported('unsupported VDI image (non-NULL parent UUID)', ctx);
  // Overlap (QEMU does not check it; a block map over the header would read as garbage). A map
  // reaching past the end of the file is opened, as QEMU opens it (its read of the map is padded
  // with zeros): only the part stored in the file must stay clear of the data.
  if (h.offsetBmap < VDI_HEADER_BYTES) throw invalidImage(`VDI block map offset 0x${h.offsetBmap.toString(16)} overlaps the header (expected at least 0x${VDI_HEADER_BYTES.toString(16)})`, ctx);
  const bmapEnd = h.offsetBmap + h.blocksInImage * 4;
  const storedEnd = Math.min(bmapEnd, Math.max(fileSize, h.offsetBmap));
  if (h.offsetData < storedEnd) throw invalidImage(`VDI data offset ${h.offsetData} overlaps the block map (which ends at ${storedEnd})`, ctx);
  return size;
}

/** 16 random bytes as a version-4 UUID (what QEMU's qemu_uuid_generate makes). */
export function newUuid(): Buffer {
  const u = nodeCrypto().randomBytes(UUID_SIZE);
  u[6] = (u[6]! & 0x0f) | 0x40;
  u[8] = (u[8]! & 0x3f) | 0x80;
  return u;
}

/** The header QEMU's vdi_create writes for a disk of `size` bytes. */
export function newVdiHeader(size: number, isStatic: boolean): VdiHeader {
  const blocks = Math.ceil(size / VDI_BLOCK_SIZE);
  return {
    text: VDI_TEXT_QEMU,
    signature: VDI_SIGNATURE,
    version: VDI_VERSION_1_1,
    headerSize: VDI_HEADER_SIZE_V1_1,
    imageType: isStatic ? VDI_TYPE_STATIC : VDI_TYPE_DYNAMIC,
    imageFlags: 0,
    description: Buffer.alloc(256),
    offsetBmap: VDI_CREATE_BMAP_OFFSET,
    offsetData: VDI_CREATE_BMAP_OFFSET + bmapBytes(blocks),
    cylinders: 0,
    heads: 0,
    sectors: 0,
    sectorSize: VDI_SECTOR_SIZE,
    diskSize: BigInt(size),
    blockSize: VDI_BLOCK_SIZE,
    blockExtra: 0,
    blocksInImage: blocks,
    blocksAllocated: isStatic ? blocks : 0,
    uuidImage: newUuid(),
    uuidLastSnap: newUuid(),
    uuidLink: Buffer.alloc(UUID_SIZE),
    uuidParent: Buffer.alloc(UUID_SIZE),
  };
}

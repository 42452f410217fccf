// The Sheepdog client protocol as QEMU 5.2's block/sheepdog.c speaks it (the daemon's side:
// include/sheepdog_proto.h of sheepdog 1.0): 48-byte little-endian request and response headers,
// object ids, the inode (vdi object) header, result codes and their messages.

import { BlockError } from '../../errors.ts';

/** The protocol version QEMU sends (the daemon accepts any version up to its own, 2). */
export const SD_PROTO_VER = 0x01;
export const SD_DEFAULT_PORT = 7000;

export const SD_OP_CREATE_AND_WRITE_OBJ = 0x01;
export const SD_OP_READ_OBJ = 0x02;
export const SD_OP_WRITE_OBJ = 0x03;
export const SD_OP_NEW_VDI = 0x11;
export const SD_OP_LOCK_VDI = 0x12;
export const SD_OP_RELEASE_VDI = 0x13;
export const SD_OP_GET_VDI_INFO = 0x14;
export const SD_OP_READ_VDIS = 0x15;
export const SD_OP_FLUSH_VDI = 0x16;
export const SD_OP_DEL_VDI = 0x17;
export const SD_OP_GET_CLUSTER_DEFAULT = 0x18;

export const SD_FLAG_CMD_WRITE = 0x01;
export const SD_FLAG_CMD_COW = 0x02;
export const SD_FLAG_CMD_CACHE = 0x04;
export const SD_FLAG_CMD_DIRECT = 0x08;

export const SD_RES_SUCCESS = 0x00;
export const SD_RES_NO_OBJ = 0x02;
export const SD_RES_VDI_EXIST = 0x04;
export const SD_RES_INVALID_PARMS = 0x05;
export const SD_RES_NO_VDI = 0x08;
export const SD_RES_NO_TAG = 0x0e;

export const SD_REQ_SIZE = 48;
export const SD_RSP_SIZE = 48;
export const SD_MAX_VDI_LEN = 256;
export const SD_MAX_VDI_TAG_LEN = 256;
export const SD_NR_VDIS = 1 << 24;
/** Entries of an inode's data object table QEMU uses (MAX_DATA_OBJS of its sheepdog.c). */
export const MAX_DATA_OBJS = 1 << 20;
export const SD_DEFAULT_BLOCK_SIZE_SHIFT = 22;
export const SD_EC_MAX_STRIP = 16;
export const SD_MAX_COPIES = SD_EC_MAX_STRIP * 2 - 1;
export const LOCK_TYPE_NORMAL = 0;

/** struct sd_inode up to data_vdi_id: the header QEMU reads and writes back. */
export const SD_INODE_HEADER_SIZE = 4664;
/** Offsets of the inode fields QEMU changes in place. */
export const INODE_TAG_OFFSET = 256;
export const INODE_VDI_SIZE_OFFSET = 536;
export const INODE_VM_STATE_SIZE_OFFSET = 544;
export const INODE_VM_CLOCK_OFFSET = 528;

const VDI_SPACE_SHIFT = 32n;
const VDI_BIT = 1n << 63n;

/** Object id of a vdi's inode. */
export function vdiOid(vid: number): bigint {
  return VDI_BIT | (BigInt(vid) << VDI_SPACE_SHIFT);
}

/** Object id of data object `idx` owned by vdi `vid`. */
export function dataOid(vid: number, idx: number): bigint {
  return (BigInt(vid) << VDI_SPACE_SHIFT) | BigInt(idx);
}

/** sd_strerror of QEMU 5.2 (the daemon's result codes). */
const RESULT_TEXT: Record<number, string> = {
  0x00: 'Success',
  0x01: 'Unknown error',
  0x02: 'No object found',
  0x03: 'I/O error',
  0x04: 'VDI exists already',
  0x05: 'Invalid parameters',
  0x06: 'System error',
  0x07: 'VDI is already locked',
  0x08: 'No vdi found',
  0x09: 'No base VDI found',
  0x0a: 'Failed read the requested VDI',
  0x0b: 'Failed to write the requested VDI',
  0x0c: 'Failed to read the base VDI',
  0x0d: 'Failed to write the base VDI',
  0x0e: 'Failed to find the requested tag',
  0x0f: 'The system is still booting',
  0x10: "VDI isn't locked",
  0x11: 'The system is shutting down',
  0x12: 'Out of memory on the server',
  0x13: 'We already have the maximum vdis',
  0x14: 'Protocol version mismatch',
  0x15: 'Server has no space for new objects',
  0x16: 'Sheepdog is waiting for a format operation',
  0x17: 'Sheepdog is waiting for other nodes joining',
  0x18: 'Target node had failed to join sheepdog',
  0x19: 'Sheepdog is stopped serving IO request',
  0x1a: 'Object is read-only',
};

export function sdStrerror(result: number): string {
  return RESULT_TEXT[result] ?? 'Invalid error code';
}

/** A request header (struct sd_req): the common part and the opcode-specific 32 bytes. */
export interface SdRequest {
  opcode: number;
  flags: number;
  dataLength: number;
  /** Fills bytes 16..47 of the header. */
  fill?(h: Buffer): void;
}

export function encodeRequest(r: SdRequest, id: number): Buffer {
  const h = Buffer.alloc(SD_REQ_SIZE);
  h.writeUInt8(SD_PROTO_VER, 0);
  h.writeUInt8(r.opcode, 1);
  h.writeUInt16LE(r.flags, 2);
  h.writeUInt32LE(0, 4); // epoch: clients send 0
  h.writeUInt32LE(id >>> 0, 8);
  h.writeUInt32LE(r.dataLength >>> 0, 12);
  r.fill?.(h);
  return h;
}

/** Object request fields (struct sd_req .obj). */
export function objFields(oid: bigint, cowOid: bigint, copies: number, copyPolicy: number, offset: number): (h: Buffer) => void {
  return (h) => {
    h.writeBigUInt64LE(oid, 16);
    h.writeBigUInt64LE(cowOid, 24);
    h.writeUInt8(copies & 0xff, 32);
    h.writeUInt8(copyPolicy & 0xff, 33);
    h.writeBigUInt64LE(BigInt(offset), 40);
  };
}

/** Vdi request fields (struct sd_req .vdi). */
export function vdiFields(f: { size?: number; baseVid?: number; copies?: number; copyPolicy?: number; blockSizeShift?: number; snapid?: number; type?: number }): (h: Buffer) => void {
  return (h) => {
    h.writeBigUInt64LE(BigInt(f.size ?? 0), 16);
    h.writeUInt32LE((f.baseVid ?? 0) >>> 0, 24);
    h.writeUInt8(f.copies ?? 0, 28);
    h.writeUInt8(f.copyPolicy ?? 0, 29);
    h.writeUInt8(0, 30); // store_policy: QEMU creates plain (not hyper volume) inodes
    h.writeUInt8(f.blockSizeShift ?? 0, 31);
    h.writeUInt32LE((f.snapid ?? 0) >>> 0, 32);
    h.writeUInt32LE((f.type ?? 0) >>> 0, 36);
  };
}

/** A response header (struct sd_rsp). */
export interface SdResponse {
  opcode: number;
  id: number;
  dataLength: number;
  result: number;
  /** .vdi.vdi_id */
  vdiId: number;
  /** .cluster_default */
  clusterCopies: number;
  clusterCopyPolicy: number;
  clusterBlockSizeShift: number;
}

export function decodeResponse(h: Buffer): SdResponse {
  return {
    opcode: h.readUInt8(1),
    id: h.readUInt32LE(8),
    dataLength: h.readUInt32LE(12),
    result: h.readUInt32LE(16),
    vdiId: h.readUInt32LE(24),
    clusterCopies: h.readUInt8(20),
    clusterCopyPolicy: h.readUInt8(21),
    clusterBlockSizeShift: h.readUInt8(22),
  };
}

/** The inode header fields Platter uses (struct sd_inode before data_vdi_id). */
export interface InodeHeader {
  name: string;
  tag: string;
  createTime: bigint;
  snapCtime: bigint;
  vmClockNsec: bigint;
  vdiSize: number;
  vmStateSize: number;
  copyPolicy: number;
  storePolicy: number;
  nrCopies: number;
  /** 0 in inodes older than object sizes: 22 (4 MiB) then. */
  blockSizeShift: number;
  snapId: number;
  vdiId: number;
  parentVdiId: number;
}

function cString(b: Buffer, start: number, len: number): string {
  const s = b.subarray(start, start + len);
  const nul = s.indexOf(0);
  return s.subarray(0, nul < 0 ? len : nul).toString('utf8');
}

/** Decode and check an inode header read from vdi object `vid`. */
export function decodeInodeHeader(b: Buffer, vid: number, label: string): InodeHeader {
  const bad = (what: string) => new BlockError('InvalidImage', `sheepdog vdi '${label}': invalid inode (${what})`, { path: label });
  if (b.length < SD_INODE_HEADER_SIZE) throw bad(`short read of ${b.length} bytes`);
  const vdiSize = b.readBigUInt64LE(INODE_VDI_SIZE_OFFSET);
  const vmState = b.readBigUInt64LE(INODE_VM_STATE_SIZE_OFFSET);
  const shift = b.readUInt8(555) || SD_DEFAULT_BLOCK_SIZE_SHIFT;
  const h: InodeHeader = {
    name: cString(b, 0, SD_MAX_VDI_LEN),
    tag: cString(b, INODE_TAG_OFFSET, SD_MAX_VDI_TAG_LEN),
    createTime: b.readBigUInt64LE(512),
    snapCtime: b.readBigUInt64LE(520),
    vmClockNsec: b.readBigUInt64LE(INODE_VM_CLOCK_OFFSET),
    vdiSize: 0,
    vmStateSize: 0,
    copyPolicy: b.readUInt8(552),
    storePolicy: b.readUInt8(553),
    nrCopies: b.readUInt8(554),
    blockSizeShift: shift,
    snapId: b.readUInt32LE(556),
    vdiId: b.readUInt32LE(560),
    parentVdiId: b.readUInt32LE(564),
  };
  if (shift < 20 || shift > 31) throw bad(`block_size_shift ${shift}`);
  if (vdiSize > BigInt(MAX_DATA_OBJS) << BigInt(shift)) throw bad(`size ${vdiSize} beyond ${MAX_DATA_OBJS} objects`);
  if (vmState > 1n << 53n) throw bad(`vm_state_size ${vmState}`);
  h.vdiSize = Number(vdiSize);
  h.vmStateSize = Number(vmState);
  if (h.vdiId !== vid) throw bad(`vdi_id ${h.vdiId.toString(16)} in the object of ${vid.toString(16)}`);
  if (h.vdiId === 0 || h.vdiId >= SD_NR_VDIS) throw bad(`vdi_id ${h.vdiId}`);
  if (h.parentVdiId >= SD_NR_VDIS) throw bad(`parent_vdi_id ${h.parentVdiId}`);
  if (h.nrCopies > SD_MAX_COPIES) throw bad(`nr_copies ${h.nrCopies}`);
  // A hyper volume keeps its object table as a B-tree (store_policy 1): QEMU 5.2 reads only the
  // flat table, and so does Platter.
  if (h.storePolicy !== 0) throw new BlockError('Unsupported', `sheepdog vdi '${label}' is a hyper volume (store_policy ${h.storePolicy}), which QEMU's driver does not read`, { path: label });
  return h;
}

/** A snapshot vdi has its snapshot time set (QEMU's is_snapshot). */
export function isSnapshot(h: InodeHeader): boolean {
  return h.snapCtime !== 0n;
}

/** The name/tag payload of vdi lookups (SD_MAX_VDI_LEN + SD_MAX_VDI_TAG_LEN bytes). */
export function nameTagPayload(name: string, tag: string | undefined, withTag: boolean): Buffer {
  const b = Buffer.alloc(withTag ? SD_MAX_VDI_LEN + SD_MAX_VDI_TAG_LEN : SD_MAX_VDI_LEN);
  b.write(name, 0, SD_MAX_VDI_LEN - 1, 'utf8');
  if (withTag && tag !== undefined) b.write(tag, SD_MAX_VDI_LEN, SD_MAX_VDI_TAG_LEN - 1, 'utf8');
  return b;
}

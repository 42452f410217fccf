// Vdi-level requests of QEMU 5.2's sheepdog driver over one SheepdogClient: lookup (with or
// without the cluster lock), creation (fresh, clone, snapshot), release, object reads and
// writes, the cluster defaults, the vdi bitmap and inode reads. Each checks the result code and
// the payload length before anything is used.

import { BlockError } from '../../errors.ts';
import type { SheepdogClient } from './client.ts';
import {
  dataOid, decodeInodeHeader, LOCK_TYPE_NORMAL, MAX_DATA_OBJS, nameTagPayload, objFields, SD_FLAG_CMD_COW, SD_FLAG_CMD_WRITE,
  SD_INODE_HEADER_SIZE, SD_NR_VDIS, SD_OP_CREATE_AND_WRITE_OBJ, SD_OP_DEL_VDI, SD_OP_FLUSH_VDI, SD_OP_GET_CLUSTER_DEFAULT, SD_OP_GET_VDI_INFO,
  SD_OP_LOCK_VDI, SD_OP_NEW_VDI, SD_OP_READ_OBJ, SD_OP_READ_VDIS, SD_OP_RELEASE_VDI, SD_OP_WRITE_OBJ, SD_RES_SUCCESS, sdStrerror, vdiFields,
  vdiOid, type InodeHeader,
} from './proto.ts';

export class SheepdogResultError extends BlockError {
  readonly result: number;
  constructor(result: number, message: string) {
    super(result === 0x08 || result === 0x0e || result === 0x02 ? 'NotFound' : result === 0x07 ? 'Locked' : result === 0x04 || result === 0x05 ? 'InvalidArgument' : 'Io', message);
    this.result = result;
  }
}

function check(result: number, what: () => string): void {
  if (result !== SD_RES_SUCCESS) throw new SheepdogResultError(result, what());
}

/** find_vdi_name: the id of vdi `name` (its working vdi, or snapshot `snapId`/`tag`). */
export async function lookupVdi(c: SheepdogClient, name: string, snapId: number, tag: string, lock: boolean): Promise<number> {
  const { rsp } = await c.request(
    { opcode: lock ? SD_OP_LOCK_VDI : SD_OP_GET_VDI_INFO, flags: SD_FLAG_CMD_WRITE, dataLength: 512, fill: vdiFields({ snapid: snapId, type: LOCK_TYPE_NORMAL }) },
    nameTagPayload(name, tag, true),
  );
  const snap = snapId ? ` snapshot ${snapId}` : tag ? ` snapshot '${tag}'` : '';
  check(rsp.result, () => `cannot get vdi info, ${sdStrerror(rsp.result)}, ${name}${snap}`);
  if (rsp.vdiId === 0 || rsp.vdiId >= SD_NR_VDIS) throw new BlockError('Io', `sheepdog server '${c.label}' answered vdi id ${rsp.vdiId} for '${name}'`);
  return rsp.vdiId;
}

/** SD_OP_RELEASE_VDI: drop the lock LOCK_VDI took. */
export async function releaseVdi(c: SheepdogClient, vid: number): Promise<void> {
  const { rsp } = await c.request({ opcode: SD_OP_RELEASE_VDI, flags: 0, dataLength: 0, fill: vdiFields({ baseVid: vid, type: LOCK_TYPE_NORMAL }) });
  check(rsp.result, () => `cannot release vdi ${vid.toString(16)}: ${sdStrerror(rsp.result)}`);
}

export interface NewVdi {
  name: string;
  size: number;
  baseVid: number;
  copies: number;
  copyPolicy: number;
  blockSizeShift: number;
  /** Make the working vdi `baseVid` a snapshot and create a new working vdi on it. */
  snapshot: boolean;
}

/** do_sd_create: SD_OP_NEW_VDI; the new vdi's id. */
export async function newVdi(c: SheepdogClient, v: NewVdi): Promise<number> {
  const { rsp } = await c.request(
    { opcode: SD_OP_NEW_VDI, flags: SD_FLAG_CMD_WRITE, dataLength: 256, fill: vdiFields({ size: v.size, baseVid: v.baseVid, copies: v.copies, copyPolicy: v.copyPolicy, blockSizeShift: v.blockSizeShift, snapid: v.snapshot ? 1 : 0 }) },
    nameTagPayload(v.name, undefined, false),
  );
  check(rsp.result, () => `${sdStrerror(rsp.result)}, ${v.name}`);
  if (rsp.vdiId === 0 || rsp.vdiId >= SD_NR_VDIS) throw new BlockError('Io', `sheepdog server '${c.label}' answered vdi id ${rsp.vdiId} for new vdi '${v.name}'`);
  return rsp.vdiId;
}

/** SD_OP_DEL_VDI of a snapshot (by id or tag). */
export async function deleteVdi(c: SheepdogClient, name: string, snapId: number, tag: string): Promise<void> {
  const { rsp } = await c.request({ opcode: SD_OP_DEL_VDI, flags: SD_FLAG_CMD_WRITE, dataLength: 512, fill: vdiFields({ snapid: snapId }) }, nameTagPayload(name, tag, true));
  check(rsp.result, () => `cannot delete snapshot of '${name}': ${sdStrerror(rsp.result)}`);
}

/** SD_OP_GET_CLUSTER_DEFAULT: the redundancy and object size vdis get when none is asked. */
export async function clusterDefault(c: SheepdogClient): Promise<{ copies: number; copyPolicy: number; blockSizeShift: number }> {
  const { rsp } = await c.request({ opcode: SD_OP_GET_CLUSTER_DEFAULT, flags: 0, dataLength: 0 });
  check(rsp.result, () => `cannot get the cluster's defaults: ${sdStrerror(rsp.result)}`);
  if (rsp.clusterBlockSizeShift < 20 || rsp.clusterBlockSizeShift > 31) throw new BlockError('Io', `sheepdog server '${c.label}' answered object size shift ${rsp.clusterBlockSizeShift}`);
  return { copies: rsp.clusterCopies, copyPolicy: rsp.clusterCopyPolicy, blockSizeShift: rsp.clusterBlockSizeShift };
}

/** SD_OP_READ_VDIS: the bitmap of vdi ids in use. */
export async function readVdiBitmap(c: SheepdogClient): Promise<Buffer> {
  const len = SD_NR_VDIS / 8;
  const { rsp, data } = await c.request({ opcode: SD_OP_READ_VDIS, flags: 0, dataLength: len }, undefined, len);
  check(rsp.result, () => `cannot read the vdi list: ${sdStrerror(rsp.result)}`);
  if (data.length !== len) throw new BlockError('Io', `sheepdog server '${c.label}' sent a vdi bitmap of ${data.length} bytes (expected ${len})`);
  return data;
}

export interface ObjectIo {
  copies: number;
  copyPolicy: number;
}

/** read_object: `length` bytes at `offset` of object `oid`, exactly. */
export async function readObject(c: SheepdogClient, oid: bigint, offset: number, length: number, io: ObjectIo): Promise<Buffer> {
  const { rsp, data } = await c.request({ opcode: SD_OP_READ_OBJ, flags: 0, dataLength: length, fill: objFields(oid, 0n, io.copies, io.copyPolicy, offset) }, undefined, length);
  check(rsp.result, () => `failed to read object ${oid.toString(16).padStart(16, '0')}: ${sdStrerror(rsp.result)}`);
  if (data.length !== length) throw new BlockError('Io', `sheepdog server '${c.label}' returned ${data.length} bytes of object ${oid.toString(16)} (asked ${length})`);
  return data;
}

/** write_object / CREATE_AND_WRITE_OBJ: `data` at `offset` of object `oid`; a new object may be
 *  copied first from `cowOid` (the object of a snapshot parent). */
export async function writeObject(c: SheepdogClient, oid: bigint, offset: number, data: Buffer, io: ObjectIo, create?: { cowOid: bigint }): Promise<void> {
  const cow = create !== undefined && create.cowOid !== 0n;
  const { rsp } = await c.request(
    { opcode: create ? SD_OP_CREATE_AND_WRITE_OBJ : SD_OP_WRITE_OBJ, flags: SD_FLAG_CMD_WRITE | (cow ? SD_FLAG_CMD_COW : 0), dataLength: data.length, fill: objFields(oid, create?.cowOid ?? 0n, io.copies, io.copyPolicy, offset) },
    data,
  );
  check(rsp.result, () => `failed to write object ${oid.toString(16).padStart(16, '0')}: ${sdStrerror(rsp.result)}`);
}

/** SD_OP_FLUSH_VDI; false when the daemon does not take it (QEMU then stops asking). */
export async function flushVdi(c: SheepdogClient, vid: number, io: ObjectIo): Promise<boolean> {
  const { rsp } = await c.request({ opcode: SD_OP_FLUSH_VDI, flags: 0, dataLength: 0, fill: objFields(vdiOid(vid), 0n, io.copies, io.copyPolicy, 0) });
  if (rsp.result === 0x05) return false;
  check(rsp.result, () => `failed to flush vdi ${vid.toString(16)}: ${sdStrerror(rsp.result)}`);
  return true;
}

/** The inode header of vdi `vid` (a cheap read, for lists). */
export async function readInodeHeader(c: SheepdogClient, vid: number, label: string): Promise<InodeHeader> {
  const b = await readObject(c, vdiOid(vid), 0, SD_INODE_HEADER_SIZE, { copies: 0, copyPolicy: 0 });
  return decodeInodeHeader(b, vid, label);
}

export interface Inode {
  header: InodeHeader;
  objectSize: number;
  /** data_vdi_id: the vdi owning each data object (0: never written), as far as the size goes. */
  table: Uint32Array;
}

/** The inode of vdi `vid` with its object table, checked entry by entry. */
export async function readInode(c: SheepdogClient, vid: number, label: string): Promise<Inode> {
  const header = await readInodeHeader(c, vid, label);
  const objectSize = 2 ** header.blockSizeShift;
  const n = Math.ceil(header.vdiSize / objectSize);
  if (n > MAX_DATA_OBJS) throw new BlockError('InvalidImage', `sheepdog vdi '${label}': ${n} data objects (at most ${MAX_DATA_OBJS})`);
  const table = new Uint32Array(n);
  if (n > 0) {
    const raw = await readObject(c, vdiOid(vid), SD_INODE_HEADER_SIZE, n * 4, { copies: header.nrCopies, copyPolicy: header.copyPolicy });
    for (let i = 0; i < n; i++) {
      const v = raw.readUInt32LE(i * 4);
      if (v >= SD_NR_VDIS) throw new BlockError('InvalidImage', `sheepdog vdi '${label}': object ${i} names vdi ${v.toString(16)}, beyond the vdi id space`);
      table[i] = v;
    }
  }
  return { header, objectSize, table };
}

export { dataOid, vdiOid };

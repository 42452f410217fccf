// SCSI commands the iSCSI driver sends (SPC-4 / SBC-3 command descriptor blocks) and the
// answers it decodes: standard INQUIRY and the VPD pages 00h, B0h (Block Limits) and B2h
// (Logical Block Provisioning), READ CAPACITY (10)/(16), MODE SENSE (6) header, GET LBA STATUS,
// and sense data (fixed and descriptor formats) worded as libiscsi words it.

import { BlockError } from '../../errors.ts';

export const TYPE_DISK = 0x00;
export const TYPE_ROM = 0x05;

/** SCSI status codes (SAM-5 5.3.1). */
export const STATUS_GOOD = 0x00;
export const STATUS_CHECK_CONDITION = 0x02;
export const STATUS_BUSY = 0x08;
export const STATUS_TASK_SET_FULL = 0x28;

export const SENSE_UNIT_ATTENTION = 0x06;
export const SENSE_ILLEGAL_REQUEST = 0x05;

const u64 = (v: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(v));
  return b;
};

export const cdb = {
  testUnitReady: (): Buffer => Buffer.alloc(6),
  /** INQUIRY (SPC-4 6.6). */
  inquiry(evpd: boolean, page: number, alloc: number): Buffer {
    const c = Buffer.alloc(6);
    c[0] = 0x12;
    c[1] = evpd ? 1 : 0;
    c[2] = page;
    c.writeUInt16BE(alloc, 3);
    return c;
  },
  /** MODE SENSE (6), all pages, current values (SPC-4 6.11). */
  modeSense6(alloc: number): Buffer {
    return Buffer.from([0x1a, 0x08 /* DBD */, 0x3f, 0, alloc, 0]);
  },
  readCapacity10: (): Buffer => Buffer.from([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
  /** READ CAPACITY (16): SERVICE ACTION IN (16), action 10h (SBC-3 5.16). */
  readCapacity16(alloc: number): Buffer {
    const c = Buffer.alloc(16);
    c[0] = 0x9e;
    c[1] = 0x10;
    c.writeUInt32BE(alloc, 10);
    return c;
  },
  /** GET LBA STATUS: SERVICE ACTION IN (16), action 12h (SBC-3 5.7). */
  getLbaStatus(lba: number, alloc: number): Buffer {
    const c = Buffer.alloc(16);
    c[0] = 0x9e;
    c[1] = 0x12;
    u64(lba).copy(c, 2);
    c.writeUInt32BE(alloc, 10);
    return c;
  },
  /** READ/WRITE (10) or (16) (SBC-3 5.11, 5.13, 5.32, 5.34); `fua` sets the FUA bit. */
  rw(write: boolean, use16: boolean, lba: number, blocks: number, fua = false): Buffer {
    if (use16) {
      const c = Buffer.alloc(16);
      c[0] = write ? 0x8a : 0x88;
      c[1] = fua ? 0x08 : 0;
      u64(lba).copy(c, 2);
      c.writeUInt32BE(blocks, 10);
      return c;
    }
    const c = Buffer.alloc(10);
    c[0] = write ? 0x2a : 0x28;
    c[1] = fua ? 0x08 : 0;
    c.writeUInt32BE(lba, 2);
    c.writeUInt16BE(blocks, 7);
    return c;
  },
  /** SYNCHRONIZE CACHE (10), the whole medium (SBC-3 5.22). */
  synchronizeCache10: (): Buffer => Buffer.from([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
  /** WRITE SAME (16) of one block (SBC-3 5.42); `unmap` lets the target deallocate. */
  writeSame16(lba: number, blocks: number, unmap: boolean): Buffer {
    const c = Buffer.alloc(16);
    c[0] = 0x93;
    c[1] = unmap ? 0x08 : 0;
    u64(lba).copy(c, 2);
    c.writeUInt32BE(blocks, 10);
    return c;
  },
  /** UNMAP with a parameter list of `len` bytes (SBC-3 5.28). */
  unmap(len: number): Buffer {
    const c = Buffer.alloc(10);
    c[0] = 0x42;
    c.writeUInt16BE(len, 7);
    return c;
  },
};

/** UNMAP's parameter list: one block descriptor per range (SBC-3 5.28.2). */
export function unmapParameters(ranges: readonly { lba: number; blocks: number }[]): Buffer {
  const b = Buffer.alloc(8 + 16 * ranges.length);
  b.writeUInt16BE(6 + 16 * ranges.length, 0);
  b.writeUInt16BE(16 * ranges.length, 2);
  ranges.forEach((r, i) => {
    u64(r.lba).copy(b, 8 + 16 * i);
    b.writeUInt32BE(r.blocks, 16 + 16 * i);
  });
  return b;
}

const short = (what: string) => new BlockError('Io', `iSCSI: Failed to unmarshall ${what} data.`);

/** Standard INQUIRY data: the peripheral qualifier and device type (SPC-4 6.6.2). */
export function parseInquiry(d: Buffer): { qualifier: number; type: number; vendor: string; product: string } {
  if (d.length < 1) throw short('inquiry');
  return {
    qualifier: d[0]! >> 5,
    type: d[0]! & 0x1f,
    vendor: d.length >= 16 ? d.toString('latin1', 8, 16).trim() : '',
    product: d.length >= 32 ? d.toString('latin1', 16, 32).trim() : '',
  };
}

/** Supported VPD pages (page 00h, SPC-4 7.8.15). */
export function parseSupportedPages(d: Buffer): number[] {
  if (d.length < 4) throw short('inquiry');
  const n = Math.min(d.readUInt16BE(2), d.length - 4);
  return [...d.subarray(4, 4 + n)];
}

/** The full size a VPD page says it has (header + page length). */
export const vpdFullSize = (d: Buffer): number => (d.length >= 4 ? 4 + d.readUInt16BE(2) : 0);

/** Block Limits VPD page (B0h, SBC-3 6.6.4); fields absent in a short page are 0. */
export interface BlockLimits {
  maxXferLen: number;
  optXferLen: number;
  maxUnmap: number;
  maxUnmapBdCount: number;
  optUnmapGran: number;
  maxWsLen: number;
}

export function parseBlockLimits(d: Buffer): BlockLimits {
  const at32 = (o: number) => (d.length >= o + 4 ? d.readUInt32BE(o) : 0);
  const ws = d.length >= 44 ? Number(d.readBigUInt64BE(36)) : 0;
  return {
    maxXferLen: at32(8),
    optXferLen: at32(12),
    maxUnmap: at32(20),
    maxUnmapBdCount: at32(24),
    optUnmapGran: at32(28),
    maxWsLen: Number.isSafeInteger(ws) ? ws : 0,
  };
}

/** Logical Block Provisioning VPD page (B2h, SBC-3 6.6.5). */
export function parseLbp(d: Buffer): { lbpu: boolean; lbpws: boolean; lbpws10: boolean } {
  const f = d.length > 5 ? d[5]! : 0;
  return { lbpu: !!(f & 0x80), lbpws: !!(f & 0x40), lbpws10: !!(f & 0x20) };
}

export interface Capacity {
  blockSize: number;
  /** Number of blocks (returned LBA + 1). */
  blocks: number;
  lbpme: boolean;
  lbprz: boolean;
  /** The last LBA needs 16-byte CDBs. */
  use16: boolean;
}

/** READ CAPACITY (16) parameter data (SBC-3 5.16.2). */
export function parseCapacity16(d: Buffer): Capacity {
  if (d.length < 32) throw short('readcapacity16');
  const last = d.readBigUInt64BE(0);
  const blocks = last + 1n;
  if (blocks > BigInt(Number.MAX_SAFE_INTEGER)) throw new BlockError('Unsupported', 'iSCSI: the LUN is too large');
  return { blockSize: d.readUInt32BE(8), blocks: Number(blocks), lbpme: !!(d[14]! & 0x80), lbprz: !!(d[14]! & 0x40), use16: last > 0xffffffffn };
}

/** READ CAPACITY (10) parameter data (SBC-3 5.15.2); LBA 0 means a blank medium, as QEMU reads it. */
export function parseCapacity10(d: Buffer): Capacity {
  if (d.length < 8) throw short('readcapacity10');
  const last = d.readUInt32BE(0);
  return { blockSize: d.readUInt32BE(4), blocks: last === 0 ? 0 : last + 1, lbpme: false, lbprz: false, use16: false };
}

/** MODE SENSE (6) header: write protect (WP) and DPOFUA bits (SBC-3 6.5.1). */
export function parseModeSense6(d: Buffer): { writeProtected: boolean; dpofua: boolean } {
  if (d.length < 4) throw short('MODE_SENSE(6)');
  return { writeProtected: !!(d[2]! & 0x80), dpofua: !!(d[2]! & 0x10) };
}

/** The first LBA status descriptor of GET LBA STATUS (SBC-3 5.7.2): provisioning 0 mapped,
 *  1 deallocated, 2 anchored. */
export function parseLbaStatus(d: Buffer): { lba: number; blocks: number; provisioning: number } | undefined {
  if (d.length < 24 || d.readUInt32BE(0) < 20) return undefined;
  const lba = d.readBigUInt64BE(8);
  if (lba > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return { lba: Number(lba), blocks: d.readUInt32BE(16), provisioning: d[20]! & 0x0f };
}

export interface Sense {
  key: number;
  asc: number;
  ascq: number;
}

/** Sense data in fixed (70h/71h) or descriptor (72h/73h) format (SPC-4 4.5). */
export function parseSense(d: Buffer): Sense | undefined {
  if (d.length < 2) return undefined;
  const code = d[0]! & 0x7f;
  if (code === 0x72 || code === 0x73) return d.length >= 4 ? { key: d[1]! & 0x0f, asc: d[2]!, ascq: d[3]! } : undefined;
  if (code === 0x70 || code === 0x71) return d.length >= 14 ? { key: d[2]! & 0x0f, asc: d[12]!, ascq: d[13]! } : { key: d.length > 2 ? d[2]! & 0x0f : 0, asc: 0, ascq: 0 };
  return undefined;
}

const KEY_NAMES: Record<number, string> = {
  0x00: 'NO_SENSE',
  0x01: 'RECOVERED_ERROR',
  0x02: 'NOT_READY',
  0x03: 'MEDIUM_ERROR',
  0x04: 'HARDWARE_ERROR',
  0x05: 'ILLEGAL_REQUEST',
  0x06: 'UNIT_ATTENTION',
  0x07: 'DATA_PROTECTION',
  0x08: 'BLANK_CHECK',
  0x09: 'VENDOR_SPECIFIC',
  0x0a: 'COPY_ABORTED',
  0x0b: 'COMMAND_ABORTED',
  0x0d: 'VOLUME_OVERFLOW',
  0x0e: 'MISCOMPARE',
};

const ASCQ_NAMES: Record<number, string> = {
  0x0000: 'NO_ADDITIONAL_SENSE_INFORMATION',
  0x0404: 'LOGICAL_UNIT_NOT_READY_FORMAT_IN_PROGRESS',
  0x1100: 'UNRECOVERED_READ_ERROR',
  0x1a00: 'PARAMETER_LIST_LENGTH_ERROR',
  0x2000: 'INVALID_OPERATION_CODE',
  0x2100: 'LBA_OUT_OF_RANGE',
  0x2400: 'INVALID_FIELD_IN_CDB',
  0x2500: 'LOGICAL_UNIT_NOT_SUPPORTED',
  0x2600: 'INVALID_FIELD_IN_PARAMETER_LIST',
  0x2700: 'WRITE_PROTECTED',
  0x2701: 'HARDWARE_WRITE_PROTECTED',
  0x2702: 'SOFTWARE_WRITE_PROTECTED',
  0x2900: 'BUS_RESET',
  0x2901: 'POWER_ON_OCCURED',
  0x2902: 'SCSI_BUS_RESET_OCCURED',
  0x2903: 'BUS_DEVICE_RESET_FUNCTION_OCCURED',
  0x2904: 'DEVICE_INTERNAL_RESET',
  0x2a09: 'CAPACITY_DATA_HAS_CHANGED',
  0x3a00: 'MEDIUM_NOT_PRESENT',
  0x3a01: 'MEDIUM_NOT_PRESENT-TRAY_CLOSED',
  0x3a02: 'MEDIUM_NOT_PRESENT-TRAY_OPEN',
  0x3f0e: 'REPORTED_LUNS_DATA_HAS_CHANGED',
};

/** Sense as libiscsi words it: "SENSE KEY:ILLEGAL_REQUEST(5) ASCQ:LOGICAL_UNIT_NOT_SUPPORTED(0x2500)". */
export function senseText(s: Sense): string {
  const code = (s.asc << 8) | s.ascq;
  return `SENSE KEY:${KEY_NAMES[s.key] ?? 'Unknown'}(${s.key}) ASCQ:${ASCQ_NAMES[code] ?? 'Unknown'}(0x${code.toString(16).padStart(4, '0')})`;
}

const DEVICE_TYPES: Record<number, string> = {
  0x00: 'disk',
  0x01: 'tape',
  0x02: 'printer',
  0x03: 'processor',
  0x04: 'write-once',
  0x05: 'CD/DVD',
  0x07: 'optical',
  0x08: 'medium changer',
  0x0c: 'storage array controller',
  0x0d: 'enclosure services',
  0x1f: 'unknown',
};

export const deviceTypeName = (t: number): string => DEVICE_TYPES[t] ?? `type 0x${t.toString(16).padStart(2, '0')}`;

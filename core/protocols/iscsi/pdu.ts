// iSCSI PDUs (RFC 7143 section 11): the 48-byte Basic Header Segment, additional header
// segments, the optional header digest (CRC32C) and the data segment padded to 4 bytes; text
// keys (section 6.1, "key=value" NUL-terminated); and a framer that cuts a TCP byte stream
// into PDUs.

import { BlockError } from '../../errors.ts';
import { crc32c, crc32cDigest } from './crc32c.ts';

/** Opcodes (RFC 7143 11.2.1.2). */
export const OP = {
  NOP_OUT: 0x00,
  SCSI_CMD: 0x01,
  LOGIN_REQ: 0x03,
  TEXT_REQ: 0x04,
  DATA_OUT: 0x05,
  LOGOUT_REQ: 0x06,
  NOP_IN: 0x20,
  SCSI_RSP: 0x21,
  TMF_RSP: 0x22,
  LOGIN_RSP: 0x23,
  TEXT_RSP: 0x24,
  DATA_IN: 0x25,
  LOGOUT_RSP: 0x26,
  R2T: 0x31,
  ASYNC: 0x32,
  REJECT: 0x3f,
} as const;

export const BHS_SIZE = 48;
/** The reserved Initiator/Target Task Tag (RFC 7143 11.18, 11.19). */
export const RESERVED_TAG = 0xffffffff;
/** The largest data segment Platter accepts from a target, whatever it declares (2^24 - 1 is
 *  the field's width; this is the MaxRecvDataSegmentLength Platter offers, and a bit of slack). */
export const MAX_ACCEPTED_SEGMENT = (1 << 24) - 1;

/** One received PDU. */
export interface Pdu {
  bhs: Buffer;
  data: Buffer;
}

export const opcodeOf = (bhs: Buffer): number => bhs[0]! & 0x3f;
export const dataSegmentLength = (bhs: Buffer): number => bhs.readUIntBE(5, 3);
export const ittOf = (bhs: Buffer): number => bhs.readUInt32BE(16);

/** A new BHS with the opcode (and immediate bit) set. */
export function newBhs(opcode: number, immediate = false): Buffer {
  const b = Buffer.alloc(BHS_SIZE);
  b[0] = (immediate ? 0x40 : 0) | opcode;
  return b;
}

/** The wire bytes of one PDU: header (+ CRC32C when header digests are on), data, padding. */
export function encodePdu(bhs: Buffer, data: Buffer | undefined, headerDigest: boolean): Buffer[] {
  const len = data?.length ?? 0;
  if (len > MAX_ACCEPTED_SEGMENT) throw new BlockError('InvalidArgument', `iSCSI: data segment of ${len} bytes is too large`);
  bhs.writeUIntBE(len, 5, 3);
  bhs[4] = 0; // no AHS
  const out: Buffer[] = [bhs];
  if (headerDigest) out.push(crc32cDigest(bhs));
  if (data && len > 0) {
    out.push(data);
    const pad = (4 - (len % 4)) % 4;
    if (pad) out.push(Buffer.alloc(pad));
  }
  return out;
}

/** Text keys as "key=value\0" pairs (RFC 7143 6.1). */
export function encodeKeys(pairs: readonly (readonly [string, string])[]): Buffer {
  return Buffer.from(pairs.map(([k, v]) => `${k}=${v}\0`).join(''), 'utf8');
}

/** Parse text keys; repeated keys (TargetName in SendTargets) keep their order. */
export function parseKeys(data: Buffer): [string, string][] {
  const out: [string, string][] = [];
  for (const item of data.toString('utf8').split('\0')) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0) throw new BlockError('InvalidImage', 'iSCSI: the target sent a malformed text key');
    out.push([item.slice(0, eq), item.slice(eq + 1)]);
  }
  return out;
}

/**
 * Cuts a byte stream into PDUs. `headerDigest` is switched on once the login phase ends (RFC 7143
 * 13.1: digests apply to PDUs after the final login response).
 */
export class PduFramer {
  headerDigest = false;
  #chunks: Buffer[] = [];
  #have = 0;
  #bhs: Buffer | undefined;
  #need = 0;
  /** The largest data segment accepted (the MaxRecvDataSegmentLength offered, plus slack for
   *  targets that miscount): anything above is a protocol error, not an allocation. */
  maxSegment = MAX_ACCEPTED_SEGMENT;
  /**
   * Where a PDU's data segment may be received in place (a Data-In PDU's part of the reader's
   * buffer): given the BHS, a buffer of exactly the segment's length, or undefined to collect the
   * segment as usual. Saves a copy and a buffer per segment at read speeds.
   */
  sink: ((bhs: Buffer) => Buffer | undefined) | undefined;
  /** The chunks pushed are views of a buffer the caller reuses once push() returns: PDUs handed
   *  on get copies, and what stays buffered is copied before push() returns. */
  borrowed = false;
  /** The segment being received in place: its buffer, bytes so far, padding still to skip. */
  #dest: Buffer | undefined;
  /** The part of #dest given to the socket for its next reads (readTarget). */
  #lent: Buffer | undefined;
  #destOff = 0;
  #pad = 0;
  #digestPending = false;

  constructor(private readonly onPdu: (p: Pdu) => void) {}

  #take(n: number): Buffer {
    let out: Buffer;
    const first = this.#chunks[0]!;
    if (first.length >= n) {
      out = this.borrowed ? Buffer.from(first.subarray(0, n)) : first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const c = this.#chunks[0]!;
        const k = Math.min(c.length, n - off);
        c.copy(out, off, 0, k);
        off += k;
        if (k === c.length) this.#chunks.shift();
        else this.#chunks[0] = c.subarray(k);
      }
    }
    this.#have -= n;
    return out;
  }

  /** Feed received bytes; throws on a malformed stream (the connection must then be dropped). */
  push(chunk: Buffer): void {
    if (!this.borrowed) return this.#push(chunk);
    try {
      this.#push(chunk);
    } finally {
      // Keep what is still to be parsed: the caller's buffer is about to be reused.
      this.#chunks = this.#chunks.map((c) => Buffer.from(c));
    }
  }

  /**
   * Where the socket may read next: the rest of the segment being received in place, once nothing
   * else is buffered, so the kernel copies the data straight into the reader's buffer (read into
   * a receive buffer first, 512 MiB cost another 67 ms of copying on the main thread); undefined
   * otherwise. Exactly the segment's remaining bytes, so a read never takes bytes past it.
   */
  readTarget(): Buffer | undefined {
    this.#lent = undefined;
    if (!this.#dest || this.#digestPending || this.#have > 0) return undefined;
    if (this.#destOff === this.#dest.length) return undefined;
    return (this.#lent = this.#dest.subarray(this.#destOff));
  }

  /** How many bytes the next read into the receive buffer should take at most: what completes
   *  the header or PDU under way, so that a read never takes the start of the next PDU's segment
   *  (which would then be copied instead of read in place); undefined: as much as there is. */
  nextReadSize(): number | undefined {
    if (!this.sink) return undefined;
    let want: number;
    if (this.#dest) want = (this.#digestPending ? 4 : 0) + this.#dest.length - this.#destOff + this.#pad;
    else if (this.#bhs) want = this.#need;
    else want = BHS_SIZE + (this.headerDigest ? 4 : 0);
    const n = want - this.#have;
    return n > 0 ? n : undefined;
  }

  /** `n` bytes the socket read into the buffer readTarget() gave; throws as push() does. */
  receivedInPlace(n: number): void {
    if (!this.#lent || n > this.#lent.length) throw new BlockError('Io', 'iSCSI: received bytes outside the data segment under way');
    this.#lent = undefined;
    this.#destOff += n;
    this.#drain();
  }

  #push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#have += chunk.length;
    this.#drain();
  }

  #drain(): void {
    for (;;) {
      if (this.#dest) {
        if (!this.#inPlace()) return;
        continue;
      }
      if (!this.#bhs) {
        if (this.#have < BHS_SIZE) return;
        const bhs = Buffer.from(this.#take(BHS_SIZE));
        const ahs = bhs[4]! * 4;
        const dsl = dataSegmentLength(bhs);
        if (dsl > this.maxSegment) throw new BlockError('Io', `iSCSI: the target sent a ${dsl}-byte data segment, more than negotiated`);
        const dest = ahs === 0 && dsl > 0 ? this.sink?.(bhs) : undefined;
        if (dest && dest.length === dsl) {
          this.#bhs = bhs;
          this.#dest = dest;
          this.#destOff = 0;
          this.#pad = (4 - (dsl % 4)) % 4;
          this.#digestPending = this.headerDigest;
          continue;
        }
        this.#bhs = bhs;
        this.#need = ahs + (this.headerDigest ? 4 : 0) + dsl + ((4 - (dsl % 4)) % 4);
      }
      if (this.#have < this.#need) return;
      const bhs = this.#bhs;
      const rest = this.#need > 0 ? this.#take(this.#need) : Buffer.alloc(0);
      this.#bhs = undefined;
      const ahs = bhs[4]! * 4;
      let off = ahs;
      if (this.headerDigest) {
        const got = rest.readUInt32LE(off);
        const want = crc32c(ahs ? Buffer.concat([bhs, rest.subarray(0, ahs)]) : bhs);
        if (got !== want) throw new BlockError('Io', 'iSCSI: header digest mismatch');
        off += 4;
      }
      const dsl = dataSegmentLength(bhs);
      this.onPdu({ bhs, data: rest.subarray(off, off + dsl) });
    }
  }

  /** A reader gave up on `buf` (its command ended early): the rest of a segment under way goes
   *  to a scratch buffer instead, never into memory its owner has taken back. True when part of
   *  `buf` is the socket's read buffer (readTarget): the caller must then destroy the socket
   *  before the next read, which would still land in `buf`. */
  release(buf: Buffer): boolean {
    if (!this.#dest || this.#dest.buffer !== buf.buffer) return false;
    const lent = this.#lent !== undefined;
    const scratch = Buffer.allocUnsafe(this.#dest.length);
    this.#dest.copy(scratch, 0, 0, this.#destOff);
    this.#dest = scratch;
    this.#lent = undefined;
    return lent;
  }

  /** Move what has arrived of the in-place segment (header digest first, then data, then
   *  padding); true once the PDU is complete and handed on. */
  #inPlace(): boolean {
    const bhs = this.#bhs!;
    if (this.#digestPending) {
      if (this.#have < 4) return false;
      const got = this.#take(4).readUInt32LE(0);
      if (got !== crc32c(bhs)) throw new BlockError('Io', 'iSCSI: header digest mismatch');
      this.#digestPending = false;
    }
    const dest = this.#dest!;
    while (this.#destOff < dest.length && this.#chunks.length > 0) {
      const c = this.#chunks[0]!;
      const k = Math.min(c.length, dest.length - this.#destOff);
      c.copy(dest, this.#destOff, 0, k);
      this.#destOff += k;
      this.#have -= k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    if (this.#destOff < dest.length || this.#have < this.#pad) return false;
    if (this.#pad > 0) this.#take(this.#pad);
    this.#dest = undefined;
    this.#bhs = undefined;
    this.onPdu({ bhs, data: dest });
    return true;
  }
}

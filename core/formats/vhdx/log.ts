// The VHDX metadata log (MS-VHDX 2.3): a circular buffer of entries, each a 4 KiB-multiple with
// a header ("loge", CRC-32C over the whole entry, sequence number, descriptor count, log GUID,
// flushed/last file offsets), descriptors ("desc" data, "zero" runs) and data sectors ("data",
// 4084 payload bytes between sequence halves). Replay finds the valid sequence with the highest
// sequence number whose tail is inside it, and applies it (MS-VHDX 2.3.3). Platter writes its
// own metadata updates as one-entry sequences (write entry, flush, apply, flush), as QEMU does.

import { BlockError, invalidImage } from '../../errors.ts';
import { crc32cWithZeroField } from '../../util/crc32c.ts';
import type { BlockNode } from '../../block/node.ts';

export const LOG_SECTOR = 4096;
export const ENTRY_SIGNATURE = 'loge';
export const DATA_DESC_SIGNATURE = 'desc';
export const ZERO_DESC_SIGNATURE = 'zero';
export const DATA_SECTOR_SIGNATURE = 'data';
const ENTRY_HEADER_BYTES = 64;
const DESC_BYTES = 32;
const CHECKSUM_OFFSET = 4;
/** Bytes of a data sector carried by the descriptor: the first 8 and the last 4. */
const LEADING_BYTES = 8;
const TRAILING_BYTES = 4;
const MIB = 1 << 20;
/** The most a replay may grow the file past its size (QEMU's allocations log one block of at most
 *  256 MiB at a time; a larger jump means a corrupt entry). */
const MAX_LOG_GROWTH = 1024 * MIB;
/** The log may not rewrite the file identifier or the two headers: they locate the log itself and
 *  are always updated in place (MS-VHDX 2.2.2). */
const HEADERS_END = 192 * 1024;

export interface LogDescriptor {
  kind: 'data' | 'zero';
  fileOffset: number;
  /** zero: bytes to zero; data: always 4096. */
  length: number;
  /** data: the full 4 KiB sector to write. */
  data?: Buffer;
}

export interface LogEntry {
  /** Byte offset of the entry inside the log. */
  at: number;
  length: number;
  tail: number;
  sequence: bigint;
  flushedFileOffset: bigint;
  lastFileOffset: bigint;
  descriptors: LogDescriptor[];
}

/** Decode and validate the entry at `at` inside `log`; undefined when it is not a valid entry. */
export function decodeEntry(log: Buffer, at: number, logGuid: Buffer): LogEntry | undefined {
  if (at + LOG_SECTOR > log.length) return undefined;
  const h = log.subarray(at);
  if (h.toString('latin1', 0, 4) !== ENTRY_SIGNATURE) return undefined;
  const length = h.readUInt32LE(8);
  const tail = h.readUInt32LE(12);
  const sequence = h.readBigUInt64LE(16);
  const count = h.readUInt32LE(24);
  if (length === 0 || length % LOG_SECTOR !== 0 || at + length > log.length || tail % LOG_SECTOR !== 0 || tail >= log.length || sequence === 0n) return undefined;
  if (!h.subarray(32, 48).equals(logGuid)) return undefined;
  const descSectors = Math.ceil((ENTRY_HEADER_BYTES + count * DESC_BYTES) / LOG_SECTOR);
  if (descSectors * LOG_SECTOR > length) return undefined;
  const entry = h.subarray(0, length);
  if (crc32cWithZeroField(entry, CHECKSUM_OFFSET) !== h.readUInt32LE(CHECKSUM_OFFSET)) return undefined;
  const descriptors: LogDescriptor[] = [];
  let dataSector = descSectors;
  for (let i = 0; i < count; i++) {
    const d = entry.subarray(ENTRY_HEADER_BYTES + i * DESC_BYTES);
    const sig = d.toString('latin1', 0, 4);
    const fileOffset = d.readBigUInt64LE(16);
    if (d.readBigUInt64LE(24) !== sequence || fileOffset % BigInt(LOG_SECTOR) !== 0n || fileOffset > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
    if (sig === ZERO_DESC_SIGNATURE) {
      const len = d.readBigUInt64LE(8);
      if (len % BigInt(LOG_SECTOR) !== 0n || len > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
      descriptors.push({ kind: 'zero', fileOffset: Number(fileOffset), length: Number(len) });
    } else if (sig === DATA_DESC_SIGNATURE) {
      if ((dataSector + 1) * LOG_SECTOR > length) return undefined;
      const s = entry.subarray(dataSector * LOG_SECTOR, (dataSector + 1) * LOG_SECTOR);
      const seq = (BigInt(s.readUInt32LE(4)) << 32n) | BigInt(s.readUInt32LE(LOG_SECTOR - 4));
      if (s.toString('latin1', 0, 4) !== DATA_SECTOR_SIGNATURE || seq !== sequence) return undefined;
      const data = Buffer.alloc(LOG_SECTOR);
      d.copy(data, 0, 8, 8 + LEADING_BYTES);
      s.copy(data, LEADING_BYTES, LEADING_BYTES, LOG_SECTOR - TRAILING_BYTES);
      d.copy(data, LOG_SECTOR - TRAILING_BYTES, 4, 4 + TRAILING_BYTES);
      descriptors.push({ kind: 'data', fileOffset: Number(fileOffset), length: LOG_SECTOR, data });
      dataSector++;
    } else {
      return undefined;
    }
  }
  return { at, length, tail, sequence, flushedFileOffset: h.readBigUInt64LE(48), lastFileOffset: h.readBigUInt64LE(56), descriptors };
}

/**
 * The active sequence (MS-VHDX 2.3.3): over every start position, the longest run of valid
 * entries with consecutive sequence numbers (wrapping round the buffer); the run whose last
 * entry has the highest sequence number and whose tail points at one of its entries wins.
 * Returns the entries to replay, from the tail on, or [] when there is none.
 */
export function findActiveSequence(log: Buffer, logGuid: Buffer): LogEntry[] {
  let best: LogEntry[] = [];
  const cache = new Map<number, LogEntry | undefined>();
  const at = (o: number) => {
    if (!cache.has(o)) cache.set(o, decodeEntry(log, o, logGuid));
    return cache.get(o);
  };
  // An entry already inside a run found earlier only starts a suffix of it, which cannot beat it:
  // skipping those keeps the scan linear in the log size.
  const covered = new Set<number>();
  for (let start = 0; start < log.length; start += LOG_SECTOR) {
    if (covered.has(start)) continue;
    const first = at(start);
    if (!first) continue;
    const run = [first];
    let pos = (start + first.length) % log.length;
    while (pos !== start && run.length < log.length / LOG_SECTOR) {
      const e = at(pos);
      if (!e || e.sequence !== run[run.length - 1]!.sequence + 1n) break;
      run.push(e);
      covered.add(pos);
      pos = (pos + e.length) % log.length;
    }
    const last = run[run.length - 1]!;
    const tailIdx = run.findIndex((e) => e.at === last.tail);
    if (tailIdx < 0) continue;
    if (best.length === 0 || last.sequence > best[best.length - 1]!.sequence) best = run.slice(tailIdx);
  }
  return best;
}

/** Apply a sequence to the file: data sectors, zero runs, then the size the log records. */
export async function replay(file: BlockNode, entries: LogEntry[]): Promise<void> {
  const fileSize = file.size;
  const last = entries[entries.length - 1]!;
  if (last.flushedFileOffset > BigInt(fileSize)) {
    throw invalidImage(`VHDX log says the file was at least ${last.flushedFileOffset} bytes long, but it is ${fileSize}: the image has been truncated`);
  }
  // Validate every target before writing anything: nothing past the end of the file beyond the
  // size the log itself records, and that size not far past the file (no runaway growth).
  const recorded = last.lastFileOffset > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(last.lastFileOffset);
  if (recorded > fileSize + MAX_LOG_GROWTH) {
    throw invalidImage(`VHDX log says the file is ${recorded} bytes long, far past its ${fileSize} bytes (at most ${MAX_LOG_GROWTH} bytes of growth are accepted)`);
  }
  const limit = Math.max(fileSize, recorded);
  for (const e of entries) {
    for (const d of e.descriptors) {
      if (d.fileOffset + d.length > limit) {
        throw invalidImage(`VHDX log entry (sequence ${e.sequence}) writes [${d.fileOffset}, +${d.length}) past the end of the file (${limit} bytes)`);
      }
      if (d.fileOffset < HEADERS_END) {
        throw invalidImage(`VHDX log entry (sequence ${e.sequence}) writes into the file identifier or headers at ${d.fileOffset}`);
      }
    }
  }
  for (const e of entries) {
    for (const d of e.descriptors) {
      if (d.kind === 'data') await file.write(d.fileOffset, d.data!);
      else await file.writeZeroes(d.fileOffset, d.length);
    }
  }
  let newSize = Math.max(file.size, Number(last.lastFileOffset > BigInt(Number.MAX_SAFE_INTEGER) ? 0n : last.lastFileOffset));
  if (newSize % MIB) newSize += MIB - (newSize % MIB);
  if (newSize > file.size) await file.truncate(newSize, {});
  await file.flush();
}

/**
 * One log entry (tail = its own offset) holding whole 4 KiB sectors to write. `sectors` maps a
 * 4 KiB-aligned file offset to its new contents.
 */
export function encodeEntry(at: number, sequence: bigint, logGuid: Buffer, fileSize: number, sectors: { fileOffset: number; data: Buffer }[]): Buffer {
  const descSectors = Math.ceil((ENTRY_HEADER_BYTES + sectors.length * DESC_BYTES) / LOG_SECTOR);
  const length = (descSectors + sectors.length) * LOG_SECTOR;
  const buf = Buffer.alloc(length);
  buf.write(ENTRY_SIGNATURE, 0, 'latin1');
  buf.writeUInt32LE(length, 8);
  buf.writeUInt32LE(at, 12);
  buf.writeBigUInt64LE(sequence, 16);
  buf.writeUInt32LE(sectors.length, 24);
  logGuid.copy(buf, 32);
  buf.writeBigUInt64LE(BigInt(fileSize), 48);
  buf.writeBigUInt64LE(BigInt(fileSize), 56);
  sectors.forEach((s, i) => {
    if (s.data.length !== LOG_SECTOR || s.fileOffset % LOG_SECTOR) throw new BlockError('Io', 'VHDX log sectors must be whole aligned 4 KiB sectors');
    const d = buf.subarray(ENTRY_HEADER_BYTES + i * DESC_BYTES);
    d.write(DATA_DESC_SIGNATURE, 0, 'latin1');
    s.data.copy(d, 4, LOG_SECTOR - TRAILING_BYTES, LOG_SECTOR);
    s.data.copy(d, 8, 0, LEADING_BYTES);
    d.writeBigUInt64LE(BigInt(s.fileOffset), 16);
    d.writeBigUInt64LE(sequence, 24);
    const sec = buf.subarray((descSectors + i) * LOG_SECTOR, (descSectors + i + 1) * LOG_SECTOR);
    sec.write(DATA_SECTOR_SIGNATURE, 0, 'latin1');
    sec.writeUInt32LE(Number(sequence >> 32n) >>> 0, 4);
    s.data.copy(sec, LEADING_BYTES, LEADING_BYTES, LOG_SECTOR - TRAILING_BYTES);
    sec.writeUInt32LE(Number(sequence & 0xffffffffn) >>> 0, LOG_SECTOR - 4);
  });
  buf.writeUInt32LE(crc32cWithZeroField(buf, CHECKSUM_OFFSET), CHECKSUM_OFFSET);
  return buf;
}

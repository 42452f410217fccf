// The vhdx format (Hyper-V VHDX, MS-VHDX v1.0), as QEMU's block/vhdx*.c reads and writes it:
// dynamic and fixed images, no differencing (QEMU 7.2 refuses those with "Operation not
// supported"). Opening replays a dirty log when read-write and refuses it read-only with QEMU's
// message; Platter's own BAT updates go through the log (log entry, flush, apply, flush).
// Create options: log_size, block_size (0 = auto), subformat (dynamic | fixed), block_state_zero.

import type { BlockStatus, CheckResult, DriverInfo, FormatDriver, NodeImpl, ZeroFlags } from '../../block/types.ts';
import type { BlockNode } from '../../block/node.ts';
import { BlockError, invalidImage, unsupported } from '../../errors.ts';
import { Mutex } from '../../util/range-lock.ts';
import { GUID_SIZE, isNullGuid, newGuid } from './guid.ts';
import { chooseHeader, encodeHeader, hasFileSignature, HEADER_OFFSETS, HEADER_SECTION_END, HEADER_SIZE, type VhdxHeader } from './header.ts';
import { decodeRegionTable, REGION_TABLE_OFFSETS, REGION_TABLE_SIZE, RegionMap } from './region.ts';
import { decodeMetadata, type VhdxMetadata } from './metadata.ts';
import {
  BAT_ENTRY_BYTES, batGeometry, batIndex, checkBat, decodeBat, entryOffset, entryState, makeEntry, PAYLOAD_FULLY_PRESENT,
  PAYLOAD_NOT_PRESENT, PAYLOAD_PARTIALLY_PRESENT, PAYLOAD_UNDEFINED, PAYLOAD_UNMAPPED, PAYLOAD_UNMAPPED_V095, PAYLOAD_ZERO,
  type BatGeometry,
} from './bat.ts';
import { encodeEntry, findActiveSequence, LOG_SECTOR, replay } from './log.ts';
import { createVhdx, vhdxCreateOptions } from './create.ts';

const MIB = 1 << 20;
/** Largest log Platter reads to replay (QEMU-created logs are 1 MiB; Hyper-V's are 1 MiB too). */
const MAX_LOG_READ = 64 * MIB;
/** Largest metadata region Platter reads (the spec's and QEMU's region is 1 MiB). */
const MAX_METADATA_READ = 8 * MIB;
/** Blocks one block-status answer may merge (keeps a call on a huge empty disk short). */
const MAX_STATUS_BLOCKS = 65536;
/** Request alignment: QEMU serves vhdx in 512-byte sectors. */
const SECTOR = 512;

/** Payload states that read as zeros (QEMU: "return zero"). */
const READS_ZERO = new Set([PAYLOAD_NOT_PRESENT, PAYLOAD_UNDEFINED, PAYLOAD_ZERO, PAYLOAD_UNMAPPED, PAYLOAD_UNMAPPED_V095]);

interface OpenState {
  header: VhdxHeader;
  slot: number;
  meta: VhdxMetadata;
  geo: BatGeometry;
  batOffset: number;
  batRaw: Buffer;
  entries: BigUint64Array;
  regions: RegionMap;
  logReplayed: boolean;
}

class VhdxNode implements NodeImpl {
  readonly size: number;
  readonly alignment = SECTOR;
  readonly #file: BlockNode;
  readonly #s: OpenState;
  readonly #meta = new Mutex();
  readonly #sessionGuid = newGuid();
  #firstWrite = true;
  #logSequence = 1n;

  constructor(file: BlockNode, s: OpenState) {
    this.#file = file;
    this.#s = s;
    this.size = s.meta.virtualSize;
  }

  get clusterSize(): number {
    return this.#s.meta.blockSize;
  }

  /** BAT entry, host offset and bytes left in the block for a guest offset. */
  #map(offset: number): { block: number; index: number; state: number; host: number; avail: number } {
    const bs = this.#s.meta.blockSize;
    const block = Math.floor(offset / bs);
    const inBlock = offset - block * bs;
    const index = batIndex(this.#s.geo, block);
    const e = this.#s.entries[index]!;
    const state = entryState(e);
    return { block, index, state, host: Number(entryOffset(e)) + inBlock, avail: bs - inBlock };
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    const jobs: Promise<void>[] = [];
    for (let done = 0; done < length; ) {
      const m = this.#map(offset + done);
      const n = Math.min(m.avail, length - done);
      if (m.state === PAYLOAD_FULLY_PRESENT) {
        const at = done;
        jobs.push(this.#file.read(m.host, n).then((b) => void b.copy(out, at)));
      } else if (!READS_ZERO.has(m.state)) {
        throw new BlockError('Io', m.state === PAYLOAD_PARTIALLY_PRESENT ? 'VHDX partially present blocks (differencing images) are not supported' : `VHDX BAT entry ${m.index} has invalid state ${m.state}`);
      }
      done += n;
    }
    await Promise.all(jobs);
    return out;
  }

  async write(offset: number, data: Buffer): Promise<void> {
    await this.#userVisibleWrite();
    for (let done = 0; done < data.length; ) {
      let m = this.#map(offset + done);
      const n = Math.min(m.avail, data.length - done);
      if (m.state !== PAYLOAD_FULLY_PRESENT) {
        await this.#meta.run(async () => {
          const now = this.#map(offset + done);
          if (now.state !== PAYLOAD_FULLY_PRESENT) await this.#allocate(now.index, now.state);
        });
        m = this.#map(offset + done);
      }
      await this.#file.write(m.host, data.subarray(done, done + n));
      done += n;
    }
  }

  /** Blocks not present already read as zeros; present ones get zeros written. */
  /** QEMU's vhdx_has_zero_init: a fixed image (first block present) reads its file's bytes; a
   *  dynamic one maps nothing. */
  hasZeroInit(): boolean {
    const first = this.#s.entries[0];
    return first !== undefined && entryState(first) === PAYLOAD_FULLY_PRESENT ? this.#file.hasZeroInit : true;
  }

  async writeZeroes(offset: number, length: number, _flags: ZeroFlags): Promise<void> {
    for (let done = 0; done < length; ) {
      const m = this.#map(offset + done);
      const n = Math.min(m.avail, length - done);
      if (m.state === PAYLOAD_FULLY_PRESENT) {
        await this.#userVisibleWrite();
        await this.#file.writeZeroes(m.host, n);
      } else if (!READS_ZERO.has(m.state)) {
        throw new BlockError('Io', `VHDX BAT entry ${m.index} has state ${m.state}, which Platter cannot write`);
      }
      done += n;
    }
  }

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    const first = this.#map(offset);
    let n = Math.min(first.avail, length);
    if (first.state === PAYLOAD_FULLY_PRESENT) return { offset, length: n, data: true, zero: false, allocated: true, hostOffset: first.host };
    if (!READS_ZERO.has(first.state)) return { offset, length: n, data: true, zero: false, allocated: true };
    for (let blocks = 1; n < length && blocks < MAX_STATUS_BLOCKS; blocks++) {
      const m = this.#map(offset + n);
      if (!READS_ZERO.has(m.state)) break;
      n += Math.min(m.avail, length - n);
    }
    return { offset, length: n, data: false, zero: true, allocated: true };
  }

  /** The spec's rule: the first guest-visible write changes the data write GUID. */
  async #userVisibleWrite(): Promise<void> {
    if (!this.#firstWrite) return;
    await this.#meta.run(async () => {
      if (!this.#firstWrite) return;
      const dataWriteGuid = newGuid();
      await this.#updateHeader({ dataWriteGuid });
      await this.#updateHeader({ dataWriteGuid });
      this.#firstWrite = false;
    });
  }

  /** Write the next header into the other slot (sequence + 1) and make it current. */
  async #updateHeader(change: Partial<VhdxHeader>): Promise<void> {
    const s = this.#s;
    const next: VhdxHeader = { ...s.header, ...change, sequence: s.header.sequence + 1n, fileWriteGuid: this.#sessionGuid };
    const slot = 1 - s.slot;
    await this.#file.write(HEADER_OFFSETS[slot]!, encodeHeader(next));
    await this.#file.flush();
    s.header = next;
    s.slot = slot;
  }

  /** A new block at the next 1 MiB boundary past the end of the file, then its BAT entry. */
  async #allocate(index: number, state: number): Promise<void> {
    if (!READS_ZERO.has(state)) throw new BlockError('Io', `VHDX BAT entry ${index} has state ${state}, which Platter cannot write`);
    const bs = this.#s.meta.blockSize;
    const start = Math.ceil(this.#file.size / MIB) * MIB;
    await this.#file.truncate(start + bs, { shrink: true });
    await this.#setBatEntry(index, makeEntry(PAYLOAD_FULLY_PRESENT, start));
  }

  /** Update one BAT entry through the log: entry, flush, apply, flush, log cleared. */
  async #setBatEntry(index: number, value: bigint): Promise<void> {
    const s = this.#s;
    const byteInBat = index * BAT_ENTRY_BYTES;
    const sectorStart = byteInBat - (byteInBat % LOG_SECTOR);
    const sector = Buffer.alloc(LOG_SECTOR);
    s.batRaw.copy(sector, 0, sectorStart, Math.min(s.batRaw.length, sectorStart + LOG_SECTOR));
    sector.writeBigUInt64LE(value, byteInBat - sectorStart);
    const logGuid = newGuid();
    const entry = encodeEntry(0, this.#logSequence++, logGuid, this.#file.size, [{ fileOffset: s.batOffset + sectorStart, data: sector }]);
    if (entry.length > s.header.logLength) throw unsupported(`VHDX log (${s.header.logLength} bytes) is too small for a ${entry.length}-byte entry`);
    await this.#updateHeader({ logGuid });
    await this.#file.write(s.header.logOffset, entry);
    await this.#file.flush();
    await this.#file.write(s.batOffset + sectorStart, sector);
    await this.#file.flush();
    sector.copy(s.batRaw, sectorStart, 0, Math.min(LOG_SECTOR, s.batRaw.length - sectorStart));
    s.entries[index] = value;
    // Both slots say "no log" again, as QEMU leaves them (vhdx_log_reset).
    await this.#updateHeader({ logGuid: Buffer.alloc(GUID_SIZE) });
    await this.#updateHeader({ logGuid: Buffer.alloc(GUID_SIZE) });
  }

  async info(): Promise<DriverInfo> {
    return { clusterSize: this.#s.meta.blockSize };
  }

  async check(): Promise<CheckResult> {
    const s = this.#s;
    const messages = checkBat(s.entries, s.geo, s.meta.virtualSize, this.#file.size, (o, l) => s.regions.overlap(o, l));
    return { corruptions: messages.length, leaks: 0, checkErrors: 0, corruptionsFixed: s.logReplayed ? 1 : 0, leaksFixed: 0, messages };
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {}
}

async function openVhdx(file: BlockNode, filename: string, readOnly: boolean): Promise<NodeImpl> {
  const fileSize = file.size;
  if (fileSize < HEADER_SECTION_END || !hasFileSignature(await file.read(0, 8))) {
    throw invalidImage(fileSize < HEADER_SECTION_END ? `VHDX file is ${fileSize} bytes, smaller than its 1 MiB header section` : "VHDX file identifier is not 'vhdxfile'");
  }
  const slots = await Promise.all(HEADER_OFFSETS.map((o) => file.read(o, HEADER_SIZE)));
  let { slot, header } = chooseHeader(slots);
  const regions = new RegionMap();
  regions.add(0, HEADER_SECTION_END, 'header section');
  if (header.logLength > 0) {
    if (header.logOffset + header.logLength > fileSize) {
      throw invalidImage(`VHDX log (offset ${header.logOffset}, length ${header.logLength}) extends past the end of the file (${fileSize} bytes)`);
    }
    regions.add(header.logOffset, header.logLength, 'log');
  }

  let logReplayed = false;
  if (!isNullGuid(header.logGuid) && header.logLength > 0) {
    if (header.logLength > MAX_LOG_READ) throw unsupported(`VHDX log of ${header.logLength} bytes is larger than Platter replays (${MAX_LOG_READ})`);
    const entries = findActiveSequence(await file.read(header.logOffset, header.logLength), header.logGuid);
    if (entries.length > 0) {
      if (readOnly) {
        throw new BlockError('Permission', `VHDX image file '${filename}' opened read-only, but contains a log that needs to be replayed`, { path: filename }, { hint: `To replay the log, run:\nqemu-img check -r all '${filename}'\n` });
      }
      await replay(file, entries);
      const next: VhdxHeader = { ...header, sequence: header.sequence + 1n, logGuid: Buffer.alloc(GUID_SIZE), fileWriteGuid: newGuid() };
      for (let i = 0; i < 2; i++) {
        slot = 1 - slot;
        await file.write(HEADER_OFFSETS[slot]!, encodeHeader({ ...next, sequence: header.sequence + BigInt(i + 1) }));
        await file.flush();
      }
      header = { ...next, sequence: header.sequence + 2n };
      logReplayed = true;
    }
  }

  const { bat, metadata } = decodeRegionTable(await file.read(REGION_TABLE_OFFSETS[0], REGION_TABLE_SIZE), regions);
  for (const [r, name] of [[bat, 'BAT'], [metadata, 'metadata']] as const) {
    if (r.offset + r.length > file.size) throw invalidImage(`VHDX ${name} region (offset ${r.offset}, length ${r.length}) extends past the end of the file (${file.size} bytes)`);
  }
  const meta = decodeMetadata(await file.read(metadata.offset, Math.min(metadata.length, MAX_METADATA_READ)));
  const geo = batGeometry(meta.virtualSize, meta.blockSize, meta.logicalSectorSize);
  const batBytes = geo.totalEntries * BAT_ENTRY_BYTES;
  if (batBytes > bat.length) throw invalidImage(`VHDX BAT region (${bat.length} bytes) is too small for ${geo.totalEntries} entries`);
  const batRaw = await file.read(bat.offset, Math.min(bat.length, Math.ceil(batBytes / LOG_SECTOR) * LOG_SECTOR));
  const entries = decodeBat(batRaw, geo.totalEntries);
  const errors = checkBat(entries, geo, meta.virtualSize, file.size, (o, l) => regions.overlap(o, l));
  if (errors.length > 0) throw invalidImage(errors[0]!);
  return new VhdxNode(file, { header, slot, meta, geo, batOffset: bat.offset, batRaw, entries, regions, logReplayed });
}

export const vhdxDriver: FormatDriver = {
  kind: 'format',
  name: 'vhdx',
  description: 'VHDX (Hyper-V): dynamic or fixed',
  probe: (head) => (hasFileSignature(head) ? 100 : 0),
  createOptions: vhdxCreateOptions,
  create: (file, ctx) => createVhdx(file, ctx),
  open: (file, ctx) => openVhdx(file, ctx.filename, ctx.readOnly),
  qemuHidesAllocation: true,
};

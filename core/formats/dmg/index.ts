// The dmg format (Apple UDIF disk images), read-only as in QEMU's block/dmg.c: the "koly"
// trailer (koly.ts) names the chunk tables (tables.ts, mish.ts), which map runs of 512-byte
// sectors to zero-fill, raw or compressed chunks in the data fork. QEMU 7.2 as Debian ships it
// reads zlib and raw chunks (its bzip2 and lzfse modules are not built; ADC it never had);
// Platter reads every type: zlib, bzip2, ADC and LZFSE chunks decode on the worker pool, several
// at a time, and a small cache keeps the decoded ones that requests share. QEMU has no block
// status for dmg (qemuHidesAllocation), no create, no check.
import type { BlockStatus, FormatDriver, NodeImpl, OpenContext } from '../../block/types.ts';
import type { BlockNode } from '../../block/node.ts';
import { BlockError, invalidImage } from '../../errors.ts';
import type { WorkerPool } from '../../workers/pool.ts';
import { sizeToNumber } from '../../util/checked.ts';
import { readKoly } from './koly.ts';
import { readRsrcChunks, readXmlChunks } from './tables.ts';
import { buildChunkTable, findChunk, isZeroType, SECTOR, type ChunkTable } from './chunk-table.ts';
import { CHUNK_RAW, CHUNK_ZLIB, chunkTypeName, COMPRESSED_TYPES } from '../../codecs/dmg-chunk.ts';
import { inflateInto } from '../../codecs/zlib-threadpool.ts';
import { settleAll } from '../../util/settle-all.ts';
import { ScratchBuffers } from '../../util/scratch-buffers.ts';

/** Decoded chunks kept for requests that share them (a chunk is at most 64 MiB). */
const CACHE_BYTES = 32 << 20;
const CACHE_MIN_ENTRIES = 2;
/** Zero chunks one block-status answer may merge (keeps a call on a huge image short). */
const MAX_STATUS_CHUNKS = 65536;

class DmgNode implements NodeImpl {
  readonly size: number;
  readonly alignment = SECTOR;
  readonly #file: BlockNode;
  readonly #t: ChunkTable;
  readonly #workers: WorkerPool;
  readonly #name: string;
  /** Chunk index -> its decoded bytes (in flight or done), oldest first. */
  readonly #cache = new Map<number, { bytes: number; data: Promise<Uint8Array> }>();
  #cached = 0;
  /** Compressed bytes of zlib chunks up to 2 MiB (hdiutil's are 1 MiB before compression). */
  readonly #scratch = new ScratchBuffers(2 << 20, 8);

  constructor(file: BlockNode, size: number, table: ChunkTable, workers: WorkerPool, name: string) {
    this.#file = file;
    this.size = size;
    this.#t = table;
    this.#workers = workers;
    this.#name = name;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    await this.readInto(offset, length, out);
    return out;
  }

  /** Every piece of the range at once: raw chunks straight from the file into `into`, zero
   *  chunks filled, whole compressed chunks decoded into it, parts of chunks decoded (or found in
   *  the cache) and copied. */
  async readInto(offset: number, length: number, into: Buffer): Promise<void> {
    const t = this.#t;
    const jobs: Promise<void>[] = [];
    for (let done = 0; done < length; ) {
      const sector = (offset + done) / SECTOR;
      const c = findChunk(t, sector);
      if (c < 0) {
        // QEMU's dmg_read_chunk finds no chunk and fails the read with EIO (after the pieces
        // already under way have settled: none is left to fail unobserved or write late).
        await Promise.allSettled(jobs);
        throw new BlockError('Io', `no chunk of the dmg image holds sector ${sector}`, { path: this.#name, offset: offset + done });
      }
      const inChunk = (sector - t.start[c]!) * SECTOR;
      const n = Math.min(t.count[c]! * SECTOR - inChunk, length - done);
      const dst = into.subarray(done, done + n);
      const type = t.type[c]!;
      if (isZeroType(type)) dst.fill(0);
      else if (type === CHUNK_RAW) jobs.push(this.#readRaw(c, inChunk, dst));
      else if (inChunk === 0 && n === t.count[c]! * SECTOR && !this.#cache.has(c)) {
        // The whole chunk, not decoded yet: no other request shares it (convert reads each chunk
        // once), so it is decoded for this one without a place in the cache.
        jobs.push(this.#decode(c, n, dst).then(() => undefined));
      } else jobs.push(this.#decoded(c).then((d) => void dst.set(d.subarray(inChunk, inChunk + n))));
      done += n;
    }
    // Every piece settled first: they read and decode into `into`.
    await settleAll(jobs);
  }

  /** A raw chunk's bytes; sectors past its stored length read as zeros. */
  async #readRaw(c: number, inChunk: number, dst: Buffer): Promise<void> {
    const stored = Math.max(0, Math.min(dst.length, this.#t.length[c]! - inChunk));
    if (stored > 0) await this.#file.readInto(this.#t.offset[c]! + inChunk, dst.subarray(0, stored));
    if (stored < dst.length) dst.fill(0, stored);
  }

  #decoded(c: number): Promise<Uint8Array> {
    const hit = this.#cache.get(c);
    if (hit) {
      // Most recently used goes last.
      this.#cache.delete(c);
      this.#cache.set(c, hit);
      return hit.data;
    }
    const bytes = this.#t.count[c]! * SECTOR;
    const data = this.#decode(c, bytes);
    const entry = { bytes, data };
    this.#cache.set(c, entry);
    this.#cached += bytes;
    data.catch(() => {
      // A failed decode is not kept: the next read tries again (and fails again, in words).
      if (this.#cache.get(c) === entry) {
        this.#cache.delete(c);
        this.#cached -= bytes;
      }
    });
    for (const [k, e] of this.#cache) {
      if (this.#cached <= CACHE_BYTES || this.#cache.size <= CACHE_MIN_ENTRIES) break;
      this.#cache.delete(k);
      this.#cached -= e.bytes;
    }
    return data;
  }

  /** Chunk c's `outputLength` decoded bytes, into `into` when given (zlib decodes straight into
   *  it; the workers' answers are copied). */
  async #decode(c: number, outputLength: number, into?: Buffer): Promise<Uint8Array> {
    const t = this.#t;
    const type = t.type[c]!;
    const at = t.offset[c]!;
    const length = t.length[c]!;
    // zlib on libuv's thread pool (no worker start-up) from a reused scratch buffer; bzip2, LZFSE
    // and ADC on the workers, from a buffer of its own (not from Node's pool, not zero-filled: the
    // read fills it) that moves to the worker without a copy.
    const zlib = type === CHUNK_ZLIB;
    const scratch = zlib ? this.#scratch.take(length) : Buffer.allocUnsafeSlow(length);
    const data = scratch.subarray(0, length);
    try {
      if (length > 0) await this.#file.readInto(at, data);
      if (zlib) {
        const out = into ?? Buffer.allocUnsafeSlow(outputLength);
        await inflateInto(data, out);
        return out;
      }
      const out = await this.#workers.run('dmgDecode', { type, data, outputLength }, [data.buffer as ArrayBuffer]);
      into?.set(out);
      return into ?? out;
    } catch (e) {
      if (e instanceof BlockError) throw e;
      const why = e instanceof Error ? e.message : String(e);
      throw new BlockError('Io', `dmg ${chunkTypeName(type)} chunk at byte ${at} (sectors ${t.start[c]}..${t.start[c]! + t.count[c]! - 1}) does not decompress: ${why}`, { path: this.#name, offset: t.start[c]! * SECTOR });
    } finally {
      if (zlib) this.#scratch.give(scratch);
    }
  }

  /** What each chunk is (asked only by convert, QEMU has no block status for dmg): zero-fill
   *  chunks read as zeros, raw chunks whose bytes are all stored lie verbatim in the file. */
  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    const t = this.#t;
    const sector = offset / SECTOR;
    const c = findChunk(t, sector);
    if (c < 0) {
      // No chunk: reads fail there, so let them.
      const next = -1 - c;
      const end = next < t.n ? t.start[next]! * SECTOR : this.size;
      return { offset, length: Math.min(length, end - offset), data: true, zero: false, allocated: true };
    }
    const inChunk = (sector - t.start[c]!) * SECTOR;
    let n = Math.min(t.count[c]! * SECTOR - inChunk, length);
    const type = t.type[c]!;
    if (isZeroType(type)) {
      for (let k = c + 1, merged = 1; n < length && k < t.n && merged < MAX_STATUS_CHUNKS && isZeroType(t.type[k]!) && t.start[k]! * SECTOR === offset + n; k++, merged++) {
        n += Math.min(t.count[k]! * SECTOR, length - n);
      }
      return { offset, length: n, data: false, zero: true, allocated: true };
    }
    if (type === CHUNK_RAW && inChunk + n <= t.length[c]!) {
      const host = t.offset[c]! + inChunk;
      return { offset, length: n, data: true, zero: false, allocated: true, hostOffset: host, hostNode: this.#file };
    }
    return { offset, length: n, data: true, zero: false, allocated: true, ...(COMPRESSED_TYPES.has(type) ? { compressed: true } : {}) };
  }

  async close(): Promise<void> {
    this.#cache.clear();
    this.#cached = 0;
    this.#scratch.clear();
  }
}

async function openDmg(file: BlockNode, ctx: OpenContext): Promise<NodeImpl> {
  const koly = await readKoly(file);
  const kolyAt = BigInt(koly.offset);
  // Checks and order as dmg_open (QEMU says only "Invalid argument" for these).
  if (koly.dataForkOffset > kolyAt) throw invalidImage(`dmg data fork offset ${koly.dataForkOffset} lies past the UDIF trailer (byte ${koly.offset})`);
  if (koly.rsrcForkOffset >= kolyAt || koly.rsrcForkLength > kolyAt - koly.rsrcForkOffset) {
    throw invalidImage(`dmg resource fork (offset ${koly.rsrcForkOffset}, length ${koly.rsrcForkLength}) does not lie before the UDIF trailer (byte ${koly.offset})`);
  }
  if (koly.xmlOffset >= kolyAt || koly.xmlLength > kolyAt - koly.xmlOffset) {
    throw invalidImage(`dmg property list (offset ${koly.xmlOffset}, length ${koly.xmlLength}) does not lie before the UDIF trailer (byte ${koly.offset})`);
  }
  // The sector count is an i64 in QEMU; Platter also needs the byte size to be a safe integer.
  if (koly.sectorCount >= 1n << 63n) throw invalidImage(`dmg sector count ${koly.sectorCount} is negative as a signed 64-bit number`);
  // Byte sizes past 2^53 are kept when exact (core/util/checked.ts sizeToNumber), as for every
  // format; QEMU itself fails past 2^63 bytes ("File too large").
  const size = sizeToNumber(koly.sectorCount * 512n, `dmg disk size (${koly.sectorCount} sectors)`);
  const totalSectors = Number(koly.sectorCount);

  const warned = new Set<number>();
  const unknown = (type: number) => {
    // QEMU's warn_report_once: one warning per open, for the first unknown type.
    if (warned.size > 0) return;
    warned.add(type);
    ctx.warn(`warning: Image contains chunks of unknown type ${type.toString(16)}, accessing them will result in I/O errors`);
  };
  let raw;
  if (koly.rsrcForkLength !== 0n) raw = await readRsrcChunks(file, koly, unknown);
  else if (koly.xmlLength !== 0n) raw = await readXmlChunks(file, koly, unknown);
  else throw invalidImage('dmg trailer names neither a resource fork nor a property list');
  const table = buildChunkTable(raw, totalSectors, file.size);
  return new DmgNode(file, size, table, ctx.workers, ctx.filename);
}

export const dmgDriver: FormatDriver = {
  kind: 'format',
  name: 'dmg',
  description: 'Apple disk image (UDIF .dmg), read-only: zero, raw, zlib, bzip2, ADC and LZFSE chunks',
  // QEMU's dmg_probe looks only at the name: a ".dmg" suffix scores 2 (raw scores 1).
  probe: (_head, filename) => (filename.length > 4 && filename.endsWith('.dmg') ? 2 : 0),
  createOptions: [],
  readOnlyFormat: true,
  qemuHidesAllocation: true,
  qemuNoGetInfo: true,
  open: openDmg,
};

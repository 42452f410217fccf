// The qcow format driver (QCOW version 1, QEMU block/qcow.c): a two-level table (L1 in memory, L2
// tables cached) maps clusters to file offsets; L2 entries with bit 63 set point to a raw-deflate
// compressed cluster whose byte count sits in the bits below it. New L2 tables and clusters are
// appended at the end of the file (cluster aligned); an allocating write fills the rest of the
// cluster from the backing file. Legacy AES (crypt_method 1) goes through qcow2/encryption.ts.

import { QEMU_DRIVER_NAMES } from '../../block/qemu-drivers.ts';
import type { BlockStatus, DriverInfo, FormatDriver, NodeImpl, OpenContext, ZeroFlags } from '../../block/types.ts';
import type { BlockNode } from '../../block/node.ts';
import { BlockError, corrupt, invalidArgument, invalidImage, unsupported, type BlockErrorContext } from '../../errors.ts';
import { Mutex } from '../../util/range-lock.ts';
import { TableCache } from '../qed/table-cache.ts';
import { COMPRESSION_WITH_ENCRYPTION, cryptoCreateParams, decryptData, encryptData, openQcowV1Crypto, type Qcow2Crypto } from '../qcow2/encryption.ts';
import { QCOW_ENTRY_SIZE, QCOW_OFLAG_COMPRESSED, compressedEntry, decodeCompressed, decodeTable, encodeEntry } from './tables.ts';
import {
  QCOW_CREATE_BITS,
  QCOW_CREATE_BITS_BACKING,
  QCOW_CRYPT_NONE,
  QCOW_HEADER_SIZE,
  QCOW_MAGIC,
  QCOW_VERSION,
  decodeQcowHeader,
  encodeQcowHeader,
  validateQcowHeader,
  type QcowGeometry,
} from './header.ts';

/** L2 tables kept in memory (QEMU keeps 16; a few more help parallel requests). */
const L2_CACHE_TABLES = 64;
/** Data offsets must be sector aligned (QEMU fails the request otherwise). */
const SECTOR = 512;
/** zlib window QEMU compresses with (deflateInit2 windowBits -12). */
const DEFLATE_WINDOW_BITS = 12;

type L2Table = BigUint64Array;

/** Where one cluster's data is. */
type Mapping =
  | { kind: 'unallocated' }
  | { kind: 'data'; host: number }
  | { kind: 'compressed'; host: number; bytes: number };

class QcowNode implements NodeImpl {
  readonly size: number;
  readonly alignment = SECTOR;
  readonly clusterSize: number;
  readonly backingFile?: { filename: string };
  readonly #file: BlockNode;
  readonly #geo: QcowGeometry;
  readonly #l1: BigUint64Array;
  readonly #ctx: OpenContext;
  readonly #ectx: BlockErrorContext;
  readonly #l2 = new TableCache<L2Table>(L2_CACHE_TABLES);
  /** Serialises allocation (QEMU holds s->lock around get_cluster_offset). */
  readonly #alloc = new Mutex();
  /** Where the next allocation goes (the file's length, as QEMU uses bdrv_getlength). */
  #end: number;
  /** The last decompressed cluster (QEMU's cluster_cache). */
  #lastCompressed: { host: number; data: Buffer } | undefined;
  /** Legacy AES-CBC (crypt_method 1), IV = guest sector; undefined when not encrypted. */
  readonly #crypto: Qcow2Crypto | undefined;

  constructor(file: BlockNode, geo: QcowGeometry, l1: BigUint64Array, ctx: OpenContext, backingName: string | undefined, crypto?: Qcow2Crypto) {
    this.#crypto = crypto;
    this.#file = file;
    this.#geo = geo;
    this.#l1 = l1;
    this.#ctx = ctx;
    this.#ectx = { path: ctx.filename };
    this.size = geo.size;
    this.clusterSize = geo.clusterSize;
    this.#end = file.size;
    if (backingName !== undefined) this.backingFile = { filename: backingName };
  }

  /** Guest data as it goes to disk (AES-CBC with IV = guest sector when encrypted). */
  #encrypt(guest: number, data: Buffer): Promise<Buffer> | Buffer {
    return this.#crypto ? encryptData(this.#crypto, guest, 0, data) : data;
  }

  #l2Bytes(): number {
    return this.#geo.l2Size * QCOW_ENTRY_SIZE;
  }

  async #loadL2(offset: number): Promise<L2Table> {
    if (offset % SECTOR !== 0 || offset + this.#l2Bytes() > this.#file.size) {
      throw corrupt(`qcow L2 table offset ${offset} is ${offset % SECTOR ? 'not sector aligned' : 'beyond the end of the file'}`, { ...this.#ectx, offset });
    }
    const buf = await this.#file.read(offset, this.#l2Bytes());
    return decodeTable(buf, this.#geo.l2Size);
  }

  #l2Offset(l1Index: number): number {
    const v = this.#l1[l1Index]!;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`qcow L1 entry ${l1Index} is out of range (${v})`, this.#ectx);
    return Number(v);
  }

  #decode(entry: bigint, pos: number): Mapping {
    if (entry === 0n) return { kind: 'unallocated' };
    const g = this.#geo;
    if (entry & QCOW_OFLAG_COMPRESSED) {
      const c = decodeCompressed(entry, g.clusterBits);
      const host = Number(c.host);
      const bytes = c.bytes;
      if (!Number.isSafeInteger(host) || host + bytes > this.#file.size) {
        throw corrupt(`qcow compressed cluster at offset ${host} (${bytes} bytes) is beyond the end of the file`, { ...this.#ectx, offset: pos });
      }
      return { kind: 'compressed', host, bytes };
    }
    if (entry > BigInt(Number.MAX_SAFE_INTEGER) || Number(entry) % SECTOR !== 0) {
      throw corrupt(`qcow cluster offset ${entry} is invalid (not sector aligned or too large)`, { ...this.#ectx, offset: pos });
    }
    return { kind: 'data', host: Number(entry) };
  }

  /** The mapping of the cluster containing `pos`. */
  async #lookup(pos: number): Promise<Mapping> {
    const g = this.#geo;
    const cluster = Math.floor(pos / g.clusterSize);
    const l1Index = Math.floor(cluster / g.l2Size);
    const l2Off = this.#l2Offset(l1Index);
    if (l2Off === 0) return { kind: 'unallocated' };
    const table = await this.#l2.get(l2Off, () => this.#loadL2(l2Off));
    return this.#decode(table[cluster % g.l2Size]!, pos);
  }

  async #decompress(m: { host: number; bytes: number }): Promise<Buffer> {
    if (this.#lastCompressed?.host === m.host) return this.#lastCompressed.data;
    const raw = await this.#file.read(m.host, m.bytes);
    let out: Uint8Array;
    try {
      [out] = (await this.#ctx.workers.run('inflateRaw', { chunks: [new Uint8Array(raw.buffer, raw.byteOffset, raw.length)], outputLength: this.clusterSize })) as [Uint8Array];
    } catch (e) {
      throw new BlockError('Corrupt', `qcow compressed cluster at offset ${m.host} does not decompress: ${(e as Error).message}`, this.#ectx, { cause: e });
    }
    if (out.length !== this.clusterSize) {
      throw corrupt(`qcow compressed cluster at offset ${m.host} decompresses to ${out.length} bytes, expected ${this.clusterSize}`, this.#ectx);
    }
    const data = Buffer.from(out.buffer, out.byteOffset, out.length);
    this.#lastCompressed = { host: m.host, data };
    return data;
  }

  /** The run starting at `pos` (at most `max` bytes, within one L2 table) whose clusters all map
   *  like the first one: unallocated, or data contiguous in the file. A compressed cluster is a
   *  run of its own. Scans the table in place. */
  async #run(pos: number, max: number): Promise<{ m: Mapping; n: number }> {
    const g = this.#geo;
    const cs = this.clusterSize;
    const span = cs * g.l2Size;
    const limit = Math.min(max, span - (pos % span));
    const cluster = Math.floor(pos / cs);
    const l2Off = this.#l2Offset(Math.floor(cluster / g.l2Size));
    if (l2Off === 0) return { m: { kind: 'unallocated' }, n: limit };
    const table = await this.#l2.get(l2Off, () => this.#loadL2(l2Off));
    const index = cluster % g.l2Size;
    const m = this.#decode(table[index]!, pos);
    let n = Math.min(limit, cs - (pos % cs));
    if (m.kind === 'compressed') return { m, n };
    let want = m.kind === 'data' ? BigInt(m.host + cs) : 0n;
    const step = m.kind === 'data' ? BigInt(cs) : 0n;
    for (let j = index + 1; n < limit && table[j] === want; j++) {
      want += step;
      n = Math.min(limit, n + cs);
    }
    return { m, n };
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const cs = this.clusterSize;
    let out: Buffer | undefined;
    for (let done = 0; done < length; ) {
      const pos = offset + done;
      const { m, n } = await this.#run(pos, length - done);
      let part: Buffer;
      if (m.kind === 'data') {
        this.#file.debugEvent('read_aio');
        part = await this.#file.read(m.host + (pos % cs), n);
        if (this.#crypto) part = await decryptData(this.#crypto, pos, 0, part);
      } else if (m.kind === 'unallocated') {
        if (this.#ctx.backing()) this.#file.debugEvent('read_backing_aio');
        part = await this.#ctx.readBacking(pos, n);
      } else {
        this.#file.debugEvent('read_compressed');
        part = (await this.#decompress(m)).subarray(pos % cs, (pos % cs) + n);
      }
      if (n === length && m.kind !== 'compressed') return part; // one run: no copy
      out ??= Buffer.allocUnsafe(length);
      part.copy(out, done);
      done += n;
    }
    return out ?? Buffer.alloc(0);
  }

  async write(offset: number, data: Buffer): Promise<void> {
    const cs = this.clusterSize;
    for (let done = 0; done < data.length; ) {
      const pos = offset + done;
      const inCluster = pos % cs;
      const n = Math.min(data.length - done, cs - inCluster);
      const part = data.subarray(done, done + n);
      const m = await this.#lookup(pos);
      if (m.kind === 'data') {
        this.#file.debugEvent('write_aio');
        await this.#file.write(m.host + inCluster, await this.#encrypt(pos, part));
      } else await this.#allocateAndWrite(pos - inCluster, inCluster, part);
      done += n;
    }
  }

  /** The L2 table for `clusterStart`, allocating an empty one at the end of the file if needed.
   *  Call with the allocation mutex held; the table comes back pinned (unpin it). */
  async #l2ForWrite(clusterStart: number): Promise<{ table: L2Table; offset: number; index: number }> {
    const g = this.#geo;
    const cluster = clusterStart / g.clusterSize;
    const l1Index = Math.floor(cluster / g.l2Size);
    let l2Off = this.#l2Offset(l1Index);
    if (l2Off === 0) {
      l2Off = this.#allocAligned(this.#l2Bytes());
      // The zeroed table goes to disk before the L1 entry that points to it.
      await this.#file.write(l2Off, Buffer.alloc(this.#l2Bytes()));
      await this.#file.write(g.l1TableOffset + l1Index * QCOW_ENTRY_SIZE, encodeEntry(BigInt(l2Off)));
      this.#l1[l1Index] = BigInt(l2Off);
      this.#l2.put(l2Off, new BigUint64Array(g.l2Size));
    }
    const table = await this.#l2.get(l2Off, () => this.#loadL2(l2Off), true);
    return { table, offset: l2Off, index: cluster % g.l2Size };
  }

  /** Space for `bytes` at the end of the file, aligned to a cluster (QEMU rounds up the length). */
  #allocAligned(bytes: number): number {
    const cs = this.clusterSize;
    const at = Math.ceil(this.#end / cs) * cs;
    if (!Number.isSafeInteger(at + bytes)) throw invalidImage('qcow image file would grow past 2^53 bytes', this.#ectx);
    this.#end = at + bytes;
    return at;
  }

  async #setL2Entry(l2: { table: L2Table; offset: number; index: number }, value: bigint): Promise<void> {
    await this.#file.write(l2.offset + l2.index * QCOW_ENTRY_SIZE, encodeEntry(value));
    l2.table[l2.index] = value;
  }

  async #allocateAndWrite(clusterStart: number, inCluster: number, part: Buffer): Promise<void> {
    await this.#alloc.run(async () => {
      const l2 = await this.#l2ForWrite(clusterStart);
      try {
        const m = this.#decode(l2.table[l2.index]!, clusterStart);
        if (m.kind === 'data') {
          this.#file.debugEvent('write_aio');
          await this.#file.write(m.host + inCluster, await this.#encrypt(clusterStart + inCluster, part));
          return;
        }
        const cs = this.clusterSize;
        // The untouched rest of the cluster keeps what reads returned before the write.
        let whole: Buffer;
        if (part.length === cs) whole = part;
        else {
          whole = m.kind === 'compressed' ? Buffer.from(await this.#decompress(m)) : await this.#ctx.readBacking(clusterStart, cs);
          part.copy(whole, inCluster);
        }
        const host = this.#allocAligned(cs);
        this.#file.debugEvent('cluster_alloc');
        this.#file.debugEvent('write_aio');
        await this.#file.write(host, await this.#encrypt(clusterStart, whole));
        if (this.#lastCompressed && m.kind === 'compressed' && this.#lastCompressed.host === m.host) this.#lastCompressed = undefined;
        await this.#setL2Entry(l2, BigInt(host));
      } finally {
        this.#l2.unpin(l2.offset);
      }
    });
  }

  /** Unmap every cluster so reads fall through to the backing file (QEMU's qcow_make_empty):
   *  a zero L1 table, and the file cut back to its end. */
  async makeEmpty(): Promise<void> {
    await this.#alloc.run(async () => {
      const g = this.#geo;
      const l1Bytes = g.l1Size * QCOW_ENTRY_SIZE;
      this.#l1.fill(0n);
      await this.#file.write(g.l1TableOffset, Buffer.alloc(l1Bytes));
      await this.#file.flush();
      this.#l2.clear();
      this.#lastCompressed = undefined;
      const end = g.l1TableOffset + l1Bytes;
      await this.#file.truncate(end, { shrink: true });
      this.#end = end;
    });
  }

  /** A new image maps no cluster: everything reads as zero (QEMU: bdrv_has_zero_init_1). */
  hasZeroInit(): boolean {
    return true;
  }

  async writeZeroes(offset: number, length: number, _flags: ZeroFlags): Promise<void> {
    // qcow has no zero clusters: clusters that already read as zeros (unallocated, no backing)
    // stay as they are; everything else gets zeros written.
    const cs = this.clusterSize;
    const hasBacking = this.#ctx.backing() !== undefined;
    for (let done = 0; done < length; ) {
      const pos = offset + done;
      const n = Math.min(length - done, cs - (pos % cs));
      const m = await this.#lookup(pos);
      if (m.kind === 'data' && this.#crypto) await this.write(pos, Buffer.alloc(n)); // zeros must be encrypted
      else if (m.kind === 'data') await this.#file.writeZeroes(m.host + (pos % cs), n);
      else if (m.kind === 'compressed' || hasBacking) await this.write(pos, Buffer.alloc(n));
      done += n;
    }
  }

  async writeCompressed(offset: number, data: Buffer): Promise<void> {
    const cs = this.clusterSize;
    if (this.#crypto) throw unsupported(COMPRESSION_WITH_ENCRYPTION, this.#ectx);
    if (offset % cs !== 0 || data.length > cs) throw invalidArgument(`compressed writes must be one whole cluster (offset ${offset}, ${data.length} bytes)`, this.#ectx);
    let cluster = data;
    if (data.length < cs) {
      // The image's last cluster may be partial: pad it with zeros, as QEMU does.
      if (offset + data.length !== this.size) throw invalidArgument('compressed writes must be one whole cluster', this.#ectx);
      cluster = Buffer.alloc(cs);
      data.copy(cluster);
    }
    const input = new Uint8Array(cluster);
    const [packed] = (await this.#ctx.workers.run('deflateRaw', { chunks: [input], limit: cs, windowBits: DEFLATE_WINDOW_BITS })) as [Uint8Array];
    if (!packed || packed.length === 0) {
      await this.write(offset, data.length === cs ? data : cluster.subarray(0, this.size - offset));
      return;
    }
    await this.#alloc.run(async () => {
      const l2 = await this.#l2ForWrite(offset);
      try {
        const m = this.#decode(l2.table[l2.index]!, offset);
        if (m.kind === 'data') {
          // Never put compressed bytes into a normal cluster: overwrite it in place.
          await this.#file.write(m.host, cluster.subarray(0, Math.min(cs, this.size - offset)));
          return;
        }
        const host = this.#end;
        if (!Number.isSafeInteger(host + packed.length)) throw invalidImage('qcow image file would grow past 2^53 bytes', this.#ectx);
        this.#end = host + packed.length;
        await this.#file.write(host, Buffer.from(packed.buffer, packed.byteOffset, packed.length));
        if (this.#lastCompressed?.host === host) this.#lastCompressed = undefined;
        const entry = compressedEntry(host, packed.length, this.#geo.clusterBits);
        await this.#setL2Entry(l2, entry);
      } finally {
        this.#l2.unpin(l2.offset);
      }
    });
  }

  /** QEMU's qcow answers block status a cluster at a time. */
  qemuLastStatusUnit(): number {
    return Math.max(0, Math.floor((this.size - 1) / this.clusterSize) * this.clusterSize);
  }

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    const first = await this.#run(offset, length);
    const m = first.m;
    let n = first.n;
    // Runs end at L2 table boundaries (and compressed clusters are single): join equal neighbours.
    while (n < length && m.kind !== 'data') {
      const next = await this.#run(offset + n, length - n);
      if (next.m.kind !== m.kind) break;
      n += next.n;
    }
    if (m.kind === 'unallocated') {
      return { offset, length: n, data: false, zero: this.#ctx.backing() === undefined, allocated: false };
    }
    if (m.kind === 'compressed') return { offset, length: n, data: true, zero: false, allocated: true, compressed: true };
    // Reads take the same run from the file as it is, unless it is encrypted (BlockStatus.hostNode).
    return { offset, length: n, data: true, zero: false, allocated: true, hostOffset: m.host + (offset % this.clusterSize), ...(this.#crypto ? {} : { hostNode: this.#file }) };
  }

  async info(): Promise<DriverInfo> {
    return { clusterSize: this.clusterSize, encrypted: this.#crypto !== undefined };
  }

  async close(): Promise<void> {
    this.#crypto?.close();
    this.#l2.clear();
    this.#lastCompressed = undefined;
  }
}

export const qcowDriver: FormatDriver = {
  kind: 'format',
  name: 'qcow',
  description: 'QEMU Copy-On-Write version 1 (legacy; kept for old images)',
  compressedWrites: 'any-order', encryption: { keySecret: 'encrypt.key-secret' },
  supportsBacking: true,
  createOptions: [
    { name: 'backing_file', type: 'path', help: 'File name of a base image' },
    { name: 'backing_fmt', type: 'string', help: 'Format of the backing image' },
    { name: 'encryption', type: 'bool', default: false, help: "Encrypt the image with format 'aes'. (Deprecated in favor of encrypt.format=aes)", advanced: true },
    { name: 'encrypt.format', type: 'enum', values: ['aes'], help: "Encrypt the image, format choices: 'aes'", advanced: true },
    { name: 'encrypt.key-secret', type: 'secret-id', help: 'ID of the secret that provides the AES encryption key', advanced: true },
  ],

  probe(head) {
    if (head.length < QCOW_HEADER_SIZE) return 0;
    return head.readUInt32BE(0) === QCOW_MAGIC && head.readUInt32BE(4) === QCOW_VERSION ? 100 : 0;
  },

  async create(file, ctx) {
    const o = ctx.options;
    // qcow records no backing format, but checks that a given one names a driver (QEMU's words).
    const fmt = o['backing_fmt'];
    if (typeof fmt === 'string' && !QEMU_DRIVER_NAMES.has(fmt)) throw invalidArgument(`unrecognized backing format '${fmt}'`, { path: ctx.filename });
    const crypto = cryptoCreateParams(o, 'qcow');
    if (crypto.method !== QCOW_CRYPT_NONE) {
      ctx.secrets.passphrase(crypto.secretId!); // an unknown secret id fails before anything is written
    }
    // Whole sectors, as qemu-img create rounds the size up.
    const size = Math.ceil(ctx.size / SECTOR) * SECTOR;
    if (size === 0) throw invalidArgument('Image size is too small, cannot be zero length', { path: ctx.filename });
    const backing = typeof o['backing_file'] === 'string' && o['backing_file'] !== '' ? (o['backing_file'] as string) : undefined;
    const name = backing !== undefined ? Buffer.from(backing, 'utf8') : undefined;
    if (name && name.length > 1023) throw invalidArgument('Backing file name too long', { path: ctx.filename });
    const bits = name ? QCOW_CREATE_BITS_BACKING : QCOW_CREATE_BITS;
    const l1Offset = Math.ceil((QCOW_HEADER_SIZE + (name?.length ?? 0)) / 8) * 8;
    const shift = bits.cluster + bits.l2;
    const l1Size = Math.ceil(size / 2 ** shift);
    const header = encodeQcowHeader({
      magic: QCOW_MAGIC,
      version: QCOW_VERSION,
      backingFileOffset: name ? BigInt(QCOW_HEADER_SIZE) : 0n,
      backingFileSize: name?.length ?? 0,
      mtime: 0,
      size: BigInt(size),
      clusterBits: bits.cluster,
      l2Bits: bits.l2,
      cryptMethod: crypto.method,
      l1TableOffset: BigInt(l1Offset),
    });
    await file.write(0, header);
    if (name) await file.write(QCOW_HEADER_SIZE, name);
    // The L1 table, zeroed and padded to whole sectors (as QEMU writes it).
    const l1Bytes = Math.ceil((l1Size * QCOW_ENTRY_SIZE) / SECTOR) * SECTOR;
    if (l1Bytes > 0) await file.write(l1Offset, Buffer.alloc(l1Bytes));
  },

  async open(file, ctx) {
    const ectx = { path: ctx.filename, op: 'open' };
    if (file.size < QCOW_HEADER_SIZE) throw invalidImage(`Image not in qcow format (file is ${file.size} bytes, shorter than the ${QCOW_HEADER_SIZE}-byte header)`, ectx);
    const h = decodeQcowHeader(await file.read(0, QCOW_HEADER_SIZE));
    const geo = validateQcowHeader(h, file.size, ectx);
    const l1 = decodeTable(geo.l1Size > 0 ? await file.read(geo.l1TableOffset, geo.l1Size * QCOW_ENTRY_SIZE) : Buffer.alloc(0), geo.l1Size);
    let backingName: string | undefined;
    if (geo.backing && geo.backing.size > 0) {
      backingName = (await file.read(geo.backing.offset, geo.backing.size)).toString('utf8');
      const nul = backingName.indexOf('\0');
      if (nul >= 0) backingName = backingName.slice(0, nul);
      if (backingName === '') backingName = undefined;
    }
    const crypto = openQcowV1Crypto(h.cryptMethod, ctx.noIo ? {} : ctx.options, ctx.secrets, ctx.workers, ctx.warn);
    return new QcowNode(file, geo, l1, ctx, backingName, crypto);
  },
};

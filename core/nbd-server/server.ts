// An NBD server for one export (proto.md; qemu-nbd 7.2's behaviour in nbd/server.c for what it
// offers and how it answers): fixed newstyle handshake with STARTTLS, LIST, INFO/GO (NAME,
// DESCRIPTION, BLOCK_SIZE), EXPORT_NAME, STRUCTURED_REPLY, LIST/SET_META_CONTEXT
// (base:allocation, qemu:allocation-depth, qemu:dirty-bitmap:NAME), then READ, WRITE (FUA),
// FLUSH, TRIM, WRITE_ZEROES (NO_HOLE), BLOCK_STATUS (REQ_ONE), DISC over a BlockNode. Requests of
// a connection run concurrently; each reply is written whole. Every field a client sends is
// checked: a broken client is disconnected, never trusted.

import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { BlockError } from '../errors.ts';
import { alignedBuffer } from '../host/aligned.ts';
import { blockStatusAbove, type BlockNode } from '../block/node.ts';
import * as C from '../protocols/nbd/constants.ts';
import { ExactReader, PeerClosed, putU64, u64 } from '../protocols/nbd/wire.ts';
import { serverSecureContext } from '../protocols/nbd/tls.ts';
import type { DirtyBitmap } from '../block/dirty-bitmap.ts';

export interface NbdExportOptions {
  node: BlockNode;
  /** Export name (-x; qemu-nbd's default is the empty name). */
  name: string;
  description?: string;
  readOnly: boolean;
  /** -A: offer qemu:allocation-depth. */
  allocationDepth: boolean;
  /** -B NAME: offer qemu:dirty-bitmap:NAME. */
  bitmap?: { name: string; bits: DirtyBitmap };
  /** --discard=ignore: TRIM does nothing. */
  discard: 'ignore' | 'unmap';
  /** --detect-zeroes: writes of zeros become write-zeroes (unmap: may deallocate). */
  detectZeroes: 'off' | 'on' | 'unmap';
}

export interface NbdServerOptions {
  export: NbdExportOptions;
  /** -e / --shared: clients served at once (qemu-nbd default 1; 0 = unlimited). */
  shared: number;
  /** -t: keep serving after the last client leaves. */
  persistent: boolean;
  /** tls-creds object id (server endpoint): TLS is then required. */
  tlsCreds?: string;
  log?: (message: string) => void;
}

/** Ids of the meta contexts this server hands out. */
const CTX_BASE = 1;
const CTX_DEPTH = 2;
const CTX_BITMAP = 3;

/** Largest option payload accepted (QEMU: NBD_MAX_BUFFER_SIZE for the whole option). */
const MAX_OPTION = 1 << 20;
/** Preferred block size advertised (qemu-nbd: 4096). */
const PREF_BLOCK = 4096;
/** Requests of one client served at once (qemu-nbd: NBD_MAX_REQUESTS = 16). */
const MAX_INFLIGHT = 16;
/** Reads at least this long go into page-aligned buffers the connection reuses once the socket has
 *  taken their bytes (no allocation, no garbage, no copy into the reply). */
const POOLED_READ = 64 * 1024;
/** Adjacent READs already waiting in the socket's buffer are read from the image in one request
 *  of up to this many bytes (one thread-pool round trip instead of one per request; a client
 *  such as nbdcopy sends 256 KiB reads back to back), then answered one by one from views of
 *  the same buffer. */
const BATCH_BYTES = 2 << 20;
const BATCH_MAX = 16;

/** Extents per BLOCK_STATUS reply without REQ_ONE. */
const MAX_EXTENTS = 1024;

function errnoOf(e: unknown): number {
  if (e instanceof BlockError) {
    if (e.kind === 'Permission' || e.kind === 'Locked') return C.NBD_EPERM;
    if (e.kind === 'InvalidArgument') return C.NBD_EINVAL;
    if (e.kind === 'Unsupported') return C.NBD_ENOTSUP;
    if (e.code === 'NoSpace' || e.errno === 'ENOSPC') return C.NBD_ENOSPC;
  }
  return C.NBD_EIO;
}

class Disconnect extends Error {}

function repHeader(opt: number, type: number, len: number): Buffer {
  const h = Buffer.alloc(20);
  h.writeBigUInt64BE(C.NBD_REP_MAGIC, 0);
  h.writeUInt32BE(opt, 8);
  h.writeUInt32BE(type >>> 0, 12);
  h.writeUInt32BE(len, 16);
  return h;
}

export class NbdServer {
  readonly #o: NbdServerOptions;
  readonly #servers: Server[] = [];
  readonly #active = new Set<Connection>();
  readonly #waiting: Socket[] = [];
  #everConnected = false;
  #closing = false;
  #idle: (() => void) | undefined;
  /** Resolves when the server should stop (not persistent and the last client left). */
  readonly done: Promise<void>;

  constructor(o: NbdServerOptions) {
    this.#o = o;
    this.done = new Promise((resolve) => (this.#idle = resolve));
  }

  /** Listen on a unix socket or host:port (0: a random port, returned). */
  async listen(where: { path: string } | { host: string; port: number }): Promise<number | undefined> {
    const srv = createServer((sock) => this.#accept(sock));
    srv.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      if ('path' in where) srv.listen(where.path, () => resolve());
      else srv.listen(where.port, where.host, () => resolve());
    });
    this.#servers.push(srv);
    const a = srv.address();
    return typeof a === 'object' && a ? a.port : undefined;
  }

  #accept(sock: Socket): void {
    sock.on('error', () => {});
    if (this.#closing) {
      sock.destroy();
      return;
    }
    if (this.#o.shared > 0 && this.#active.size >= this.#o.shared) {
      // qemu-nbd stops accepting while full: the client waits until a slot frees.
      this.#waiting.push(sock);
      sock.once('close', () => {
        const i = this.#waiting.indexOf(sock);
        if (i >= 0) this.#waiting.splice(i, 1);
      });
      return;
    }
    this.#everConnected = true;
    sock.setNoDelay(true);
    const c = new Connection(sock, this.#o);
    this.#active.add(c);
    c.run().finally(() => {
      this.#active.delete(c);
      const next = this.#waiting.shift();
      if (next && !this.#closing) this.#accept(next);
      else if (this.#active.size === 0 && !this.#o.persistent && this.#everConnected) this.#idle?.();
    });
  }

  /** The clients served now: peer address ("127.0.0.1:40312", or "unix socket") and since when. */
  connections(): NbdConnectionInfo[] {
    return [...this.#active].map((c) => c.describe());
  }

  /** Stop listening, disconnect clients after their requests in flight, flush the image. */
  async close(): Promise<void> {
    this.#closing = true;
    for (const s of this.#servers) s.close();
    for (const s of this.#waiting.splice(0)) s.destroy();
    await Promise.all([...this.#active].map((c) => c.shutdown()));
    await this.#o.export.node.flush().catch(() => {});
  }
}

/** One connected client (NbdServer.connections). */
export interface NbdConnectionInfo {
  peer: string;
  /** Connected at, ms since the epoch. */
  since: number;
}

/** One READ of a batch (Connection.#readBatch). */
interface BatchedRead {
  handle: Buffer;
  offset: number;
  length: number;
}

/** A 28-byte request header (its magic checked by the caller); the handle is copied out. */
function parseRequest(h: Buffer): BatchedRead & { flags: number; type: number } {
  return { flags: h.readUInt16BE(4), type: h.readUInt16BE(6), handle: Buffer.from(h.subarray(8, 16)), offset: u64(h, 16), length: h.readUInt32BE(24) };
}

class Connection {
  readonly #since = Date.now();
  #stream: Duplex;
  readonly #sock: Socket;
  readonly #reader: ExactReader;
  readonly #o: NbdServerOptions;
  readonly #e: NbdExportOptions;
  #structured = false;
  #contexts: number[] = [];
  #tls = false;
  #inflight = new Set<Promise<void>>();
  #stopping = false;
  /** Free read buffers by length (at most MAX_INFLIGHT of each), see POOLED_READ. */
  #pool = new Map<number, Buffer[]>();

  constructor(sock: Socket, o: NbdServerOptions) {
    this.#sock = sock;
    this.#stream = sock;
    this.#reader = new ExactReader(sock);
    this.#o = o;
    this.#e = o.export;
  }

  describe(): NbdConnectionInfo {
    const a = this.#sock.remoteAddress;
    const peer = a ? (a.includes(':') ? `[${a}]:${this.#sock.remotePort}` : `${a}:${this.#sock.remotePort}`) : 'unix socket';
    return { peer, since: this.#since };
  }

  #send(parts: Buffer[]): void {
    if (this.#stream.destroyed) return;
    // One write per message: replies of concurrent requests never interleave.
    this.#stream.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
  }

  /** A reply whose last part (`data`, or the pooled read buffer `pooled` views) goes to the socket
   *  without a copy: the parts are written in one corked batch (one writev; no other reply can
   *  come between them, as this runs to completion). Settles once the socket has taken them (the
   *  pooled buffer then returns to the pool): the request counts as in flight until then, so a
   *  client that reads slowly holds back the next requests instead of piling up reply buffers,
   *  and the pool always has one free. */
  #sendData(parts: Buffer[], pooled: Buffer | undefined): Promise<void> {
    const s = this.#stream;
    if (s.destroyed) {
      if (pooled) this.#release(pooled);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      s.cork();
      for (const p of parts.slice(0, -1)) s.write(p);
      s.write(parts[parts.length - 1]!, () => {
        if (pooled) this.#release(pooled);
        resolve();
      });
      s.uncork();
    });
  }

  #take(length: number): Buffer {
    return this.#pool.get(length)?.pop() ?? alignedBuffer(length, 4096, false);
  }

  #release(b: Buffer): void {
    let free = this.#pool.get(b.length);
    if (!free) {
      if (this.#pool.size >= 8) this.#pool.clear();
      this.#pool.set(b.length, (free = []));
    }
    if (free.length < MAX_INFLIGHT) free.push(b);
  }

  async shutdown(): Promise<void> {
    this.#stopping = true;
    await Promise.allSettled([...this.#inflight]);
    this.#reader.fail(new PeerClosed());
    this.#stream.destroy();
    this.#sock.destroy();
  }

  async run(): Promise<void> {
    try {
      // Handshake: a client has 60 s per step (qemu-nbd: --handshake-limit, 10 s in 8.0).
      this.#reader.setTimeout(60_000);
      const hello = Buffer.alloc(18);
      hello.writeBigUInt64BE(C.NBD_INIT_MAGIC, 0);
      hello.writeBigUInt64BE(C.NBD_OPTS_MAGIC, 8);
      hello.writeUInt16BE(C.NBD_FLAG_FIXED_NEWSTYLE | C.NBD_FLAG_NO_ZEROES, 16);
      this.#send([hello]);
      const cflags = (await this.#reader.read(4)).readUInt32BE(0);
      if (cflags & ~(C.NBD_FLAG_C_FIXED_NEWSTYLE | C.NBD_FLAG_C_NO_ZEROES)) throw new Disconnect('Unsupported client flags');
      const noZeroes = (cflags & C.NBD_FLAG_C_NO_ZEROES) !== 0;
      await this.#options(noZeroes);
      this.#reader.setTimeout(0);
      await this.#transmission();
    } catch {
      // A client that leaves or breaks the protocol is dropped; the export stays up.
    } finally {
      await Promise.allSettled([...this.#inflight]);
      this.#stream.destroy();
      this.#sock.destroy();
    }
  }

  #transmissionFlags(): number {
    // qemu-nbd 7.2's flags: multi-conn whenever more than one client may connect; fast zero
    // offered (and refused with ENOTSUP, which the protocol allows: we never promise speed).
    let f = C.NBD_FLAG_HAS_FLAGS | C.NBD_FLAG_SEND_FLUSH | C.NBD_FLAG_SEND_FUA | C.NBD_FLAG_SEND_DF | C.NBD_FLAG_SEND_CACHE;
    if (this.#e.readOnly) f |= C.NBD_FLAG_READ_ONLY;
    else f |= C.NBD_FLAG_SEND_TRIM | C.NBD_FLAG_SEND_WRITE_ZEROES | C.NBD_FLAG_SEND_FAST_ZERO;
    if (this.#o.shared !== 1) f |= C.NBD_FLAG_CAN_MULTI_CONN;
    return f;
  }

  #reply(opt: number, type: number, data: Buffer = Buffer.alloc(0)): void {
    this.#send([repHeader(opt, type, data.length), data]);
  }

  #replyErr(opt: number, type: number, message: string): void {
    this.#reply(opt, type, Buffer.from(message, 'utf8'));
  }

  async #options(noZeroes: boolean): Promise<void> {
    for (;;) {
      const h = await this.#reader.read(16);
      if (h.readBigUInt64BE(0) !== C.NBD_OPTS_MAGIC) throw new Disconnect('Bad option magic');
      const opt = h.readUInt32BE(8);
      const len = h.readUInt32BE(12);
      if (len > MAX_OPTION) throw new Disconnect('Option too long');
      const data = await this.#reader.read(len);
      const tlsRequired = this.#o.tlsCreds !== undefined && !this.#tls;
      if (tlsRequired && opt !== C.NBD_OPT_STARTTLS && opt !== C.NBD_OPT_ABORT) {
        if (opt === C.NBD_OPT_EXPORT_NAME) throw new Disconnect('Option 0x1 not permitted before TLS');
        this.#replyErr(opt, C.NBD_REP_ERR_TLS_REQD, `Option 0x${opt.toString(16)} not permitted before TLS`);
        continue;
      }
      switch (opt) {
        case C.NBD_OPT_STARTTLS:
          if (len !== 0) this.#replyErr(opt, C.NBD_REP_ERR_INVALID, 'STARTTLS takes no data');
          else if (this.#o.tlsCreds === undefined) this.#replyErr(opt, C.NBD_REP_ERR_POLICY, 'TLS not configured');
          else if (this.#tls) this.#replyErr(opt, C.NBD_REP_ERR_INVALID, 'TLS already enabled');
          else {
            this.#reply(opt, C.NBD_REP_ACK);
            await this.#startTls();
          }
          break;
        case C.NBD_OPT_ABORT:
          this.#reply(opt, C.NBD_REP_ACK);
          throw new Disconnect('abort');
        case C.NBD_OPT_LIST: {
          if (len !== 0) {
            this.#replyErr(opt, C.NBD_REP_ERR_INVALID, 'List takes no data');
            break;
          }
          const name = Buffer.from(this.#e.name, 'utf8');
          const desc = Buffer.from(this.#e.description ?? '', 'utf8');
          const d = Buffer.alloc(4 + name.length + desc.length);
          d.writeUInt32BE(name.length, 0);
          name.copy(d, 4);
          desc.copy(d, 4 + name.length);
          this.#reply(opt, C.NBD_REP_SERVER, d);
          this.#reply(opt, C.NBD_REP_ACK);
          break;
        }
        case C.NBD_OPT_EXPORT_NAME: {
          if (data.toString('utf8') !== this.#e.name) throw new Disconnect('export not present');
          const d = Buffer.alloc(10 + (noZeroes ? 0 : 124));
          putU64(d, 0, this.#e.node.size);
          d.writeUInt16BE(this.#transmissionFlags(), 8);
          this.#send([d]);
          return;
        }
        case C.NBD_OPT_INFO:
        case C.NBD_OPT_GO:
          if (this.#infoOrGo(opt, data)) return;
          break;
        case C.NBD_OPT_STRUCTURED_REPLY:
          if (len !== 0) this.#replyErr(opt, C.NBD_REP_ERR_INVALID, 'STRUCTURED_REPLY takes no data');
          else if (this.#structured) this.#replyErr(opt, C.NBD_REP_ERR_INVALID, 'structured reply already negotiated');
          else {
            this.#structured = true;
            this.#reply(opt, C.NBD_REP_ACK);
          }
          break;
        case C.NBD_OPT_LIST_META_CONTEXT:
        case C.NBD_OPT_SET_META_CONTEXT:
          this.#metaContext(opt, data);
          break;
        default:
          this.#replyErr(opt, C.NBD_REP_ERR_UNSUP, `Unsupported option ${opt} (${C.optName(opt)})`);
      }
    }
  }

  async #startTls(): Promise<void> {
    const { context, verifyPeer } = serverSecureContext(this.#o.tlsCreds!);
    this.#reader.detach();
    const t = new TLSSocket(this.#sock, { isServer: true, secureContext: context, requestCert: verifyPeer, rejectUnauthorized: verifyPeer });
    await new Promise<void>((resolve, reject) => {
      t.once('secure', () => resolve());
      t.once('error', reject);
    });
    t.on('error', () => {});
    this.#stream = t;
    this.#reader.attach(t);
    this.#tls = true;
  }

  /** Parse "u32 len, name" at `at`; undefined when it overruns. */
  #string(data: Buffer, at: number): { s: string; next: number } | undefined {
    if (at + 4 > data.length) return undefined;
    const n = data.readUInt32BE(at);
    if (n > C.NBD_MAX_STRING_SIZE || at + 4 + n > data.length) return undefined;
    return { s: data.subarray(at + 4, at + 4 + n).toString('utf8'), next: at + 4 + n };
  }

  /** INFO / GO; true when GO moved to transmission. */
  #infoOrGo(opt: number, data: Buffer): boolean {
    const name = this.#string(data, 0);
    if (!name || name.next + 2 > data.length) {
      this.#replyErr(opt, C.NBD_REP_ERR_INVALID, 'Invalid request');
      return false;
    }
    const n = data.readUInt16BE(name.next);
    if (name.next + 2 + 2 * n !== data.length) {
      this.#replyErr(opt, C.NBD_REP_ERR_INVALID, 'Invalid request');
      return false;
    }
    const wanted = new Set<number>();
    for (let i = 0; i < n; i++) wanted.add(data.readUInt16BE(name.next + 2 + 2 * i));
    if (name.s !== this.#e.name) {
      this.#replyErr(opt, C.NBD_REP_ERR_UNKNOWN, `export '${name.s}' not present`);
      return false;
    }
    if (wanted.has(C.NBD_INFO_NAME)) {
      const nm = Buffer.from(this.#e.name, 'utf8');
      const d = Buffer.alloc(2 + nm.length);
      d.writeUInt16BE(C.NBD_INFO_NAME, 0);
      nm.copy(d, 2);
      this.#reply(opt, C.NBD_REP_INFO, d);
    }
    if (wanted.has(C.NBD_INFO_DESCRIPTION) && this.#e.description !== undefined) {
      const ds = Buffer.from(this.#e.description, 'utf8');
      const d = Buffer.alloc(2 + ds.length);
      d.writeUInt16BE(C.NBD_INFO_DESCRIPTION, 0);
      ds.copy(d, 2);
      this.#reply(opt, C.NBD_REP_INFO, d);
    }
    // Block sizes are always sent (as qemu-nbd): min = the image's request alignment.
    const bs = Buffer.alloc(14);
    bs.writeUInt16BE(C.NBD_INFO_BLOCK_SIZE, 0);
    const min = Math.max(1, this.#e.node.alignment ?? 1);
    bs.writeUInt32BE(min, 2);
    bs.writeUInt32BE(Math.max(min, PREF_BLOCK), 6);
    bs.writeUInt32BE(C.NBD_MAX_BUFFER_SIZE, 10);
    this.#reply(opt, C.NBD_REP_INFO, bs);
    const ex = Buffer.alloc(12);
    ex.writeUInt16BE(C.NBD_INFO_EXPORT, 0);
    putU64(ex, 2, this.#e.node.size);
    ex.writeUInt16BE(this.#transmissionFlags(), 10);
    this.#reply(opt, C.NBD_REP_INFO, ex);
    this.#reply(opt, C.NBD_REP_ACK);
    return opt === C.NBD_OPT_GO;
  }

  /** The contexts this export offers, by name. */
  #offered(): Map<string, number> {
    const m = new Map<string, number>([['base:allocation', CTX_BASE]]);
    if (this.#e.allocationDepth) m.set('qemu:allocation-depth', CTX_DEPTH);
    if (this.#e.bitmap) m.set(`qemu:dirty-bitmap:${this.#e.bitmap.name}`, CTX_BITMAP);
    return m;
  }

  #metaContext(opt: number, data: Buffer): void {
    if (opt === C.NBD_OPT_SET_META_CONTEXT && !this.#structured) {
      this.#replyErr(opt, C.NBD_REP_ERR_INVALID, 'request structured replies first');
      return;
    }
    const name = this.#string(data, 0);
    if (!name || name.next + 4 > data.length) {
      this.#replyErr(opt, C.NBD_REP_ERR_INVALID, 'Invalid request');
      return;
    }
    const nq = data.readUInt32BE(name.next);
    const queries: string[] = [];
    let at = name.next + 4;
    for (let i = 0; i < nq; i++) {
      const q = this.#string(data, at);
      if (!q) {
        this.#replyErr(opt, C.NBD_REP_ERR_INVALID, 'Invalid request');
        return;
      }
      queries.push(q.s);
      at = q.next;
    }
    if (at !== data.length) {
      this.#replyErr(opt, C.NBD_REP_ERR_INVALID, 'Invalid request');
      return;
    }
    if (name.s !== this.#e.name) {
      this.#replyErr(opt, C.NBD_REP_ERR_UNKNOWN, `export '${name.s}' not present`);
      return;
    }
    const offered = this.#offered();
    const chosen = new Map<string, number>();
    if (queries.length === 0 && opt === C.NBD_OPT_LIST_META_CONTEXT) for (const [k, v] of offered) chosen.set(k, v);
    for (const q of queries) {
      for (const [k, v] of offered) {
        // "base:" and "qemu:" list a namespace; "qemu:dirty-bitmap:" the bitmaps (LIST only).
        const prefix = opt === C.NBD_OPT_LIST_META_CONTEXT && (q === 'base:' || q === 'qemu:' || q === 'qemu:dirty-bitmap:') && k.startsWith(q);
        if (k === q || prefix) chosen.set(k, v);
      }
    }
    for (const [k, v] of chosen) {
      const nm = Buffer.from(k, 'utf8');
      const d = Buffer.alloc(4 + nm.length);
      d.writeUInt32BE(v, 0);
      nm.copy(d, 4);
      this.#reply(opt, C.NBD_REP_META_CONTEXT, d);
    }
    if (opt === C.NBD_OPT_SET_META_CONTEXT) this.#contexts = [...chosen.values()];
    this.#reply(opt, C.NBD_REP_ACK);
  }

  // --- transmission ---------------------------------------------------------------------------

  async #transmission(): Promise<void> {
    const r = this.#reader;
    /** A request header read ahead that did not join a batch of reads: handled next. */
    let ahead: Buffer | undefined;
    for (;;) {
      if (this.#stopping) return;
      // At most MAX_INFLIGHT requests of a client at once: the next is read when one finishes
      // (32 MiB reads cannot pile up in memory).
      while (this.#inflight.size >= MAX_INFLIGHT) await Promise.race(this.#inflight);
      const h = ahead ?? (await r.read(28));
      ahead = undefined;
      if (h.readUInt32BE(0) !== C.NBD_REQUEST_MAGIC) throw new Disconnect('Bad request magic');
      const { flags, type, handle, offset, length } = parseRequest(h);
      if (type === C.NBD_CMD_READ && this.#batchable(offset, length) && r.buffered >= 28) {
        const batch: BatchedRead[] = [{ handle, offset, length }];
        let end = offset + length;
        while (r.buffered >= 28 && batch.length < BATCH_MAX) {
          const n = await r.read(28);
          // Not a READ right after the batch (or not a request at all): handled next, on its own.
          const next = n.readUInt32BE(0) === C.NBD_REQUEST_MAGIC ? parseRequest(n) : undefined;
          if (!next || next.type !== C.NBD_CMD_READ || next.offset !== end || end - offset + next.length > BATCH_BYTES || !this.#batchable(next.offset, next.length)) {
            ahead = n;
            break;
          }
          batch.push(next);
          end += next.length;
        }
        if (batch.length > 1) {
          const job = this.#readBatch(batch).catch(() => {});
          this.#inflight.add(job);
          void job.finally(() => this.#inflight.delete(job));
          continue;
        }
      }
      let payload: Buffer | undefined;
      if (type === C.NBD_CMD_WRITE) {
        // A payload we cannot take leaves the stream unparseable: disconnect (as QEMU does).
        if (length > C.NBD_MAX_BUFFER_SIZE) throw new Disconnect('write too large');
        payload = await r.read(length);
      }
      if (type === C.NBD_CMD_DISC) return;
      const job = this.#handle(type, flags, handle, offset, length, payload).catch(() => {});
      this.#inflight.add(job);
      void job.finally(() => this.#inflight.delete(job));
    }
  }

  /** A READ that may join a batch: inside the export, pooled-size, batch-size at most. */
  #batchable(offset: number, length: number): boolean {
    const size = this.#e.node.size;
    return length >= POOLED_READ && length <= BATCH_BYTES && offset <= size && length <= size - offset;
  }

  /** Adjacent READs read in one request, each answered from its view of the buffer; if the
   *  one read fails, each request is served on its own (and fails or succeeds in its words). */
  async #readBatch(batch: BatchedRead[]): Promise<void> {
    const first = batch[0]!;
    const total = batch.reduce((n, b) => n + b.length, 0);
    const buf = this.#take(BATCH_BYTES);
    try {
      await this.#e.node.readInto(first.offset, buf.subarray(0, total));
    } catch {
      this.#release(buf);
      await Promise.all(batch.map((b) => this.#handle(C.NBD_CMD_READ, 0, b.handle, b.offset, b.length)));
      return;
    }
    const parts: Buffer[] = [];
    let at = 0;
    for (const b of batch) {
      parts.push(this.#readReplyHead(b.handle, b.offset, b.length), buf.subarray(at, at + b.length));
      at += b.length;
    }
    await this.#sendData(parts, buf);
  }

  /** The header of a READ's reply: a simple reply, or a structured OFFSET_DATA chunk. */
  #readReplyHead(handle: Buffer, offset: number, length: number): Buffer {
    if (!this.#structured) {
      const head = Buffer.alloc(16);
      head.writeUInt32BE(C.NBD_SIMPLE_REPLY_MAGIC, 0);
      handle.copy(head, 8);
      return head;
    }
    // The chunk header and the offset of NBD_REPLY_TYPE_OFFSET_DATA, then the data.
    const head = Buffer.allocUnsafe(28);
    this.#putChunkHeader(head, handle, C.NBD_REPLY_FLAG_DONE, C.NBD_REPLY_TYPE_OFFSET_DATA, 8 + length);
    putU64(head, 20, offset);
    return head;
  }

  #simple(handle: Buffer, err: number, data?: Buffer): void {
    const h = Buffer.alloc(16);
    h.writeUInt32BE(C.NBD_SIMPLE_REPLY_MAGIC, 0);
    h.writeUInt32BE(err, 4);
    handle.copy(h, 8);
    this.#send(data ? [h, data] : [h]);
  }

  #chunkHeader(handle: Buffer, flags: number, type: number, len: number): Buffer {
    return this.#putChunkHeader(Buffer.allocUnsafe(20), handle, flags, type, len);
  }

  /** A structured reply chunk header (20 bytes) at the start of `h`. */
  #putChunkHeader(h: Buffer, handle: Buffer, flags: number, type: number, len: number): Buffer {
    h.writeUInt32BE(C.NBD_STRUCTURED_REPLY_MAGIC, 0);
    h.writeUInt16BE(flags, 4);
    h.writeUInt16BE(type, 6);
    handle.copy(h, 8);
    h.writeUInt32BE(len, 16);
    return h;
  }

  #error(handle: Buffer, err: number, message = ''): void {
    if (!this.#structured) {
      this.#simple(handle, err);
      return;
    }
    const m = Buffer.from(message, 'utf8');
    const d = Buffer.alloc(6 + m.length);
    d.writeUInt32BE(err, 0);
    d.writeUInt16BE(m.length, 4);
    m.copy(d, 6);
    this.#send([this.#chunkHeader(handle, C.NBD_REPLY_FLAG_DONE, C.NBD_REPLY_TYPE_ERROR, d.length), d]);
  }

  #ok(handle: Buffer): void {
    if (this.#structured) this.#send([this.#chunkHeader(handle, C.NBD_REPLY_FLAG_DONE, C.NBD_REPLY_TYPE_NONE, 0)]);
    else this.#simple(handle, 0);
  }

  async #handle(type: number, flags: number, handle: Buffer, offset: number, length: number, payload?: Buffer): Promise<void> {
    const node = this.#e.node;
    const size = node.size;
    const known = [C.NBD_CMD_READ, C.NBD_CMD_WRITE, C.NBD_CMD_FLUSH, C.NBD_CMD_TRIM, C.NBD_CMD_WRITE_ZEROES, C.NBD_CMD_BLOCK_STATUS, C.NBD_CMD_CACHE];
    if (!known.includes(type)) return this.#error(handle, C.NBD_EINVAL, `unsupported command ${type}`);
    if (type !== C.NBD_CMD_FLUSH && (offset > size || length > size - offset)) {
      return this.#error(handle, C.NBD_EINVAL, 'request out of bounds');
    }
    const writes = type === C.NBD_CMD_WRITE || type === C.NBD_CMD_TRIM || type === C.NBD_CMD_WRITE_ZEROES;
    if (writes && this.#e.readOnly) return this.#error(handle, C.NBD_EPERM, 'export is read-only');
    try {
      switch (type) {
        case C.NBD_CMD_READ: {
          if (length > C.NBD_MAX_BUFFER_SIZE) return this.#error(handle, C.NBD_EINVAL, 'read too large');
          const pooled = length >= POOLED_READ;
          let data: Buffer;
          if (pooled) {
            data = this.#take(length);
            try {
              await node.readInto(offset, data);
            } catch (e) {
              this.#release(data);
              throw e;
            }
          } else data = length === 0 ? Buffer.alloc(0) : await node.read(offset, length);
          return this.#sendData([this.#readReplyHead(handle, offset, length), data], pooled ? data : undefined);
        }
        case C.NBD_CMD_WRITE: {
          const fua = (flags & C.NBD_CMD_FLAG_FUA) !== 0;
          if (this.#e.detectZeroes !== 'off' && payload!.length > 0 && isZero(payload!)) {
            await node.writeZeroes(offset, length, { mayUnmap: this.#e.detectZeroes === 'unmap' });
            if (fua) await node.flush();
          } else await node.write(offset, payload!, { fua });
          return this.#ok(handle);
        }
        case C.NBD_CMD_FLUSH:
          await node.flush();
          return this.#ok(handle);
        case C.NBD_CMD_CACHE:
          return this.#ok(handle);
        case C.NBD_CMD_TRIM:
          if (this.#e.discard === 'unmap' && length > 0) await node.discard(offset, length);
          if (flags & C.NBD_CMD_FLAG_FUA) await node.flush();
          return this.#ok(handle);
        case C.NBD_CMD_WRITE_ZEROES:
          // FAST_ZERO is BDRV_REQ_NO_FALLBACK (qemu-nbd): ENOTSUP where zeroing would be slow.
          if (length > 0) {
            const mayUnmap = (flags & C.NBD_CMD_FLAG_NO_HOLE) === 0 && this.#e.discard === 'unmap';
            await node.writeZeroes(offset, length, { mayUnmap, ...((flags & C.NBD_CMD_FLAG_FAST_ZERO) !== 0 ? { noFallback: true } : {}) });
          }
          if (flags & C.NBD_CMD_FLAG_FUA) await node.flush();
          return this.#ok(handle);
        case C.NBD_CMD_BLOCK_STATUS:
          return await this.#blockStatus(handle, flags, offset, length);
      }
    } catch (e) {
      this.#error(handle, errnoOf(e), e instanceof Error ? e.message.slice(0, 1000) : 'error');
    }
  }

  async #blockStatus(handle: Buffer, flags: number, offset: number, length: number): Promise<void> {
    if (!this.#structured || this.#contexts.length === 0) return this.#error(handle, C.NBD_EINVAL, 'need metadata contexts first');
    if (length === 0) return this.#error(handle, C.NBD_EINVAL, 'zero length');
    const one = (flags & C.NBD_CMD_FLAG_REQ_ONE) !== 0;
    const node = this.#e.node;
    const chunks: Buffer[] = [];
    for (let i = 0; i < this.#contexts.length; i++) {
      const id = this.#contexts[i]!;
      const extents: [number, number][] = [];
      let at = offset;
      const end = offset + length;
      while (at < end && extents.length < (one ? 1 : MAX_EXTENTS)) {
        let len: number;
        let f: number;
        if (id === CTX_BITMAP) {
          const bits = this.#e.bitmap!.bits;
          const g = bits.granularity;
          const dirty = bits.isSet(Math.floor(at / g));
          let e = Math.min(end, (Math.floor(at / g) + 1) * g);
          while (e < end && bits.isSet(Math.floor(e / g)) === dirty) e = Math.min(end, e + g);
          len = e - at;
          f = dirty ? C.NBD_STATE_DIRTY : 0;
        } else {
          const st = await blockStatusAbove(node, at, Math.min(end - at, 0x7fffffff - 0x7fffffff % Math.max(1, node.alignment ?? 1)));
          len = st.length;
          f = id === CTX_BASE ? (st.data ? 0 : C.NBD_STATE_HOLE) | (st.zero ? C.NBD_STATE_ZERO : 0) : st.allocated ? st.depth + 1 : 0;
        }
        if (len <= 0) break;
        const last = extents[extents.length - 1];
        if (last && last[1] === f && !one) last[0] += len;
        else extents.push([len, f]);
        at += len;
      }
      const d = Buffer.alloc(4 + 8 * extents.length);
      d.writeUInt32BE(id, 0);
      extents.forEach(([l, fl], k) => {
        d.writeUInt32BE(l, 4 + 8 * k);
        d.writeUInt32BE(fl, 8 + 8 * k);
      });
      const done = i === this.#contexts.length - 1 ? C.NBD_REPLY_FLAG_DONE : 0;
      chunks.push(this.#chunkHeader(handle, done, C.NBD_REPLY_TYPE_BLOCK_STATUS, d.length), d);
    }
    this.#send([Buffer.concat(chunks)]);
  }
}

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

// One NBD client connection (proto.md; QEMU's nbd/client.c for the order of the handshake and
// its messages): connect, fixed-newstyle handshake (STARTTLS, STRUCTURED_REPLY,
// SET_META_CONTEXT, GO with INFO_BLOCK_SIZE, falling back to EXPORT_NAME), then requests sent
// concurrently and matched to replies by handle, simple or structured. Every read from the peer is
// bounded by the connection's end and an inactivity timeout; every field a server sends is
// checked before use, and a broken reply ends the connection with "Protocol error: ...".

import type { Socket } from 'node:net';
import { nodeNet } from '../../host/lazy-node-modules.ts';
import type { Duplex } from 'node:stream';
import { BlockError, invalidArgument, type ErrnoName } from '../../errors.ts';
import * as C from './constants.ts';
import { ExactReader, PeerClosed, PeerTimeout, putU64, u64, writeAll } from './wire.ts';
import { serverLabel, type NbdServerAddress } from './address.ts';

/** Messages of glibc strerror for the errnos NBD carries (and a few socket ones). */
const ERRNO_TEXT: Record<string, string> = {
  EPERM: 'Operation not permitted',
  EIO: 'Input/output error',
  ENOMEM: 'Cannot allocate memory',
  EINVAL: 'Invalid argument',
  ENOSPC: 'No space left on device',
  EOVERFLOW: 'Value too large for defined data type',
  ENOTSUP: 'Operation not supported',
  ESHUTDOWN: 'Cannot send after transport endpoint shutdown',
  ECONNREFUSED: 'Connection refused',
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  ECONNRESET: 'Connection reset by peer',
  ETIMEDOUT: 'Connection timed out',
  EHOSTUNREACH: 'No route to host',
  ENETUNREACH: 'Network is unreachable',
  ENOTSOCK: 'Socket operation on non-socket',
  ENOTDIR: 'Not a directory',
  EADDRNOTAVAIL: 'Cannot assign requested address',
};

export function nbdErrnoError(err: number, context: { path?: string; offset?: number; op?: string } = {}): BlockError {
  const name = C.NBD_ERRORS[err] ?? 'EINVAL';
  const kind = name === 'EPERM' ? 'Permission' : name === 'ENOTSUP' ? 'Unsupported' : name === 'EINVAL' ? 'InvalidArgument' : 'Io';
  const known = name === 'EIO' || name === 'EINVAL' || name === 'ENOSPC' ? ({ errno: name as ErrnoName } as const) : undefined;
  return new BlockError(kind, ERRNO_TEXT[name] ?? 'Invalid argument', context, known);
}

/** A failure that ends the connection (broken server, closed socket): requests fail with EIO. */
function ioError(context: { path?: string; op?: string; offset?: number }, cause?: unknown): BlockError {
  return new BlockError('Io', 'Input/output error', context, { errno: 'EIO', cause });
}

export interface NbdConnectOptions {
  server: NbdServerAddress;
  exportName: string;
  /** Meta contexts to ask for (structured replies only): "base:allocation", ... */
  metaContexts: readonly string[];
  /** TLS, when the user named tls-creds: an upgrade of the raw socket to a TLS one. */
  tls?: (socket: Duplex) => Promise<Duplex>;
  /** Bound on connect and on each handshake read; while requests are outstanding, on silence. */
  timeoutMs: number;
  /** Label for messages (the image's name). */
  label: string;
}

export interface NbdExportInfo {
  size: number;
  flags: number;
  minBlock: number;
  prefBlock: number;
  maxBlock: number;
  structured: boolean;
  /** Negotiated meta contexts: name -> id. */
  contexts: Map<string, number>;
}

interface Pending {
  type: number;
  offset: number;
  length: number;
  /** READ: where the data goes. */
  buf?: Buffer;
  /** BLOCK_STATUS: extents per context id. */
  extents?: Map<number, { length: number; flags: number }[]>;
  error?: BlockError;
  resolve: (p: Pending) => void;
  reject: (e: BlockError) => void;
}

/** Connect a socket, with QEMU's "Failed to connect to 'X': <strerror>" and
 *  "address resolution failed for H:P: ..." wording. */
async function openSocket(server: NbdServerAddress, timeoutMs: number): Promise<Socket> {
  const label = serverLabel(server);
  return new Promise<Socket>((resolve, reject) => {
    let sock: Socket;
    if (server.type === 'unix') sock = nodeNet().connect({ path: server.path });
    else {
      const port = Number(server.port);
      if (!/^\d+$/.test(server.port) || port > 65535) {
        reject(invalidArgument(`address resolution failed for ${server.host}:${server.port}: Servname not supported for ai_socktype`));
        return;
      }
      sock = nodeNet().connect({ host: server.host, port });
    }
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new BlockError('Io', `Failed to connect to '${label}': Connection timed out`));
    }, timeoutMs);
    timer.unref?.();
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.removeAllListeners('error');
      sock.setNoDelay(true);
      resolve(sock);
    });
    sock.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      sock.destroy();
      if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN' || e.code === 'EAI_NONAME') {
        reject(new BlockError('Io', `address resolution failed for ${label}: ${e.code === 'EAI_AGAIN' ? 'Temporary failure in name resolution' : 'Name or service not known'}`));
        return;
      }
      const text = (e.code && ERRNO_TEXT[e.code]) ?? e.message;
      const kind = e.code === 'ENOENT' ? 'NotFound' : e.code === 'EACCES' ? 'Permission' : 'Io';
      reject(new BlockError(kind, `Failed to connect to '${label}': ${text}`));
    });
  });
}

/** A handshake failure: the message QEMU's client gives (nbd/client.c). */
class HandshakeError extends Error {
  hint?: string;
  notFound?: boolean;
  constructor(message: string, hint?: string, notFound?: boolean) {
    super(message);
    if (hint !== undefined) this.hint = hint;
    if (notFound) this.notFound = true;
  }
}

/** The reply of one option, read in full (header checked, payload bounded). */
interface OptReply {
  type: number;
  data: Buffer;
}

/** Longest option reply payload accepted (QEMU: NBD_MAX_BUFFER_SIZE). */
const MAX_OPT_REPLY = 1 << 20;

export class NbdClient {
  readonly info: NbdExportInfo;
  #stream: Duplex;
  #reader: ExactReader;
  #pending = new Map<number, Pending>();
  #nextHandle = 1;
  #dead: BlockError | undefined;
  #closing = false;
  #label: string;
  #timeoutMs: number;
  #loop: Promise<void> | undefined;

  private constructor(stream: Duplex, reader: ExactReader, info: NbdExportInfo, label: string, timeoutMs: number) {
    this.#stream = stream;
    this.#reader = reader;
    this.info = info;
    this.#label = label;
    this.#timeoutMs = timeoutMs;
    this.#reader.setTimeout(0);
  }

  static async connect(o: NbdConnectOptions): Promise<NbdClient> {
    const sock = await openSocket(o.server, o.timeoutMs);
    let stream: Duplex = sock;
    const reader = new ExactReader(sock);
    reader.setTimeout(o.timeoutMs);
    try {
      const r = await handshake(sock, reader, o, (s) => {
        stream = s;
      });
      const client = new NbdClient(stream, reader, r, o.label, o.timeoutMs);
      client.#loop = client.#receiveLoop();
      return client;
    } catch (e) {
      reader.detach();
      stream.destroy();
      sock.destroy();
      if (e instanceof BlockError) throw e;
      if (e instanceof HandshakeError) {
        throw new BlockError(e.notFound ? 'NotFound' : 'Io', e.message, {}, e.hint !== undefined ? { hint: e.hint } : undefined);
      }
      if (e instanceof PeerClosed || e instanceof PeerTimeout) {
        // QEMU: "Failed to read initial magic: Unexpected end-of-file before all data were read".
        throw new BlockError('Io', e instanceof PeerTimeout ? `Timed out waiting for the NBD server at '${serverLabel(o.server)}' during the handshake` : `Server '${serverLabel(o.server)}' closed the connection during the NBD handshake`);
      }
      const err = e as NodeJS.ErrnoException;
      throw new BlockError('Io', `NBD handshake with '${serverLabel(o.server)}' failed: ${(err.code && ERRNO_TEXT[err.code]) ?? err.message}`);
    }
  }

  get dead(): boolean {
    return this.#dead !== undefined;
  }

  /** Send one request; resolves with its record when the reply is complete. */
  #request(type: number, flags: number, offset: number, length: number, payload?: Buffer, into?: Buffer): Promise<Pending> {
    if (this.#dead) return Promise.reject(this.#dead);
    const handle = this.#nextHandle++;
    return new Promise<Pending>((resolve, reject) => {
      const p: Pending = { type, offset, length, resolve, reject };
      if (type === C.NBD_CMD_READ) p.buf = into ?? Buffer.alloc(length);
      if (type === C.NBD_CMD_BLOCK_STATUS) p.extents = new Map();
      this.#pending.set(handle, p);
      const h = Buffer.alloc(28);
      h.writeUInt32BE(C.NBD_REQUEST_MAGIC, 0);
      h.writeUInt16BE(flags, 4);
      h.writeUInt16BE(type, 6);
      putU64(h, 8, handle);
      putU64(h, 16, offset);
      h.writeUInt32BE(length >>> 0, 24);
      if (this.#pending.size === 1) this.#reader.setTimeout(this.#timeoutMs);
      writeAll(this.#stream, payload ? [h, payload] : h).catch((e) => this.#kill(ioError({ path: this.#label, op: 'send' }, e)));
    });
  }

  #kill(e: BlockError): void {
    if (this.#dead) return;
    this.#dead = e;
    this.#reader.fail(new PeerClosed());
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
    this.#stream.destroy();
  }

  #protocolError(message: string): never {
    throw new HandshakeError(`Protocol error: ${message}`);
  }

  async #receiveLoop(): Promise<void> {
    const r = this.#reader;
    try {
      for (;;) {
        const magicBuf = await r.read(4);
        const magic = magicBuf.readUInt32BE(0);
        if (magic === C.NBD_SIMPLE_REPLY_MAGIC) {
          const rest = await r.read(12);
          const err = rest.readUInt32BE(0);
          const handle = u64(rest, 4);
          const p = this.#pending.get(handle);
          if (!p) this.#protocolError(`server sent a reply with unexpected handle ${handle}`);
          if (this.info.structured && (p.type === C.NBD_CMD_READ || p.type === C.NBD_CMD_BLOCK_STATUS) && err === 0) {
            this.#protocolError('simple reply when structured reply chunk was expected');
          }
          if (p.type === C.NBD_CMD_BLOCK_STATUS && !this.info.structured) this.#protocolError('block status reply without structured replies');
          if (err === 0 && p.type === C.NBD_CMD_READ) await r.readInto(p.buf!.subarray(0, p.length));
          this.#pending.delete(handle);
          if (err !== 0) p.reject(nbdErrnoError(err, { path: this.#label, offset: p.offset }));
          else p.resolve(p);
        } else if (magic === C.NBD_STRUCTURED_REPLY_MAGIC && this.info.structured) {
          const hdr = await r.read(16);
          const flags = hdr.readUInt16BE(0);
          const type = hdr.readUInt16BE(2);
          const handle = u64(hdr, 4);
          const len = hdr.readUInt32BE(12);
          const p = this.#pending.get(handle);
          if (!p) this.#protocolError(`server sent a reply with unexpected handle ${handle}`);
          const limit = p.type === C.NBD_CMD_READ ? p.length + 8 : p.type === C.NBD_CMD_BLOCK_STATUS ? 4 + 8 * 65536 : 0;
          if (len > Math.max(limit, 4 + 2 + C.NBD_MAX_STRING_SIZE + 8)) this.#protocolError('Payload too large');
          if (type === C.NBD_REPLY_TYPE_OFFSET_DATA && p.type === C.NBD_CMD_READ && len >= 8) {
            // The data go straight from the socket's chunks into the reader's buffer.
            const off = u64(await r.read(8), 0);
            const n = len - 8;
            if (off < p.offset || off + n > p.offset + p.length) this.#protocolError('server sent chunk exceeding requested region');
            await r.readInto(p.buf!.subarray(off - p.offset, off - p.offset + n));
          } else {
            const payload = await r.read(len);
            this.#chunk(p, flags, type, payload);
          }
          if (flags & C.NBD_REPLY_FLAG_DONE) {
            this.#pending.delete(handle);
            if (p.error) p.reject(p.error);
            else p.resolve(p);
          }
        } else {
          this.#protocolError(`invalid magic 0x${magic.toString(16)} in reply`);
        }
        if (this.#pending.size === 0) r.setTimeout(0);
      }
    } catch (e) {
      if (this.#closing) {
        this.#kill(ioError({ path: this.#label }));
        return;
      }
      // A server that closed, timed out or broke the protocol: every request fails with EIO, and
      // the reason is told once, as QEMU's client reports it on stderr.
      const code = (e as NodeJS.ErrnoException).code;
      const why = e instanceof PeerClosed ? 'Connection closed' : e instanceof PeerTimeout ? 'Connection timed out' : code && ERRNO_TEXT[code] ? ERRNO_TEXT[code]! : (e as Error).message;
      if (this.#pending.size > 0 || !(e instanceof PeerClosed)) this.onDisconnect?.(why);
      this.#kill(ioError({ path: this.#label }, e));
    }
  }

  /** Told once when the connection breaks while in use (the driver warns with it). */
  onDisconnect?: (why: string) => void;

  /** One structured reply chunk for `p` (proto.md "Structured reply types"). */
  #chunk(p: Pending, flags: number, type: number, data: Buffer): void {
    switch (type) {
      case C.NBD_REPLY_TYPE_NONE:
        if (!(flags & C.NBD_REPLY_FLAG_DONE)) this.#protocolError('NBD_REPLY_TYPE_NONE chunk without NBD_REPLY_FLAG_DONE flag');
        if (data.length !== 0) this.#protocolError('NBD_REPLY_TYPE_NONE chunk with nonzero length');
        return;
      case C.NBD_REPLY_TYPE_OFFSET_DATA: {
        if (p.type !== C.NBD_CMD_READ) this.#protocolError('Unexpected NBD_REPLY_TYPE_OFFSET_DATA chunk');
        if (data.length < 8) this.#protocolError('invalid payload for NBD_REPLY_TYPE_OFFSET_DATA');
        const off = u64(data, 0);
        const n = data.length - 8;
        if (off < p.offset || off + n > p.offset + p.length) this.#protocolError('server sent chunk exceeding requested region');
        data.copy(p.buf!, off - p.offset, 8);
        return;
      }
      case C.NBD_REPLY_TYPE_OFFSET_HOLE: {
        if (p.type !== C.NBD_CMD_READ) this.#protocolError('Unexpected NBD_REPLY_TYPE_OFFSET_HOLE chunk');
        if (data.length !== 12) this.#protocolError('invalid payload for NBD_REPLY_TYPE_OFFSET_HOLE');
        const off = u64(data, 0);
        const n = data.readUInt32BE(8);
        if (n === 0 || off < p.offset || off + n > p.offset + p.length) this.#protocolError('server sent chunk exceeding requested region');
        p.buf!.fill(0, off - p.offset, off - p.offset + n);
        return;
      }
      case C.NBD_REPLY_TYPE_BLOCK_STATUS: {
        if (p.type !== C.NBD_CMD_BLOCK_STATUS) this.#protocolError('Unexpected NBD_REPLY_TYPE_BLOCK_STATUS chunk');
        if (data.length < 12 || (data.length - 4) % 8 !== 0) this.#protocolError('invalid payload for NBD_REPLY_TYPE_BLOCK_STATUS');
        const id = data.readUInt32BE(0);
        if (![...this.info.contexts.values()].includes(id)) this.#protocolError(`unexpected context id ${id} for NBD_REPLY_TYPE_BLOCK_STATUS`);
        const list: { length: number; flags: number }[] = [];
        for (let i = 4; i < data.length; i += 8) list.push({ length: data.readUInt32BE(i), flags: data.readUInt32BE(i + 4) });
        if (list[0]!.length === 0) this.#protocolError('server sent status chunk with zero length');
        p.extents!.set(id, list);
        return;
      }
      default:
        if (type & 0x8000) {
          // NBD_REPLY_TYPE_ERROR(_OFFSET) and unknown error types: u32 error, u16 message length.
          if (data.length < 6) this.#protocolError('invalid payload for error chunk');
          const err = data.readUInt32BE(0);
          const mlen = data.readUInt16BE(4);
          if (6 + mlen > data.length) this.#protocolError('invalid payload for error chunk');
          if (err === 0) this.#protocolError('server sent structured error chunk with error = 0');
          let at = p.offset;
          if (type === C.NBD_REPLY_TYPE_ERROR_OFFSET) {
            if (data.length !== 6 + mlen + 8) this.#protocolError('invalid payload for NBD_REPLY_TYPE_ERROR_OFFSET');
            at = u64(data, 6 + mlen);
            if (at < p.offset || at >= p.offset + Math.max(p.length, 1)) this.#protocolError('server sent error offset outside of the request');
          }
          p.error ??= nbdErrnoError(err, { path: this.#label, offset: at });
          return;
        }
        this.#protocolError(`unexpected structured reply chunk type ${type}`);
    }
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const p = await this.#request(C.NBD_CMD_READ, 0, offset, length, undefined, into);
    return p.buf!;
  }

  async write(offset: number, data: Buffer, fua: boolean): Promise<void> {
    await this.#request(C.NBD_CMD_WRITE, fua ? C.NBD_CMD_FLAG_FUA : 0, offset, data.length, data);
  }

  async writeZeroes(offset: number, length: number, flags: number): Promise<void> {
    await this.#request(C.NBD_CMD_WRITE_ZEROES, flags, offset, length);
  }

  async trim(offset: number, length: number): Promise<void> {
    await this.#request(C.NBD_CMD_TRIM, 0, offset, length);
  }

  async flush(): Promise<void> {
    await this.#request(C.NBD_CMD_FLUSH, 0, 0, 0);
  }

  /** BLOCK_STATUS with REQ_ONE: the first extent of each negotiated context. */
  async blockStatus(offset: number, length: number): Promise<Map<number, { length: number; flags: number }[]>> {
    const p = await this.#request(C.NBD_CMD_BLOCK_STATUS, C.NBD_CMD_FLAG_REQ_ONE, offset, length);
    for (const id of this.info.contexts.values()) {
      if (!p.extents!.has(id)) this.#failLater('Server did not reply with any status extents');
    }
    return p.extents!;
  }

  #failLater(message: string): never {
    const e = ioError({ path: this.#label });
    this.onDisconnect?.(`Protocol error: ${message}`);
    this.#kill(e);
    throw e;
  }

  /** NBD_CMD_DISC, then close. Never throws. */
  async close(): Promise<void> {
    if (this.#dead) return;
    this.#closing = true;
    const h = Buffer.alloc(28);
    h.writeUInt32BE(C.NBD_REQUEST_MAGIC, 0);
    h.writeUInt16BE(C.NBD_CMD_DISC, 6);
    putU64(h, 8, this.#nextHandle++);
    await writeAll(this.#stream, h).catch(() => {});
    await new Promise<void>((resolve) => this.#stream.end(() => resolve()));
    this.#kill(ioError({ path: this.#label }));
    await this.#loop?.catch(() => {});
  }
}

/** Send one option request. */
function sendOption(stream: Duplex, opt: number, data: Buffer = Buffer.alloc(0)): Promise<void> {
  const h = Buffer.alloc(16);
  putU64(h, 0, 0); // written below as a bigint
  h.writeBigUInt64BE(C.NBD_OPTS_MAGIC, 0);
  h.writeUInt32BE(opt, 8);
  h.writeUInt32BE(data.length, 12);
  return writeAll(stream, [h, data]);
}

async function readOptReply(reader: ExactReader, opt: number): Promise<OptReply> {
  const h = await reader.read(20);
  if (h.readBigUInt64BE(0) !== C.NBD_REP_MAGIC) throw new HandshakeError(`Unexpected option reply magic`);
  const o = h.readUInt32BE(8);
  if (o !== opt) throw new HandshakeError(`Unexpected option type ${o}, expected ${opt} (${C.optName(opt)})`);
  const type = h.readUInt32BE(12);
  const len = h.readUInt32BE(16);
  if (len > MAX_OPT_REPLY) throw new HandshakeError(`server's reply to option ${opt} (${C.optName(opt)}) is too long`);
  const data = await reader.read(len);
  return { type, data };
}

/** An error reply to an option, as QEMU's nbd_handle_reply_err words it (the server's own text
 *  as the hint "server reported: ..."). */
function optionError(opt: number, r: OptReply): HandshakeError {
  const what = `option ${opt} (${C.optName(opt)})`;
  const msg = r.data.length > 0 && r.data.length <= C.NBD_MAX_STRING_SIZE ? r.data.toString('utf8') : '';
  const hint = msg ? `server reported: ${msg}\n` : undefined;
  switch (r.type) {
    case C.NBD_REP_ERR_POLICY:
      return new HandshakeError(`Denied by server for ${what}`, hint);
    case C.NBD_REP_ERR_INVALID:
      return new HandshakeError(`Invalid parameters for ${what}`, hint);
    case C.NBD_REP_ERR_PLATFORM:
      return new HandshakeError(`Server lacks support for ${what}`, hint);
    case C.NBD_REP_ERR_TLS_REQD:
      return new HandshakeError(`TLS negotiation required before ${what}`, 'Did you forget a valid tls-creds?\n' + (hint ?? ''));
    case C.NBD_REP_ERR_UNKNOWN:
      return new HandshakeError('Requested export not available', hint, true);
    case C.NBD_REP_ERR_SHUTDOWN:
      return new HandshakeError(`Server shutting down before ${what}`, hint);
    case C.NBD_REP_ERR_BLOCK_SIZE_REQD:
      return new HandshakeError(`Server requires INFO_BLOCK_SIZE for ${what}`, hint);
    case C.NBD_REP_ERR_TOO_BIG:
      return new HandshakeError(`${C.optName(opt)} too large for server`, hint);
    case C.NBD_REP_ERR_UNSUP:
      return new HandshakeError(`Unsupported ${what}`, hint);
    default:
      return new HandshakeError(`Unknown error code when asking for ${what}`, hint);
  }
}

/** Send an option without data whose answer is ACK or an error (STARTTLS, STRUCTURED_REPLY):
 *  true for ACK, false for UNSUP (when allowed). */
async function simpleOption(stream: Duplex, reader: ExactReader, opt: number, unsupOk: boolean): Promise<boolean> {
  await sendOption(stream, opt);
  const r = await readOptReply(reader, opt);
  if (r.type === C.NBD_REP_ACK) {
    if (r.data.length !== 0) throw new HandshakeError(`Server sent invalid reply to ${C.optName(opt)}`);
    return true;
  }
  if (r.type & C.NBD_REP_FLAG_ERROR) {
    // Not strict (QEMU's STRUCTURED_REPLY request): any refusal means "without".
    if (unsupOk) return false;
    throw optionError(opt, r);
  }
  throw new HandshakeError(`Unexpected reply type ${r.type} for ${C.optName(opt)}`);
}

function stringPayload(...parts: (string | Buffer | number)[]): Buffer {
  return Buffer.concat(parts.map((p) => {
    if (typeof p === 'number') {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(p);
      return b;
    }
    return typeof p === 'string' ? Buffer.from(p, 'utf8') : p;
  }));
}

async function handshake(sock: Socket, reader: ExactReader, o: NbdConnectOptions, setStream: (s: Duplex) => void): Promise<NbdExportInfo> {
  let stream: Duplex = sock;
  const first = await reader.read(16);
  if (first.readBigUInt64BE(0) !== C.NBD_INIT_MAGIC) throw new HandshakeError('Invalid magic received');
  const magic = first.readBigUInt64BE(8);
  const info: NbdExportInfo = { size: 0, flags: 0, minBlock: 0, prefBlock: 0, maxBlock: 0, structured: false, contexts: new Map() };
  if (magic === C.NBD_CLISERV_MAGIC) {
    // Oldstyle: size, flags, 124 bytes of zeros; no export names, no TLS.
    if (o.tls) throw new HandshakeError('Server does not support STARTTLS');
    if (o.exportName !== '') throw new HandshakeError('Server does not support non-empty export names');
    const rest = await reader.read(8 + 4 + 124);
    info.size = u64(rest, 0);
    info.flags = rest.readUInt32BE(8) & 0xffff;
    return checkInfo(info);
  }
  if (magic !== C.NBD_OPTS_MAGIC) throw new HandshakeError(`Bad server magic received: 0x${magic.toString(16)}`);
  const hsFlags = (await reader.read(2)).readUInt16BE(0);
  const fixed = (hsFlags & C.NBD_FLAG_FIXED_NEWSTYLE) !== 0;
  const noZeroes = (hsFlags & C.NBD_FLAG_NO_ZEROES) !== 0;
  const cflags = Buffer.alloc(4);
  cflags.writeUInt32BE((fixed ? C.NBD_FLAG_C_FIXED_NEWSTYLE : 0) | (noZeroes ? C.NBD_FLAG_C_NO_ZEROES : 0));
  await writeAll(stream, cflags);
  if (o.tls) {
    if (!fixed) throw new HandshakeError('Server does not support STARTTLS');
    await simpleOption(stream, reader, C.NBD_OPT_STARTTLS, false);
    if (reader.buffered > 0) throw new HandshakeError('Protocol error: data after the STARTTLS acknowledgement');
    reader.detach();
    stream = await o.tls(sock);
    reader.attach(stream);
    setStream(stream);
  }
  if (fixed) {
    info.structured = await simpleOption(stream, reader, C.NBD_OPT_STRUCTURED_REPLY, true);
    const name = Buffer.from(o.exportName, 'utf8');
    if (info.structured && o.metaContexts.length > 0) {
      // SET_META_CONTEXT: export name, then the queries (proto.md).
      const queries = o.metaContexts.map((q) => Buffer.from(q, 'utf8'));
      const payload = stringPayload(name.length, name, queries.length, ...queries.flatMap((q) => [q.length, q]));
      await sendOption(stream, C.NBD_OPT_SET_META_CONTEXT, payload);
      for (;;) {
        const r = await readOptReply(reader, C.NBD_OPT_SET_META_CONTEXT);
        if (r.type === C.NBD_REP_ACK) break;
        if (r.type === C.NBD_REP_META_CONTEXT) {
          if (r.data.length < 4 || r.data.length > 4 + C.NBD_MAX_STRING_SIZE) throw new HandshakeError('Protocol error: invalid meta context reply');
          const id = r.data.readUInt32BE(0);
          const ctxName = r.data.subarray(4).toString('utf8');
          if (!o.metaContexts.includes(ctxName)) throw new HandshakeError(`Protocol error: server replied with an unexpected meta context '${ctxName}'`);
          info.contexts.set(ctxName, id);
          continue;
        }
        if (r.type & C.NBD_REP_FLAG_ERROR) {
          // UNSUP / an unknown export here is answered again by GO below; others are fatal.
          if (r.type === C.NBD_REP_ERR_UNSUP || r.type === C.NBD_REP_ERR_UNKNOWN) break;
          throw optionError(C.NBD_OPT_SET_META_CONTEXT, r);
        }
        throw new HandshakeError(`Unexpected reply type ${r.type} for ${C.optName(C.NBD_OPT_SET_META_CONTEXT)}`);
      }
    }
    // GO: name, one info request (BLOCK_SIZE: we honour block size limits).
    const req = Buffer.alloc(2 + 2);
    req.writeUInt16BE(1, 0);
    req.writeUInt16BE(C.NBD_INFO_BLOCK_SIZE, 2);
    await sendOption(stream, C.NBD_OPT_GO, stringPayload(name.length, name, req));
    let haveExport = false;
    for (;;) {
      const r = await readOptReply(reader, C.NBD_OPT_GO);
      if (r.type === C.NBD_REP_ACK) break;
      if (r.type === C.NBD_REP_INFO) {
        if (r.data.length < 2) throw new HandshakeError('Protocol error: invalid NBD_REP_INFO');
        const t = r.data.readUInt16BE(0);
        if (t === C.NBD_INFO_EXPORT) {
          if (r.data.length !== 12) throw new HandshakeError(`remaining export info len ${r.data.length - 2} is unexpected size`);
          info.size = u64(r.data, 2);
          info.flags = r.data.readUInt16BE(10);
          haveExport = true;
        } else if (t === C.NBD_INFO_BLOCK_SIZE) {
          if (r.data.length !== 14) throw new HandshakeError(`remaining export info len ${r.data.length - 2} is unexpected size`);
          info.minBlock = r.data.readUInt32BE(2);
          info.prefBlock = r.data.readUInt32BE(6);
          info.maxBlock = r.data.readUInt32BE(10);
        }
        continue;
      }
      if (r.type === C.NBD_REP_ERR_UNSUP) {
        // An older server: NBD_OPT_EXPORT_NAME (no error reply possible; it closes instead).
        if (info.structured) throw new HandshakeError('Server supports structured replies but not NBD_OPT_GO');
        return exportNameOption(stream, reader, name, noZeroes, info);
      }
      if (r.type & C.NBD_REP_FLAG_ERROR) throw optionError(C.NBD_OPT_GO, r);
      throw new HandshakeError(`Unexpected reply type ${r.type} for ${C.optName(C.NBD_OPT_GO)}`);
    }
    if (!haveExport) throw new HandshakeError('broken server omitted NBD_INFO_EXPORT');
    return checkInfo(info);
  }
  return exportNameOption(stream, reader, Buffer.from(o.exportName, 'utf8'), noZeroes, info);
}

async function exportNameOption(stream: Duplex, reader: ExactReader, name: Buffer, noZeroes: boolean, info: NbdExportInfo): Promise<NbdExportInfo> {
  await sendOption(stream, C.NBD_OPT_EXPORT_NAME, name);
  let r: Buffer;
  try {
    r = await reader.read(10 + (noZeroes ? 0 : 124));
  } catch (e) {
    if (e instanceof PeerClosed) throw new HandshakeError('Requested export not available', undefined, true);
    throw e;
  }
  info.size = u64(r, 0);
  info.flags = r.readUInt16BE(8);
  info.structured = false;
  info.contexts.clear();
  return checkInfo(info);
}

/** The export's facts, checked as QEMU's client checks them. */
function checkInfo(info: NbdExportInfo): NbdExportInfo {
  if (info.size > Number.MAX_SAFE_INTEGER) throw new HandshakeError('Protocol error: export size too large');
  const pow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;
  if (info.minBlock || info.prefBlock || info.maxBlock) {
    if (!pow2(info.minBlock) || info.minBlock > 64 * 1024) throw new HandshakeError(`server minimum block size ${info.minBlock} is not a power of two`);
    if (!pow2(info.prefBlock) || info.prefBlock < info.minBlock) throw new HandshakeError(`server preferred block size ${info.prefBlock} is not valid`);
    if (info.maxBlock < info.minBlock || info.maxBlock % info.minBlock !== 0) throw new HandshakeError(`server maximum block size ${info.maxBlock} is not valid`);
  }
  if (!(info.flags & C.NBD_FLAG_HAS_FLAGS)) info.flags = 0;
  return info;
}

/** One export as NBD_OPT_LIST, NBD_OPT_INFO and NBD_OPT_LIST_META_CONTEXT describe it. */
export interface NbdListedExport {
  name: string;
  description: string;
  info: NbdExportInfo;
  contexts: string[];
}

/** QEMU's nbd_receive_export_list (qemu-nbd -L): the exports of a server, each with its facts
 *  and its meta contexts, over one connection ended with NBD_OPT_ABORT. */
export async function listNbdExports(o: Omit<NbdConnectOptions, 'exportName' | 'metaContexts'>): Promise<NbdListedExport[]> {
  const sock = await openSocket(o.server, o.timeoutMs);
  let stream: Duplex = sock;
  const reader = new ExactReader(sock);
  reader.setTimeout(o.timeoutMs);
  try {
    const first = await reader.read(18);
    if (first.readBigUInt64BE(0) !== C.NBD_INIT_MAGIC || first.readBigUInt64BE(8) !== C.NBD_OPTS_MAGIC) throw new HandshakeError('Server does not support export lists');
    const hs = first.readUInt16BE(16);
    if (!(hs & C.NBD_FLAG_FIXED_NEWSTYLE)) throw new HandshakeError('Server does not support export lists');
    const cflags = Buffer.alloc(4);
    cflags.writeUInt32BE(C.NBD_FLAG_C_FIXED_NEWSTYLE | (hs & C.NBD_FLAG_NO_ZEROES ? C.NBD_FLAG_C_NO_ZEROES : 0));
    await writeAll(stream, cflags);
    if (o.tls) {
      await simpleOption(stream, reader, C.NBD_OPT_STARTTLS, false);
      reader.detach();
      stream = await o.tls(sock);
      reader.attach(stream);
    }
    const structured = await simpleOption(stream, reader, C.NBD_OPT_STRUCTURED_REPLY, true);
    await sendOption(stream, C.NBD_OPT_LIST);
    const listed: { name: string; description: string }[] = [];
    for (;;) {
      const r = await readOptReply(reader, C.NBD_OPT_LIST);
      if (r.type === C.NBD_REP_ACK) break;
      if (r.type === C.NBD_REP_SERVER) {
        if (r.data.length < 4) throw new HandshakeError('Protocol error: invalid NBD_REP_SERVER');
        const n = r.data.readUInt32BE(0);
        if (n > r.data.length - 4) throw new HandshakeError('Protocol error: invalid NBD_REP_SERVER');
        listed.push({ name: r.data.subarray(4, 4 + n).toString('utf8'), description: r.data.subarray(4 + n).toString('utf8') });
        continue;
      }
      if (r.type & C.NBD_REP_FLAG_ERROR) throw optionError(C.NBD_OPT_LIST, r);
      throw new HandshakeError(`Unexpected reply type ${r.type} for ${C.optName(C.NBD_OPT_LIST)}`);
    }
    const out: NbdListedExport[] = [];
    for (const e of listed) {
      const name = Buffer.from(e.name, 'utf8');
      const req = Buffer.alloc(4);
      req.writeUInt16BE(1, 0);
      req.writeUInt16BE(C.NBD_INFO_BLOCK_SIZE, 2);
      await sendOption(stream, C.NBD_OPT_INFO, stringPayload(name.length, name, req));
      const info: NbdExportInfo = { size: 0, flags: 0, minBlock: 0, prefBlock: 0, maxBlock: 0, structured, contexts: new Map() };
      for (;;) {
        const r = await readOptReply(reader, C.NBD_OPT_INFO);
        if (r.type === C.NBD_REP_ACK) break;
        if (r.type === C.NBD_REP_INFO && r.data.length >= 2) {
          const t = r.data.readUInt16BE(0);
          if (t === C.NBD_INFO_EXPORT && r.data.length === 12) {
            info.size = u64(r.data, 2);
            info.flags = r.data.readUInt16BE(10);
          } else if (t === C.NBD_INFO_BLOCK_SIZE && r.data.length === 14) {
            info.minBlock = r.data.readUInt32BE(2);
            info.prefBlock = r.data.readUInt32BE(6);
            info.maxBlock = r.data.readUInt32BE(10);
          }
          continue;
        }
        if (r.type & C.NBD_REP_FLAG_ERROR) throw optionError(C.NBD_OPT_INFO, r);
      }
      const contexts: string[] = [];
      if (structured) {
        await sendOption(stream, C.NBD_OPT_LIST_META_CONTEXT, stringPayload(name.length, name, 0));
        for (;;) {
          const r = await readOptReply(reader, C.NBD_OPT_LIST_META_CONTEXT);
          if (r.type === C.NBD_REP_ACK) break;
          if (r.type === C.NBD_REP_META_CONTEXT && r.data.length >= 4) {
            contexts.push(r.data.subarray(4).toString('utf8'));
            continue;
          }
          if (r.type & C.NBD_REP_FLAG_ERROR) break;
        }
      }
      out.push({ name: e.name, description: e.description, info: checkInfo(info), contexts });
    }
    await sendOption(stream, C.NBD_OPT_ABORT).catch(() => {});
    return out;
  } catch (e) {
    if (e instanceof BlockError) throw e;
    if (e instanceof HandshakeError) throw new BlockError('Io', e.message, {}, e.hint !== undefined ? { hint: e.hint } : undefined);
    throw new BlockError('Io', `Server '${serverLabel(o.server)}' closed the connection during the NBD handshake`);
  } finally {
    reader.detach();
    stream.destroy();
    sock.destroy();
  }
}

/** qemu-nbd -L's text for a list (qemu-nbd.c qemu_nbd_client_list). */
export function formatExportList(list: readonly NbdListedExport[]): string {
  const names = ['readonly', 'flush', 'fua', 'rotational', 'trim', 'zeroes', 'df', 'multi', 'resize', 'cache', 'fast-zero'];
  const lines = [`exports available: ${list.length}`];
  for (const e of list) {
    lines.push(` export: '${e.name}'`);
    if (e.description) lines.push(`  description: ${e.description}`);
    lines.push(`  size:  ${e.info.size}`);
    const set = names.filter((_, i) => e.info.flags & (1 << (i + 1)));
    lines.push(`  flags: 0x${e.info.flags.toString(16)} ( ${set.map((n) => `${n} `).join('')})`);
    if (e.info.minBlock) {
      lines.push(`  min block: ${e.info.minBlock}`);
      lines.push(`  opt block: ${e.info.prefBlock}`);
      lines.push(`  max block: ${e.info.maxBlock}`);
    }
    lines.push(`  available meta contexts: ${e.contexts.length}`);
    for (const c of e.contexts) lines.push(`   ${c}`);
  }
  return lines.join('\n') + '\n';
}

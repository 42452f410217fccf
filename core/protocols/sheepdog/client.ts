// One connection to a sheep daemon: requests are sent with increasing ids and their responses
// (which the daemon may send in any order) matched by id, as QEMU's aio_read_response does.
// Every response header is checked against the request it answers before its payload is taken.

import type { Socket } from 'node:net';
import { BlockError } from '../../errors.ts';
import { decodeResponse, encodeRequest, SD_RSP_SIZE, type SdRequest, type SdResponse } from './proto.ts';
import { serverLabel, type SheepdogServer } from './address.ts';
import { ConnectTimeout, connectSocket } from '../../util/connect-socket.ts';

/** Largest payload a response may carry: an inode with its full object table, plus slack. */
const MAX_RESPONSE_DATA = 64 * 1024 * 1024;

interface Pending {
  opcode: number;
  /** Bytes of payload this request may receive back (0: none). */
  maxData: number;
  resolve(r: { rsp: SdResponse; data: Buffer }): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

export function sheepdogTimeoutMs(): number {
  const v = Number(process.env.PLATTER_SHEEPDOG_TIMEOUT_MS);
  return Number.isFinite(v) && v > 0 ? v : 60_000;
}

export class SheepdogClient {
  readonly label: string;
  readonly #sock: Socket;
  readonly #timeoutMs: number;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #dead: Error | undefined;

  private constructor(sock: Socket, label: string, timeoutMs: number) {
    this.#sock = sock;
    this.label = label;
    this.#timeoutMs = timeoutMs;
    sock.on('data', (d: Buffer) => this.#onData(d));
    sock.on('error', (e) => this.#fail(new BlockError('Io', `sheepdog server '${label}': ${e.message}`)));
    sock.on('close', () => this.#fail(new BlockError('Io', `sheepdog server '${label}' closed the connection`)));
  }

  /** Connect (bounded in time), in QEMU's words when the server is not there. */
  static async connect(server: SheepdogServer, timeoutMs = sheepdogTimeoutMs()): Promise<SheepdogClient> {
    const label = serverLabel(server);
    let sock: Socket;
    try {
      sock = await connectSocket(server.type === 'unix' ? { path: server.path } : { host: server.host, port: server.port }, timeoutMs);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = e instanceof ConnectTimeout ? e.message : code === 'ECONNREFUSED' ? 'Connection refused' : code === 'ENOENT' ? 'No such file or directory' : code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? `host '${server.type === 'inet' ? server.host : ''}' not found` : (e as Error).message;
      throw new BlockError('Io', `Failed to connect to sheepdog server '${label}': ${why}`);
    }
    sock.setNoDelay(true);
    return new SheepdogClient(sock, label, timeoutMs);
  }

  /** Send one request (with `payload` for writes) and wait for its response. */
  request(req: SdRequest, payload?: Buffer, maxData = 0): Promise<{ rsp: SdResponse; data: Buffer }> {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#nextId;
    this.#nextId = (this.#nextId + 1) >>> 0 || 1;
    const header = encodeRequest(req, id);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#fail(new BlockError('Io', `sheepdog server '${this.label}' did not answer within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      this.#pending.set(id, { opcode: req.opcode, maxData, resolve, reject, timer });
      this.#sock.write(header);
      if (payload && payload.length > 0) this.#sock.write(payload);
    });
  }

  /** Received bytes not yet taken, as chunks (joined only once a whole response is there, so a
   *  4 MiB read arriving in 64 KiB pieces is copied once, not once per piece). */
  #chunks: Buffer[] = [];
  #have = 0;
  /** Bytes the response at the head of the queue needs (header, then header + payload). */
  #need = SD_RSP_SIZE;

  #take(n: number): Buffer {
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#have);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#have = rest.length;
    return out;
  }

  #onData(d: Buffer): void {
    this.#chunks.push(d);
    this.#have += d.length;
    while (this.#have >= this.#need) {
      const head = this.#chunks.length === 1 ? this.#chunks[0]! : (this.#chunks = [Buffer.concat(this.#chunks, this.#have)])[0]!;
      const rsp = decodeResponse(head.subarray(0, SD_RSP_SIZE));
      const p = this.#pending.get(rsp.id);
      if (!p) return this.#fail(new BlockError('Io', `sheepdog server '${this.label}' answered request ${rsp.id}, which was not asked`));
      if (rsp.opcode !== p.opcode) return this.#fail(new BlockError('Io', `sheepdog server '${this.label}' answered request ${rsp.id} with opcode 0x${rsp.opcode.toString(16)} (asked 0x${p.opcode.toString(16)})`));
      if (rsp.dataLength > p.maxData || rsp.dataLength > MAX_RESPONSE_DATA) return this.#fail(new BlockError('Io', `sheepdog server '${this.label}' sent ${rsp.dataLength} bytes for a request of ${p.maxData}`));
      this.#need = SD_RSP_SIZE + rsp.dataLength;
      if (this.#have < this.#need) return;
      const whole = this.#take(this.#need);
      this.#need = SD_RSP_SIZE;
      this.#pending.delete(rsp.id);
      clearTimeout(p.timer);
      p.resolve({ rsp, data: whole.subarray(SD_RSP_SIZE) });
    }
  }

  #fail(e: Error): void {
    if (this.#dead) return;
    this.#dead = e;
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.#pending.clear();
    this.#sock.destroy();
  }

  async close(): Promise<void> {
    if (!this.#dead) this.#dead = new BlockError('Io', `sheepdog connection to '${this.label}' is closed`);
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(this.#dead);
    }
    this.#pending.clear();
    await new Promise<void>((r) => {
      if (this.#sock.destroyed) return r();
      this.#sock.once('close', () => r());
      this.#sock.end();
      setTimeout(() => {
        this.#sock.destroy();
        r();
      }, 1000).unref();
    });
  }
}

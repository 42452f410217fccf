// NBD peers for the interop tests: real servers (qemu-nbd, nbdkit, `platter nbd`) started on a
// unix socket or a random 127.0.0.1 port and stopped by the test (only the processes it started),
// and a tiny scripted server that does a correct fixed-newstyle handshake and then misbehaves on
// purpose (closes mid-read, stalls, sends what a mutator gives it) for the client's failure and
// fuzz tests.

import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './qemu.ts';

export interface Peer {
  proc: ChildProcess;
  stderr(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

async function waitReady(check: () => Promise<boolean>, proc: ChildProcess, what: string, err: () => string, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (proc.exitCode !== null) throw new Error(`${what} exited ${proc.exitCode}: ${err()}`);
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill('SIGKILL');
  throw new Error(`${what} did not start: ${err()}`);
}

function canConnect(opts: { path: string } | { port: number; host: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(opts as never);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Start a server process listening on `where` and wait until it accepts connections. The probe
 *  connection is closed at once (servers without -t/--persistent must be run persistent). */
export async function startPeer(cmd: string, args: string[], where: { path: string } | { port: number }): Promise<Peer> {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (b) => (err += b));
  proc.stdout!.on('data', (b) => (err += b));
  const check = 'path' in where ? async () => existsSync(where.path) && canConnect(where) : async () => canConnect({ port: where.port, host: '127.0.0.1' });
  await waitReady(check, proc, cmd, () => err);
  return {
    proc,
    stderr: () => err,
    stop: (signal: NodeJS.Signals = 'SIGTERM') =>
      new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) {
          resolve(proc.exitCode);
          return;
        }
        const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        proc.once('exit', (code) => {
          clearTimeout(t);
          resolve(code);
        });
        proc.kill(signal);
      }),
  };
}

export const PLATTER_BIN = join(REPO_ROOT, 'bin/platter.mjs');

/** `platter nbd ARGS` as a process. */
export function startPlatterNbd(args: string[], where: { path: string } | { port: number }): Promise<Peer> {
  return startPeer(process.execPath, [PLATTER_BIN, 'nbd', ...args], where);
}

// ---------------------------------------------------------------------------------------------
// The scripted server.

const NBDMAGIC = Buffer.from('NBDMAGIC');
const IHAVEOPT = Buffer.from('IHAVEOPT');
const REP_MAGIC = Buffer.from('0003e889045565a9', 'hex');

export interface StubBehaviour {
  /** Export size. */
  size: number;
  /** Greeting bytes instead of the correct one (fuzz). */
  greeting?: (correct: Buffer) => Buffer;
  /** Rewrite an option reply before it is sent (fuzz): [option, reply] -> bytes. */
  optReply?: (opt: number, reply: Buffer) => Buffer;
  /** What to do with a transmission request: the bytes to answer with, 'close' or 'stall'. */
  onRequest?: (req: { type: number; flags: number; handle: Buffer; offset: number; length: number }, correct: Buffer) => Buffer | 'close' | 'stall';
}

function optReply(opt: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(20);
  REP_MAGIC.copy(h, 0);
  h.writeUInt32BE(opt, 8);
  h.writeUInt32BE(type >>> 0, 12);
  h.writeUInt32BE(data.length, 16);
  return Buffer.concat([h, data]);
}

/** A minimal fixed-newstyle server: GO/EXPORT_NAME/STRUCTURED_REPLY/SET_META_CONTEXT, READ
 *  answered with structured OFFSET_DATA chunks of a pattern (byte = offset & 0xff),
 *  BLOCK_STATUS with one data extent. */
export async function startStub(path: string, b: StubBehaviour): Promise<{ server: Server; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    let phase: 'flags' | 'opts' | 'tx' = 'flags';
    let structured = false;
    const send = (x: Buffer) => {
      if (!sock.destroyed) sock.write(x);
    };
    const greet = Buffer.concat([NBDMAGIC, IHAVEOPT, Buffer.from([0, 3])]);
    send(b.greeting ? b.greeting(greet) : greet);
    const exportInfo = () => {
      const d = Buffer.alloc(12);
      d.writeUInt16BE(0, 0);
      d.writeBigUInt64BE(BigInt(b.size), 2);
      d.writeUInt16BE(1 | 4 | 8 | 32 | 64, 10);
      return d;
    };
    const reply = (opt: number, bytes: Buffer) => send(b.optReply ? b.optReply(opt, bytes) : bytes);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (phase === 'flags') {
          if (buf.length < 4) return;
          buf = buf.subarray(4);
          phase = 'opts';
          continue;
        }
        if (phase === 'opts') {
          if (buf.length < 16) return;
          const opt = buf.readUInt32BE(8);
          const len = buf.readUInt32BE(12);
          if (buf.length < 16 + len) return;
          const data = buf.subarray(16, 16 + len);
          buf = buf.subarray(16 + len);
          if (opt === 8) {
            structured = true;
            reply(opt, optReply(opt, 1));
          } else if (opt === 10) {
            const nameLen = data.readUInt32BE(0);
            const n = data.readUInt32BE(4 + nameLen);
            let p = 8 + nameLen;
            const out: Buffer[] = [];
            for (let i = 0; i < n; i++) {
              const ql = data.readUInt32BE(p);
              const q = data.subarray(p + 4, p + 4 + ql).toString();
              p += 4 + ql;
              if (q === 'base:allocation') {
                const m = Buffer.alloc(4);
                m.writeUInt32BE(7);
                out.push(optReply(opt, 4, Buffer.concat([m, Buffer.from(q)])));
              }
            }
            out.push(optReply(opt, 1));
            reply(opt, Buffer.concat(out));
          } else if (opt === 7) {
            reply(opt, Buffer.concat([optReply(opt, 3, exportInfo()), optReply(opt, 1)]));
            phase = 'tx';
          } else if (opt === 1) {
            const d2 = Buffer.alloc(10);
            d2.writeBigUInt64BE(BigInt(b.size), 0);
            d2.writeUInt16BE(1 | 4 | 8 | 32 | 64, 8);
            send(d2);
            phase = 'tx';
          } else reply(opt, optReply(opt, 0x80000001));
          continue;
        }
        if (buf.length < 28) return;
        const type = buf.readUInt16BE(6);
        const flags = buf.readUInt16BE(4);
        const handle = Buffer.from(buf.subarray(8, 16));
        const offset = Number(buf.readBigUInt64BE(16));
        const length = buf.readUInt32BE(24);
        const payload = type === 1 ? length : 0;
        if (buf.length < 28 + payload) return;
        buf = buf.subarray(28 + payload);
        if (type === 2) {
          sock.end();
          return;
        }
        let correct: Buffer;
        if (type === 0 && structured) {
          const h = Buffer.alloc(20 + 8);
          h.writeUInt32BE(0x668e33ef, 0);
          h.writeUInt16BE(1, 4);
          h.writeUInt16BE(1, 6);
          handle.copy(h, 8);
          h.writeUInt32BE(8 + length, 16);
          h.writeBigUInt64BE(BigInt(offset), 20);
          const data = Buffer.alloc(length);
          for (let i = 0; i < length; i++) data[i] = (offset + i) & 0xff;
          correct = Buffer.concat([h, data]);
        } else if (type === 7) {
          const h = Buffer.alloc(20 + 12);
          h.writeUInt32BE(0x668e33ef, 0);
          h.writeUInt16BE(1, 4);
          h.writeUInt16BE(5, 6);
          handle.copy(h, 8);
          h.writeUInt32BE(12, 16);
          h.writeUInt32BE(7, 20);
          h.writeUInt32BE(length, 24);
          h.writeUInt32BE(0, 28);
          correct = h;
        } else {
          const h = Buffer.alloc(16);
          h.writeUInt32BE(0x67446698, 0);
          handle.copy(h, 8);
          correct = h;
        }
        const act = b.onRequest ? b.onRequest({ type, flags, handle, offset, length }, correct) : correct;
        if (act === 'close') {
          sock.destroy();
          return;
        }
        if (act === 'stall') continue;
        send(act);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    server,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

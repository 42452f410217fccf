// Browser mode (docs/architecture.md "electron/"): the built renderer and the same {method, input}
// protocol as Electron's IPC, served on 127.0.0.1 for headless hosts and the e2e tests.
//
// Security model: one random token per launch (crypto.randomBytes) is required to load the page
// and to open the WebSocket; the WebSocket's Origin must be exactly this server's own origin and the
// Host header must name this server (DNS-rebinding defence). Everything else gets HTTP 403.
// Calls go through electron/dispatch.ts, the same zod validation as the IPC path.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { AppEvent, WsCallFrame, WsServerFrame } from '../core/api/app-protocol.ts';
import type { Dispatcher } from './dispatch.ts';
import { securityHeaders } from './csp.ts';
import { RENDERER_MIME } from './mime.ts';

/** Bytes of entropy in the launch token (256 bits). */
const TOKEN_BYTES = 32;
/** The largest WebSocket message accepted (a call's input is small; this bounds memory). */
const MAX_FRAME_BYTES = 1 << 20;
/** The WebSocket endpoint's path. */
export const WS_PATH = '/ws';
/** The only address browser mode listens on. */
const LOOPBACK = '127.0.0.1';

export interface BrowserServerOptions {
  dispatcher: Dispatcher;
  /** The built renderer (dist/renderer). */
  rendererDir: string;
  /** 0 or absent: a random free port. */
  port?: number;
  /** Fixed token (tests); a random one otherwise. */
  token?: string;
  log?: (line: string) => void;
}

export interface BrowserServer {
  /** http://127.0.0.1:PORT/?token=... : the URL to open. */
  url: string;
  origin: string;
  port: number;
  token: string;
  close(): Promise<void>;
}

function tokenMatches(expected: Buffer, given: string | null | undefined): boolean {
  if (typeof given !== 'string') return false;
  const g = Buffer.from(given, 'utf8');
  return g.length === expected.length && timingSafeEqual(g, expected);
}

function refuse(res: ServerResponse, status: number, text: string, headers: Record<string, string>): void {
  res.writeHead(status, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(`${text}\n`);
}

function refuseUpgrade(socket: Duplex, status: 400 | 403, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

/** Start the server; resolves once it listens. */
export async function startBrowserServer(opts: BrowserServerOptions): Promise<BrowserServer> {
  const token = opts.token ?? randomBytes(TOKEN_BYTES).toString('base64url');
  const tokenBytes = Buffer.from(token, 'utf8');
  const log = opts.log ?? (() => {});
  const root = normalize(opts.rendererDir + sep);
  let origin = '';
  let host = '';
  let headers: Record<string, string> = {};

  const hostAllowed = (req: IncomingMessage) => req.headers.host === host;

  const server = createServer(async (req, res) => {
    try {
      if (!hostAllowed(req)) return refuse(res, 403, 'Forbidden: unknown Host', headers);
      if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(res, 405, 'Method Not Allowed', headers);
      const url = new URL(req.url ?? '/', origin);
      let path = decodeURIComponent(url.pathname);
      if (path === '/' || path === '/index.html') {
        if (!tokenMatches(tokenBytes, url.searchParams.get('token'))) return refuse(res, 403, 'Forbidden: open the URL with the token printed at launch', headers);
        path = '/index.html';
      }
      const file = normalize(join(root, path));
      if (!file.startsWith(root) || path.includes('\0')) return refuse(res, 403, 'Forbidden', headers);
      const type = RENDERER_MIME[extname(file)];
      if (!type) return refuse(res, 404, 'Not Found', headers);
      let body: Buffer;
      try {
        body = await readFile(file);
      } catch {
        return refuse(res, 404, 'Not Found', headers);
      }
      res.writeHead(200, { ...headers, 'Content-Type': type, 'Content-Length': body.length });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      if (!res.headersSent) refuse(res, 400, 'Bad Request', headers);
      else res.destroy();
    }
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  const clients = new Set<WebSocket>();

  server.on('upgrade', (req, socket, head) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', origin);
    } catch {
      return refuseUpgrade(socket, 400, 'Bad Request');
    }
    if (url.pathname !== WS_PATH) return refuseUpgrade(socket, 403, 'Forbidden');
    if (!hostAllowed(req)) return refuseUpgrade(socket, 403, 'Forbidden');
    if (req.headers.origin !== origin) {
      log(`refused a WebSocket from origin ${JSON.stringify(req.headers.origin ?? null)}`);
      return refuseUpgrade(socket, 403, 'Forbidden');
    }
    if (!tokenMatches(tokenBytes, url.searchParams.get('token'))) {
      log('refused a WebSocket without the launch token');
      return refuseUpgrade(socket, 403, 'Forbidden');
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  wss.on('connection', (ws: WebSocket) => {
    clients.add(ws);
    ws.on('close', () => clients.delete(ws));
    ws.on('error', () => clients.delete(ws));
    ws.on('message', async (raw, isBinary) => {
      let frame: WsCallFrame;
      try {
        if (isBinary) throw new Error('binary frame');
        frame = JSON.parse(raw.toString()) as WsCallFrame;
        if (!frame || typeof frame !== 'object' || !Number.isSafeInteger(frame.id) || typeof frame.method !== 'string') throw new Error('bad frame');
      } catch {
        ws.close(1003, 'expected {id, method, input} JSON');
        return;
      }
      const result = await opts.dispatcher.call({ method: frame.method, input: frame.input });
      send(ws, { id: frame.id, ...result });
    });
  });

  const send = (ws: WebSocket, frame: WsServerFrame) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(frame));
  };
  const unsubscribe = opts.dispatcher.onEvent((event: AppEvent) => {
    for (const ws of clients) send(ws, { event });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, LOOPBACK, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  host = `${LOOPBACK}:${port}`;
  origin = `http://${host}`;
  headers = securityHeaders(`ws://${host}`);

  return {
    url: `${origin}/?token=${token}`,
    origin,
    port,
    token,
    close: async () => {
      unsubscribe();
      for (const ws of clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

// The renderer's one way to reach core: window.platter (Electron preload, IPC) when present, else the
// browser mode's WebSocket on this page's own origin with the launch token from the page URL. Both
// speak the same {method, input} -> {ok, value | error} protocol (core/api/app-protocol.ts).
// The typed client `api` is derived from the app's router (electron-trpc style): only its type is
// imported, so no core code is bundled here, and a method added to the router is callable as
// api.<name>(input) with its input and result typed, with no edit in this file.

import type { AppEvent, CallResult, WsServerFrame } from '../core/api/app-protocol.ts';
import type { AppClient } from '../core/api/app-router.ts';
import type { SerializedError } from '../core/api/types.ts';

/** What the Electron preload exposes (electron/preload.ts). */
export interface PlatterBridge {
  call(method: string, input: unknown): Promise<CallResult>;
  onEvent(cb: (event: AppEvent) => void): () => void;
  pathForFile?(file: File): string;
}

declare global {
  interface Window {
    platter?: PlatterBridge;
  }
}

/** A failed call, with the core's error as data (kind, message, hint). */
export class ApiError extends Error {
  readonly kind: string;
  readonly hint?: string;
  /** BlockError.code (core/errors.ts BlockErrorCode), for the dialogs that act on it. */
  readonly code?: string;
  constructor(e: SerializedError) {
    super(e.message);
    this.name = 'ApiError';
    this.kind = e.kind;
    if (e.hint) this.hint = e.hint;
    if (e.code) this.code = e.code;
  }
}

interface Transport {
  call(method: string, input: unknown): Promise<CallResult>;
  onEvent(cb: (event: AppEvent) => void): () => void;
}

/** How long to wait before reconnecting a dropped WebSocket. */
const RECONNECT_MS = 1000;

class WebSocketTransport implements Transport {
  #ws: WebSocket | undefined;
  #open: Promise<WebSocket> | undefined;
  #nextId = 1;
  #pending = new Map<number, (r: CallResult) => void>();
  #listeners = new Set<(event: AppEvent) => void>();
  readonly #url: string;

  constructor(token: string) {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    this.#url = `${proto}//${location.host}/ws?token=${encodeURIComponent(token)}`;
  }

  #connect(): Promise<WebSocket> {
    if (this.#open) return this.#open;
    this.#open = new Promise((resolve, reject) => {
      const ws = new WebSocket(this.#url);
      ws.onopen = () => {
        this.#ws = ws;
        resolve(ws);
      };
      ws.onerror = () => reject(new ApiError({ name: 'Error', kind: 'Io', message: 'Cannot reach the Platter server (is it still running?)' }));
      ws.onclose = () => {
        this.#ws = undefined;
        this.#open = undefined;
        for (const [, settle] of this.#pending) settle({ ok: false, error: { name: 'Error', kind: 'Io', message: 'The connection to the Platter server was lost' } });
        this.#pending.clear();
        if (this.#listeners.size) setTimeout(() => void this.#connect().catch(() => {}), RECONNECT_MS);
      };
      ws.onmessage = (msg) => {
        let frame: WsServerFrame;
        try {
          frame = JSON.parse(String(msg.data)) as WsServerFrame;
        } catch {
          return;
        }
        if ('event' in frame) {
          for (const l of this.#listeners) l(frame.event);
          return;
        }
        const settle = this.#pending.get(frame.id);
        if (settle) {
          this.#pending.delete(frame.id);
          settle(frame);
        }
      };
    });
    return this.#open;
  }

  async call(method: string, input: unknown): Promise<CallResult> {
    const ws = await this.#connect();
    const id = this.#nextId++;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      ws.send(JSON.stringify({ id, method, input }));
    });
  }

  onEvent(cb: (event: AppEvent) => void): () => void {
    this.#listeners.add(cb);
    void this.#connect().catch(() => {});
    return () => this.#listeners.delete(cb);
  }
}

function pickTransport(): Transport {
  if (window.platter) return window.platter;
  const token = new URLSearchParams(location.search).get('token') ?? '';
  return new WebSocketTransport(token);
}

let transport: Transport | undefined;
const tx = () => (transport ??= pickTransport());

/** Call a method; resolves with its value or throws ApiError. */
export async function call<T>(method: string, input: unknown = {}): Promise<T> {
  const r = await tx().call(method, input);
  if (!r.ok) throw new ApiError(r.error);
  return r.value as T;
}

export function onEvent(cb: (event: AppEvent) => void): () => void {
  return tx().onEvent(cb);
}

/** The file system path of a dropped file, where the platform gives one (Electron only). */
export function pathForFile(file: File): string | undefined {
  const p = window.platter?.pathForFile?.(file);
  return p ? p : undefined;
}

export const isElectron = () => Boolean(window.platter);

/** The app's router, method by method: api.info(input), api.convert(input) -> {jobId}, ... Input
 *  is validated once, where the call arrives (electron/dispatch.ts). */
export const api: AppClient = new Proxy({} as AppClient, {
  get(_target, method) {
    if (typeof method !== 'string' || method === 'then') return undefined;
    return (input: unknown = {}) => call(method, input);
  },
});

// The renderer's one way to reach core: window.platter (Electron preload, IPC) when present, else the
// browser mode's WebSocket on this page's own origin with the launch token from the page URL. Both
// speak the same {method, input} -> {ok, value | error} protocol (core/api/app-protocol.ts).
// Typed wrappers name each method's input and result; only types are imported from core.

import type { AppConfig, AppEvent, CallResult, JobStarted, WsServerFrame } from '../core/api/app-protocol.ts';
import type { LibraryEntry, LibraryScanInput } from '../core/api/library.ts';
import type { LibraryWatchInput } from '../core/api/library-watch.ts';
import type {
  AmendInput,
  BitmapInput,
  CheckInput,
  CommitInput,
  CompareInput,
  ConvertInput,
  CreateInput,
  InfoInput,
  MapInput,
  RebaseInput,
  ResizeInput,
  SnapshotInput,
  SnapshotListInput,
} from '../core/api/schemas.ts';
import type { FormatDescription, ImageInfo, JobSummary, ResizeResult, SerializedError, SnapshotInfoJson } from '../core/api/types.ts';

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
  constructor(e: SerializedError) {
    super(e.message);
    this.name = 'ApiError';
    this.kind = e.kind;
    if (e.hint) this.hint = e.hint;
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

/** The service, method by method. */
export const api = {
  appConfig: () => call<AppConfig>('appConfig', {}),
  libraryScan: (input: LibraryScanInput) => call<LibraryEntry[]>('libraryScan', input),
  libraryWatch: (input: LibraryWatchInput) => call<{ watching: number; polling: number; dropped: number }>('libraryWatch', input),
  pickPaths: (kind: 'folder' | 'file') => call<string[]>('pickPaths', { kind }),
  info: (input: InfoInput) => call<ImageInfo | ImageInfo[]>('info', input),
  map: (input: MapInput) => call<unknown[]>('map', input),
  listFormats: () => call<FormatDescription[]>('listFormats', {}),
  create: (input: CreateInput) => call<JobStarted>('create', input),
  convert: (input: ConvertInput) => call<JobStarted>('convert', input),
  check: (input: CheckInput) => call<JobStarted>('check', input),
  compare: (input: CompareInput) => call<JobStarted>('compare', input),
  commit: (input: CommitInput) => call<JobStarted>('commit', input),
  rebase: (input: RebaseInput) => call<JobStarted>('rebase', input),
  amend: (input: AmendInput) => call<JobStarted>('amend', input),
  bitmap: (input: BitmapInput) => call<JobStarted>('bitmap', input),
  resize: (input: ResizeInput) => call<ResizeResult>('resize', input),
  snapshotList: (input: SnapshotListInput) => call<SnapshotInfoJson[]>('snapshotList', input),
  snapshotCreate: (input: SnapshotInput) => call<null>('snapshotCreate', input),
  snapshotApply: (input: SnapshotInput) => call<null>('snapshotApply', input),
  snapshotDelete: (input: SnapshotInput) => call<null>('snapshotDelete', input),
  jobs: () => call<JobSummary[]>('jobs', {}),
  cancelJob: (jobId: string) => call<boolean>('cancelJob', { jobId }),
};

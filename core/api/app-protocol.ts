// The desktop app's wire protocol (docs/architecture.md "electron/"): the one message shape that both
// transports carry, Electron IPC ('platter:call' / 'platter:event') and the browser mode's
// WebSocket. Plain data only (structured clone and JSON safe). The renderer imports these as types;
// electron/dispatch.ts is the one place that answers them.

import type { JobEvent, SerializedError } from './types.ts';

/** A call from the renderer: one service (or app) method by name, with its input. */
export interface CallRequest {
  method: string;
  input: unknown;
}

/** The answer to a call: the value, or the error as data (BlockError.toJSON()). */
export type CallResult = { ok: true; value: unknown } | { ok: false; error: SerializedError };

/** WebSocket frames from the renderer: a call with a correlation id. */
export interface WsCallFrame extends CallRequest {
  id: number;
}

/** WebSocket frames from the server: an answer to call `id`, or a pushed event. */
export type WsServerFrame = ({ id: number } & CallResult) | { event: AppEvent };

/** Events pushed to the renderer. Job events never carry secret bytes. 'library-changed' names the
 *  library paths (as the renderer gave them to libraryWatch) whose folder changed on disk; absent:
 *  re-scan everything. */
export type AppEvent = JobEvent | { type: 'library-changed'; roots?: string[] };

/** What a long-running call returns at once; progress and result follow as job events. */
export interface JobStarted {
  jobId: string;
}

/** How the app was started (the renderer adapts: native dialogs exist only in Electron). */
export interface AppConfig {
  mode: 'electron' | 'browser';
  /** Folders the launcher put in the library (browser mode --library DIR, tests). */
  roots: string[];
  version: string;
  platform: string;
}

/** IPC channel names (one call channel, one event channel: electron-trpc style). */
export const IPC_CALL_CHANNEL = 'platter:call';
export const IPC_EVENT_CHANNEL = 'platter:event';

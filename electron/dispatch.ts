// The one dispatcher behind both transports (Electron IPC in main.ts, the WebSocket in
// browser-server.ts), derived from the app's router (core/api/app-router.ts): it finds the method,
// validates the input with the method's zod schema (the only validation of a GUI call), runs it,
// and answers {ok, value} | {ok: false, error} with errors as plain data (BlockError.toJSON()).
// Job events and the library watcher's 'library-changed' events are fanned out to every listener.
// Nothing here logs inputs: they may hold passphrases.

import { callService, type AnyRouter, type PlatterService } from '../core/api/service.ts';
import { appRouter, type AppContext, type PickPathsInput } from '../core/api/app-router.ts';
import { stopAllNbdServers } from '../core/api/routes-remote.ts';
import { createLibraryWatcher } from '../core/api/library-watch.ts';
import type { AppConfig, AppEvent, CallRequest, CallResult } from '../core/api/app-protocol.ts';
import type { SerializedError } from '../core/api/types.ts';
import type { DriveElevator } from '../core/api/routes-drives.ts';
import { BlockError, invalidArgument, serializeError } from '../core/errors.ts';

export interface Dispatcher {
  call(request: CallRequest): Promise<CallResult>;
  /** Listen to pushed events; returns the unsubscribe function. */
  onEvent(listener: (event: AppEvent) => void): () => void;
  close(): Promise<void>;
}

export interface DispatcherOptions {
  service: PlatterService;
  config: AppConfig;
  /** Native open dialogs (Electron's main process lends them). */
  pickPaths?(input: PickPathsInput): Promise<string[]>;
  /** Drive jobs with administrator rights (Electron's main process lends it). */
  elevate?: DriveElevator;
  /** The router to answer (default: the app's). Tests add methods to show nothing else changes. */
  router?: AnyRouter;
}

export { serializeError };

export function createDispatcher(opts: DispatcherOptions): Dispatcher {
  const { service } = opts;
  const router = opts.router ?? (appRouter as unknown as AnyRouter);
  const listeners = new Set<(event: AppEvent) => void>();
  const emit = (event: AppEvent) => {
    for (const l of listeners) {
      try {
        l(event);
      } catch {
        // one broken listener (a closed window) must not stop the others
      }
    }
  };
  // Library folders changed on disk (by Platter or another program): the renderer re-scans them.
  const watcher = createLibraryWatcher((roots) => emit({ type: 'library-changed', roots }));
  const app: AppContext = { config: opts.config, watch: (paths) => watcher.set(paths), ...(opts.pickPaths ? { pickPaths: opts.pickPaths } : {}), ...(opts.elevate ? { elevate: opts.elevate } : {}) };

  const unsubscribe = service.onEvent(emit);

  return {
    async call(request: CallRequest): Promise<CallResult> {
      try {
        if (!request || typeof request.method !== 'string') throw invalidArgument('A call needs a method name');
        const value = await callService(service, request.method, request.input, { router, extra: { app } });
        return { ok: true, value: value === undefined ? null : value };
      } catch (e) {
        return { ok: false, error: serializeError(e) };
      }
    },
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      unsubscribe();
      watcher.close();
      await stopAllNbdServers(); // servers the app started (Serve over NBD) end with it
      listeners.clear();
      await service.close();
    },
  };
}

/**
 * The 'platter:call' IPC handler (main.ts registers it with ipcMain.handle): answers only calls
 * from the app's own window (`trusted`), passing {method, input} to the dispatcher as they are.
 */
export function ipcCallHandler<E>(dispatcher: Dispatcher, trusted: (event: E) => boolean): (event: E, request: CallRequest) => Promise<CallResult> {
  return async (event, request) => {
    if (!trusted(event)) {
      return { ok: false, error: { name: 'BlockError', kind: 'Permission', message: 'Calls are accepted only from the Platter window' } };
    }
    return dispatcher.call({ method: request?.method, input: request?.input });
  };
}

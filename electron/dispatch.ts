// The one dispatcher behind both transports (Electron IPC in main.ts, the WebSocket in
// browser-server.ts): validates every call's input with its zod schema (core/api INPUT_SCHEMAS or
// an app method's own schema), calls the service, and answers {ok, value} | {ok: false, error} with
// errors as plain data (BlockError.toJSON()). Job events and the library watcher's
// 'library-changed' events are fanned out to every listener.
// Nothing here logs inputs: they may hold passphrases.

import type { z } from 'zod';
import { callService, type PlatterService } from '../core/api/service.ts';
import { libraryScanInput, scanLibrary } from '../core/api/library.ts';
import { createLibraryWatcher, libraryWatchInput } from '../core/api/library-watch.ts';
import type { AppConfig, AppEvent, CallRequest, CallResult } from '../core/api/app-protocol.ts';
import type { SerializedError } from '../core/api/types.ts';
import { BlockError, invalidArgument } from '../core/errors.ts';
import { z as zod } from 'zod';

/** A method the app adds beside the service's (library scan, native dialogs). */
export interface AppMethod {
  schema: z.ZodType;
  run(input: unknown): Promise<unknown> | unknown;
}

export interface Dispatcher {
  call(request: CallRequest): Promise<CallResult>;
  /** Listen to pushed events; returns the unsubscribe function. */
  onEvent(listener: (event: AppEvent) => void): () => void;
  close(): Promise<void>;
}

export interface DispatcherOptions {
  service: PlatterService;
  config: AppConfig;
  /** More app methods (Electron's native dialogs). */
  extraMethods?: Record<string, AppMethod>;
}

/** An error as data for the renderer: kind, message, context, hint; never a stack or a secret. */
export function serializeError(e: unknown): SerializedError {
  if (e instanceof BlockError) return e.toJSON() as SerializedError;
  const message = e instanceof Error ? e.message : String(e);
  return { name: 'Error', kind: 'Io', message };
}

function validate(method: string, schema: z.ZodType, input: unknown): unknown {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ');
    throw invalidArgument(`Invalid input for '${method}': ${why}`);
  }
  return parsed.data;
}

export function createDispatcher(opts: DispatcherOptions): Dispatcher {
  const { service } = opts;
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
  const appMethods = new Map<string, AppMethod>([
    ['appConfig', { schema: zod.object({}).optional(), run: () => opts.config }],
    ['libraryScan', { schema: libraryScanInput, run: (input) => scanLibrary(service, input as z.infer<typeof libraryScanInput>) }],
    ['libraryWatch', { schema: libraryWatchInput, run: (input) => watcher.set((input as z.infer<typeof libraryWatchInput>).paths) }],
  ]);
  for (const [name, m] of Object.entries(opts.extraMethods ?? {})) appMethods.set(name, m);

  const unsubscribe = service.onEvent(emit);

  return {
    async call(request: CallRequest): Promise<CallResult> {
      try {
        if (!request || typeof request.method !== 'string') throw invalidArgument('A call needs a method name');
        const app = appMethods.get(request.method);
        const value = app ? await app.run(validate(request.method, app.schema, request.input)) : await callService(service, request.method, request.input);
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
      listeners.clear();
      await service.close();
    },
  };
}

// Platter's service interface (docs/architecture.md "core/api"): the one typed surface both the
// `platter` CLI and the desktop app (Electron IPC, browser-mode WebSocket) call. Its methods are
// the entries of the router (router.ts): each takes one plain-data input (validated by the entry's
// zod schema); a 'query' returns a Promise of plain data, a 'job' a JobHandle with progress
// events and cancel. `callService` is the generic dispatcher the transports share.

import type { JobProgress, JobEvent } from './types.ts';
import { serviceRouter, type RouterMethods, type ServiceRouter, type Procedure } from './router.ts';
import { invalidArgument } from '../errors.ts';
import { implementService, RUN_VALIDATED, validateInput, type RunValidated } from './implementation.ts';
export * from './types.ts';
export * from './schemas.ts';

/** A running job: progress, cancel, and its result. */
export interface JobHandle<T> {
  readonly id: string;
  readonly method: string;
  /** Short words for a jobs panel ("Convert disk.vmdk -> disk.qcow2"). */
  readonly label: string;
  /** Settles with the job's result; rejects with a BlockError (kind 'Cancelled' after cancel()). */
  readonly result: Promise<T>;
  /** The latest progress. */
  readonly progress: JobProgress;
  /** Ask the job to stop between units of work; it cleans up what it created. */
  cancel(): void;
  /** Listen to progress; returns the unsubscribe function. */
  onProgress(listener: (p: JobProgress) => void): () => void;
}

/** The service: one method per router entry, plus job events and shutdown. */
export interface PlatterService extends RouterMethods<ServiceRouter> {
  /** Listen to every job's events; returns the unsubscribe function. */
  onEvent(listener: (event: JobEvent) => void): () => void;
  /** Cancel running jobs and wait for them to settle. */
  close(): Promise<void>;
  /** Run a router entry on this service with input already validated (callService). */
  readonly [RUN_VALIDATED]: RunValidated;
}

export interface ServiceOptions {
  /** Where warnings go (qemu-img prints them on stderr). Default: collected and dropped. */
  warn?: (message: string) => void;
  /** Where warnings go that qemu-img prints as "<program>: warning: <message>" (its
   *  warn_report: convert --salvage). Default: `warn` with "warning: " in front. */
  warnReport?: (message: string) => void;
}

/** A router: method names to entries (the service's, or the app's with the service's in it). */
export type AnyRouter = Readonly<Record<string, Procedure<never, unknown>>>;

/**
 * The transports' dispatcher: find `method` in `router`, validate `input` with its schema (the
 * only validation of a call from the GUI), and run it on `service`. A job answers {jobId} at once
 * (follow it with onEvent); a query answers its result. Throws a BlockError ('InvalidArgument')
 * for an unknown method or invalid input, naming the method and the fields.
 */
export async function callService(service: PlatterService, method: string, input: unknown, opts: { router?: AnyRouter; extra?: object } = {}): Promise<unknown> {
  const router: AnyRouter = opts.router ?? (serviceRouter as unknown as AnyRouter);
  if (typeof method !== 'string' || !Object.prototype.hasOwnProperty.call(router, method)) throw invalidArgument(`Unknown method '${String(method)}'`);
  const proc = router[method]!;
  const value = validateInput(method, proc.input, input);
  const out = service[RUN_VALIDATED](method, proc, value, opts.extra);
  if (proc.kind === 'job') {
    const h = out as JobHandle<unknown>;
    h.result.catch(() => {}); // reported through onEvent
    return { jobId: h.id };
  }
  return out;
}

/** A new service instance (one per CLI run, one per app window/server). */
export function createPlatterService(options: ServiceOptions = {}): PlatterService {
  return implementService(options);
}

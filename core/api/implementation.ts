// The runtime behind createPlatterService (service.ts): turns the router's entries (router.ts) into
// the service's methods. Each call gets the secrets of its own input (cleared when it ends); a 'job'
// runs under a job handle (progress, cancel, events). Input is validated where a call enters:
// once by the dispatcher for IPC and WebSocket calls (runValidated), by the method itself for
// in-process callers (unless `validate: false`: the CLI builds its inputs itself).

import type { JobHandle, PlatterService, ServiceOptions } from './service.ts';
import type { JobEvent, JobProgress, JobState, JobSummary, SerializedError } from './types.ts';
import { serviceRouter, type CallContext, type Procedure } from './router.ts';
import { BlockError, invalidArgument, serializeError } from '../errors.ts';
import { secretStoreFrom, type JobControl, type JobEnv } from '../jobs/common.ts';

/** How many finished jobs a service remembers for jobs(). */
const KEEP_FINISHED = 100;

export { serializeError };

/**
 * Check `input` against a method's schema: the parsed value (defaults filled in), or a BlockError
 * ('InvalidArgument') naming the method and every field that is wrong, in words.
 */
export function validateInput(method: string, schema: Procedure['input'], input: unknown): unknown {
  const r = schema.safeParse(input);
  if (!r.success) {
    const why = r.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ');
    throw invalidArgument(`Invalid input for '${method}': ${why}`);
  }
  return r.data;
}

/** The dispatcher's way in: run a procedure on this service with input it has validated. Extra
 *  context (the app's: config, folder watcher, native dialogs) is merged into the call's. */
export const RUN_VALIDATED: unique symbol = Symbol('platter.runValidated');
export type RunValidated = (method: string, proc: Procedure<never, unknown>, input: unknown, extra?: object) => JobHandle<unknown> | Promise<unknown>;

/** A query's control: nothing to report to, never aborted. */
const QUERY_CONTROL: JobControl = {};

export function implementService(options: ServiceOptions & { validate?: boolean } = {}): PlatterService {
  const warn = options.warn ?? (() => {});
  const warnReport = options.warnReport;
  const validate = options.validate ?? true;
  const listeners = new Set<(e: JobEvent) => void>();
  interface Entry {
    summary: JobSummary;
    controller: AbortController;
    settled: Promise<unknown>;
  }
  const jobs = new Map<string, Entry>();

  const emit = (e: JobEvent) => {
    for (const l of listeners) {
      try {
        l(e);
      } catch {
        // a listener's failure must not break the job
      }
    }
  };

  /** Job ids name jobs within this service; they grant nothing (the transports authenticate
   *  callers), so they need no cryptographic randomness, and loading node:crypto for them would
   *  cost every CLI job start. */
  let jobCount = 0;
  const newJobId = (): string => `job-${(++jobCount).toString(36)}-${Date.now().toString(36)}-${Math.floor(Math.random() * 2 ** 32).toString(36)}`;

  function startJob<T>(method: string, label: string, run: (ctl: JobControl) => Promise<T>): JobHandle<T> {
    const id = newJobId();
    const controller = new AbortController();
    const progressListeners = new Set<(p: JobProgress) => void>();
    const summary: JobSummary = { jobId: id, method, label, state: 'running', progress: { done: 0, total: 0 } };
    const ctl: JobControl = {
      signal: controller.signal,
      onProgress: (p) => {
        summary.progress = { ...p };
        for (const l of progressListeners) l(summary.progress);
        emit({ type: 'job-progress', jobId: id, progress: summary.progress });
      },
    };
    emit({ type: 'job-started', jobId: id, method, label });
    // Start on the next tick, so callers can subscribe before the first progress event.
    const result = new Promise<void>((r) => setImmediate(r)).then(() => run(ctl));
    const finish = (state: JobState) => {
      summary.state = state;
      const entries = [...jobs.values()].filter((j) => j.summary.state !== 'running');
      for (const old of entries.slice(0, Math.max(0, entries.length - KEEP_FINISHED))) jobs.delete(old.summary.jobId);
    };
    const settled = result.then(
      (value) => {
        finish('done');
        emit({ type: 'job-done', jobId: id, result: value });
      },
      (e) => {
        finish(e instanceof BlockError && e.kind === 'Cancelled' ? 'cancelled' : 'failed');
        emit({ type: 'job-failed', jobId: id, error: serializeError(e) });
      },
    );
    jobs.set(id, { summary, controller, settled });
    return {
      id,
      method,
      label,
      result,
      get progress() {
        return summary.progress;
      },
      cancel: () => controller.abort(),
      onProgress(listener) {
        progressListeners.add(listener);
        return () => progressListeners.delete(listener);
      },
    };
  }

  const listJobs = (): JobSummary[] => [...jobs.values()].map((j) => ({ ...j.summary, progress: { ...j.summary.progress } }));
  const cancelJob = (jobId: string): boolean => {
    const j = jobs.get(jobId);
    if (!j || j.summary.state !== 'running') return false;
    j.controller.abort();
    return true;
  };

  /** Run one procedure with input already checked: the call's own secrets, cleared at the end. */
  async function run(proc: Procedure<never, unknown>, input: unknown, ctl: JobControl, extra?: object): Promise<unknown> {
    const i = (input ?? {}) as { secrets?: { id: string; data: string; format?: 'raw' | 'base64' }[]; objects?: string[] };
    const env: JobEnv = { secrets: secretStoreFrom(i.objects ?? [], i.secrets ?? []), warn, ...(warnReport ? { warnReport } : {}) };
    const ctx: CallContext = { env, ctl, service, jobs: listJobs, cancelJob, ...extra };
    try {
      return await (proc.run as (input: unknown, ctx: CallContext) => unknown)(input, ctx);
    } finally {
      env.secrets.clear();
    }
  }

  function invoke(method: string, proc: Procedure<never, unknown>, input: unknown, check: boolean, extra?: object): JobHandle<unknown> | Promise<unknown> {
    const checked = () => (check ? validateInput(method, proc.input, input) : input);
    if (proc.kind === 'job') {
      let label = method;
      try {
        label = proc.label?.(input as never) ?? method;
      } catch {
        // a label from malformed input: the method's name will do (validation says what is wrong)
      }
      return startJob(method, label, async (ctl) => run(proc, checked(), ctl, extra));
    }
    return (async () => run(proc, checked(), QUERY_CONTROL, extra))();
  }

  const methods: Record<string, (input?: unknown) => unknown> = {};
  for (const [method, proc] of Object.entries(serviceRouter)) methods[method] = (input) => invoke(method, proc as Procedure<never, unknown>, input, validate);
  const runValidated: RunValidated = (method, proc, input, extra) => invoke(method, proc, input, false, extra);

  const service = {
    ...methods,
    [RUN_VALIDATED]: runValidated,
    onEvent(listener: (e: JobEvent) => void) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      for (const j of jobs.values()) if (j.summary.state === 'running') j.controller.abort();
      await Promise.all([...jobs.values()].map((j) => j.settled));
    },
  } as unknown as PlatterService;
  return service;
}

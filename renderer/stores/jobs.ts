// The jobs store (zustand): every job the service reports through events (started, progress,
// done, failed), with a rate and an ETA computed from progress samples. Results and errors are
// plain data from core; no event carries secrets, so none is ever stored here.

import { create } from 'zustand';
import type { AppEvent } from '../../core/api/app-protocol.ts';
import type { JobProgress, JobState, SerializedError } from '../../core/api/types.ts';

export interface JobView {
  jobId: string;
  method: string;
  label: string;
  state: JobState;
  progress: JobProgress;
  startedAt: number;
  finishedAt?: number;
  /** Bytes (units) per second over the recent window. */
  rate?: number;
  result?: unknown;
  error?: SerializedError;
}

/** How far back the rate looks (ms): smooth, yet quick to follow a change of speed. */
const RATE_WINDOW_MS = 3000;

interface Sample {
  t: number;
  done: number;
}

const samples = new Map<string, Sample[]>();
const waiters = new Map<string, { resolve(v: unknown): void; reject(e: SerializedError): void }[]>();

export interface JobsState {
  jobs: Record<string, JobView>;
  order: string[];
  handle(event: AppEvent): void;
  clearFinished(): void;
}

function emptyJob(jobId: string): JobView {
  return { jobId, method: '', label: 'Job', state: 'running', progress: { done: 0, total: 0 }, startedAt: Date.now() };
}

export const useJobs = create<JobsState>()((set, get) => ({
  jobs: {},
  order: [],
  handle(event) {
    if (!('jobId' in event)) return;
    const { jobs, order } = get();
    const prev = jobs[event.jobId] ?? emptyJob(event.jobId);
    let next: JobView = prev;
    switch (event.type) {
      case 'job-started':
        next = { ...prev, method: event.method, label: event.label };
        break;
      case 'job-progress': {
        const now = Date.now();
        const list = samples.get(event.jobId) ?? [];
        list.push({ t: now, done: event.progress.done });
        while (list.length > 2 && now - list[0]!.t > RATE_WINDOW_MS) list.shift();
        samples.set(event.jobId, list);
        const first = list[0]!;
        const rate = now > first.t ? ((event.progress.done - first.done) * 1000) / (now - first.t) : prev.rate;
        next = { ...prev, progress: event.progress, ...(rate !== undefined ? { rate } : {}) };
        break;
      }
      case 'job-done':
        next = { ...prev, state: 'done', result: event.result, finishedAt: Date.now(), progress: { ...prev.progress, done: Math.max(prev.progress.done, prev.progress.total) } };
        samples.delete(event.jobId);
        for (const w of waiters.get(event.jobId) ?? []) w.resolve(event.result);
        waiters.delete(event.jobId);
        break;
      case 'job-failed':
        next = { ...prev, state: event.error.kind === 'Cancelled' ? 'cancelled' : 'failed', error: event.error, finishedAt: Date.now() };
        samples.delete(event.jobId);
        for (const w of waiters.get(event.jobId) ?? []) w.reject(event.error);
        waiters.delete(event.jobId);
        break;
    }
    set({ jobs: { ...jobs, [event.jobId]: next }, order: order.includes(event.jobId) ? order : [...order, event.jobId] });
  },
  clearFinished() {
    const { jobs, order } = get();
    const keep = order.filter((id) => jobs[id]?.state === 'running');
    set({ order: keep, jobs: Object.fromEntries(keep.map((id) => [id, jobs[id]!])) });
  },
}));

/** Resolves with the job's result (rejects with its error) once it finishes. */
export function waitForJob(jobId: string): Promise<unknown> {
  const job = useJobs.getState().jobs[jobId];
  if (job?.state === 'done') return Promise.resolve(job.result);
  if (job && job.state !== 'running' && job.error) return Promise.reject(job.error);
  return new Promise((resolve, reject) => {
    const list = waiters.get(jobId) ?? [];
    list.push({ resolve, reject });
    waiters.set(jobId, list);
  });
}

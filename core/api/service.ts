// Platter's service interface (docs/architecture.md "core/api"): the one typed surface both the
// `platter` CLI and the desktop app (Electron IPC, browser-mode WebSocket) call. Every method takes
// one plain-data input validated by the zod schema of the same name (schemas.ts; INPUT_SCHEMAS);
// quick methods return a Promise of plain data, long ones (JOB_METHODS) return a JobHandle with
// progress events and cancel. `callService` is the generic dispatcher the IPC layers share.

import type { z } from 'zod';
import * as S from './schemas.ts';
import type {
  CheckReport,
  CommitResult,
  CompareResult,
  ConvertResult,
  CreateResult,
  FormatDescription,
  ImageInfo,
  JobEvent,
  JobProgress,
  JobSummary,
  MapEntry,
  MeasureInfo,
  RebaseResult,
  ResizeResult,
  SnapshotInfoJson,
} from './types.ts';
import { implementService } from './implementation.ts';
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

export interface PlatterService {
  info(input: S.InfoInput): Promise<ImageInfo | ImageInfo[]>;
  create(input: S.CreateInput): JobHandle<CreateResult>;
  convert(input: S.ConvertInput): JobHandle<ConvertResult>;
  check(input: S.CheckInput): JobHandle<CheckReport>;
  compare(input: S.CompareInput): JobHandle<CompareResult>;
  map(input: S.MapInput): Promise<MapEntry[]>;
  measure(input: S.MeasureInput): Promise<MeasureInfo>;
  resize(input: S.ResizeInput): Promise<ResizeResult>;
  snapshotList(input: S.SnapshotListInput): Promise<SnapshotInfoJson[]>;
  snapshotCreate(input: S.SnapshotInput): Promise<void>;
  snapshotApply(input: S.SnapshotInput): Promise<void>;
  snapshotDelete(input: S.SnapshotInput): Promise<void>;
  commit(input: S.CommitInput): JobHandle<CommitResult>;
  rebase(input: S.RebaseInput): JobHandle<RebaseResult>;
  amend(input: S.AmendInput): JobHandle<void>;
  bitmap(input: S.BitmapInput): JobHandle<void>;
  /** Every registered format with its create/amend option schemas (for generated forms). */
  listFormats(): Promise<FormatDescription[]>;

  /** Jobs started by this service (running and finished, newest last). */
  jobs(): JobSummary[];
  /** Cancel a job by id; false when no running job has that id. */
  cancelJob(jobId: string): boolean;
  /** Listen to every job's events; returns the unsubscribe function. */
  onEvent(listener: (event: JobEvent) => void): () => void;
  /** Cancel running jobs and wait for them to settle. */
  close(): Promise<void>;
}

export interface ServiceOptions {
  /** Where warnings go (qemu-img prints them on stderr). Default: collected and dropped. */
  warn?: (message: string) => void;
  /** Where warnings go that qemu-img prints as "<program>: warning: <message>" (its
   *  warn_report: convert --salvage). Default: `warn` with "warning: " in front. */
  warnReport?: (message: string) => void;
}

/** The input schema of every callable method (the IPC layers validate with these). */
export const INPUT_SCHEMAS = {
  info: S.infoInput,
  create: S.createInput,
  convert: S.convertInput,
  check: S.checkInput,
  compare: S.compareInput,
  map: S.mapInput,
  measure: S.measureInput,
  resize: S.resizeInput,
  snapshotList: S.snapshotListInput,
  snapshotCreate: S.snapshotInput,
  snapshotApply: S.snapshotInput,
  snapshotDelete: S.snapshotInput,
  commit: S.commitInput,
  rebase: S.rebaseInput,
  amend: S.amendInput,
  bitmap: S.bitmapInput,
  listFormats: S.listFormatsInput,
  jobs: S.listFormatsInput,
  cancelJob: S.jobIdInput,
} as const satisfies Record<string, z.ZodType>;

export type MethodName = keyof typeof INPUT_SCHEMAS;

/** Methods that return a JobHandle: callService answers them at once with {jobId}. */
export const JOB_METHODS = ['create', 'convert', 'check', 'compare', 'commit', 'rebase', 'amend', 'bitmap'] as const;
export type JobMethod = (typeof JOB_METHODS)[number];

export function isMethodName(name: unknown): name is MethodName {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(INPUT_SCHEMAS, name);
}

export function isJobMethod(name: string): name is JobMethod {
  return (JOB_METHODS as readonly string[]).includes(name);
}

/**
 * Validate `input` against the method's schema and call it. Job methods answer {jobId} at once
 * (follow them with onEvent); others answer their result. Throws a BlockError ('InvalidArgument')
 * for an unknown method or invalid input, with zod's findings in words.
 */
export async function callService(service: PlatterService, method: string, input: unknown): Promise<unknown> {
  const { invalidArgument } = await import('../errors.ts');
  if (!isMethodName(method)) throw invalidArgument(`Unknown method '${String(method)}'`);
  const parsed = INPUT_SCHEMAS[method].safeParse(input);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ');
    throw invalidArgument(`Invalid input for '${method}': ${why}`);
  }
  const value = parsed.data as never;
  switch (method) {
    case 'listFormats':
      return service.listFormats();
    case 'jobs':
      return service.jobs();
    case 'cancelJob':
      return service.cancelJob((value as S.JobIdInput).jobId);
    default: {
      const fn = (service as unknown as Record<string, (i: unknown) => unknown>)[method]!;
      const out = fn.call(service, value);
      if (isJobMethod(method)) {
        const h = out as JobHandle<unknown>;
        h.result.catch(() => {}); // reported through onEvent
        return { jobId: h.id };
      }
      return out;
    }
  }
}

/** A new service instance (one per CLI run, one per app window/server). */
export function createPlatterService(options: ServiceOptions = {}): PlatterService {
  return implementService(options);
}

// The implementation behind createPlatterService (service.ts): parses each method's input with its
// zod schema, builds the secrets for the call (cleared when it ends), runs the core/jobs function,
// and wraps long methods in job handles (progress, cancel, events).

import type * as S from './schemas.ts';
import type { JobHandle, PlatterService, ServiceOptions } from './service.ts';
import type { CheckReport, FormatDescription, FormatOptionJson, ImageInfo, JobEvent, JobProgress, JobState, JobSummary, SerializedError } from './types.ts';
import { BlockError, invalidArgument } from '../errors.ts';
import { formatDrivers } from '../block/registry.ts';
import type { OptionSpec } from '../block/options-schema.ts';
import { parseImageSize, secretStoreFrom, type ImageSpec, type JobControl, type JobEnv } from '../jobs/common.ts';
import { info as infoJob } from '../jobs/info.ts';
import { create as createJob } from '../jobs/create.ts';
import { convert as convertJob } from '../jobs/convert.ts';
import { check as checkJob } from '../jobs/check.ts';
import { compare as compareJob } from '../jobs/compare.ts';
import { map as mapJob, toApiEntries } from '../jobs/map.ts';
import { measure as measureJob } from '../jobs/measure.ts';
import { resize as resizeJob } from '../jobs/resize.ts';
import { snapshotAction, snapshotList } from '../jobs/snapshot.ts';
import { commit as commitJob } from '../jobs/commit.ts';
import { rebase as rebaseJob } from '../jobs/rebase.ts';
import { amend as amendJob } from '../jobs/amend.ts';
import { bitmap as bitmapJob } from '../jobs/bitmap.ts';

/** How many finished jobs a service remembers for jobs(). */
const KEEP_FINISHED = 100;

export function serializeError(e: unknown): SerializedError {
  if (e instanceof BlockError) return e.toJSON();
  const err = e as Error;
  return { name: err?.name ?? 'Error', kind: 'Io', message: err?.message ?? String(e) };
}

/** A name for a job label from untrusted input. */
function name(v: unknown): string {
  return typeof v === 'string' ? v : '?';
}

function toSpec(r: S.ImageRef): ImageSpec {
  return { filename: r.filename, ...(r.format ? { format: r.format } : {}), ...(r.imageOpts ? { imageOpts: true } : {}), ...(r.forceShare ? { forceShare: true } : {}) };
}

function optionJson(o: OptionSpec): FormatOptionJson {
  return {
    name: o.name,
    type: o.type,
    help: o.help,
    ...(o.default !== undefined ? { default: o.default } : {}),
    ...(o.values ? { values: [...o.values] } : {}),
    ...(o.min !== undefined ? { min: o.min } : {}),
    ...(o.max !== undefined ? { max: o.max } : {}),
    ...(o.powerOfTwo ? { powerOfTwo: true } : {}),
    ...(o.advanced ? { advanced: true } : {}),
  };
}

type SchemaName = 'infoInput' | 'createInput' | 'convertInput' | 'checkInput' | 'compareInput' | 'mapInput' | 'measureInput' | 'resizeInput' | 'snapshotInput' | 'snapshotListInput' | 'commitInput' | 'rebaseInput' | 'amendInput' | 'bitmapInput';

/**
 * Validate `input` with the named zod schema (loaded on first use: zod costs a noticeable part of
 * a CLI start, and the CLI builds its inputs itself). Returns the parsed value (defaults applied).
 */
async function validated<T>(enabled: boolean, name: SchemaName, input: T): Promise<T> {
  if (!enabled) return input;
  const schemas = await import('./schemas.ts');
  const r = schemas[name].safeParse(input);
  if (!r.success) {
    throw invalidArgument(`Invalid input: ${r.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ')}`);
  }
  return r.data as T;
}

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

  /** Run `fn` with a fresh environment (secrets from the input), clearing secrets at the end. */
  async function withEnv<T>(input: { secrets?: S.SecretInput[] | undefined; objects?: string[] | undefined }, fn: (env: JobEnv) => Promise<T>): Promise<T> {
    const env: JobEnv = { secrets: secretStoreFrom(input.objects ?? [], input.secrets ?? []), warn, ...(warnReport ? { warnReport } : {}) };
    try {
      return await fn(env);
    } finally {
      env.secrets.clear();
    }
  }

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

  const service: PlatterService = {
    async info(raw) {
      const i = await validated(validate, 'infoInput', raw);
      return withEnv(i, (env) => infoJob({ image: toSpec(i.image), backingChain: i.backingChain ?? false }, env)) as Promise<ImageInfo | ImageInfo[]>;
    },

    create(raw) {
      return startJob('create', `Create ${name(raw?.filename)}`, async (ctl) => {
        const i = await validated(validate, 'createInput', raw);
        return withEnv(i, async (env) => {
          const r = await createJob(
            {
              filename: i.filename,
              format: i.format ?? 'raw',
              ...(i.size !== undefined ? { size: parseImageSize(i.size) } : {}),
              ...(i.options !== undefined ? { options: i.options } : {}),
              ...(i.backingFile !== undefined ? { backingFile: i.backingFile } : {}),
              ...(i.backingFormat !== undefined ? { backingFormat: i.backingFormat } : {}),
              unsafe: i.unsafe ?? false,
            },
            env,
            ctl,
          );
          return { filename: r.filename, format: r.format, size: r.size, options: r.options };
        });
      });
    },

    convert(raw) {
      return startJob('convert', `Convert ${name(raw?.source?.filename)} -> ${name(raw?.target?.filename)}`, async (ctl) => {
        const i = await validated(validate, 'convertInput', raw);
        return withEnv(i, (env) =>
          convertJob(
            {
              sources: [i.source, ...(i.moreSources ?? [])].map(toSpec),
              target: { filename: i.target.filename, ...(i.target.format ? { format: i.target.format } : {}), ...(i.target.options !== undefined ? { options: i.target.options } : {}), ...(i.target.imageOpts ? { imageOpts: true } : {}) },
              noCreate: i.noCreate ?? false,
              targetIsZero: i.targetIsZero ?? false,
              ...(i.sparseSize !== undefined ? { sparseSize: parseImageSize(i.sparseSize) } : {}),
              compressed: i.compressed ?? false,
              outOfOrder: i.outOfOrder ?? false,
              ...(i.salvage ? { salvage: true } : {}),
              ...(i.parallel !== undefined ? { parallel: i.parallel } : {}),
              ...(i.snapshot !== undefined ? { snapshot: i.snapshot } : {}),
              ...(i.backingFile !== undefined ? { backingFile: i.backingFile } : {}),
              ...(i.backingFormat !== undefined ? { backingFormat: i.backingFormat } : {}),
              ...(i.cache !== undefined ? { cache: i.cache } : {}),
              ...(i.bitmaps ? { bitmaps: true } : {}),
              ...(i.skipBrokenBitmaps ? { skipBrokenBitmaps: true } : {}),
            },
            env,
            ctl,
          ),
        );
      });
    },

    check(raw) {
      return startJob('check', `Check ${name(raw?.image?.filename)}`, async (ctl) => {
        const i = await validated(validate, 'checkInput', raw);
        return withEnv(i, (env) => checkJob({ image: toSpec(i.image), ...(i.repair ? { repair: i.repair } : {}) }, env, ctl));
      }) as JobHandle<CheckReport>;
    },

    compare(raw) {
      return startJob('compare', `Compare ${name(raw?.a?.filename)} with ${name(raw?.b?.filename)}`, async (ctl) => {
        const i = await validated(validate, 'compareInput', raw);
        return withEnv(i, (env) => compareJob({ a: toSpec(i.a), b: toSpec(i.b), strict: i.strict ?? false }, env, ctl));
      });
    },

    async map(raw) {
      const i = await validated(validate, 'mapInput', raw);
      return toApiEntries(await withEnv(i, (env) => mapJob({ image: toSpec(i.image), ...(i.start !== undefined ? { start: i.start } : {}), ...(i.length !== undefined ? { length: i.length } : {}) }, env)));
    },

    async measure(raw) {
      const i = await validated(validate, 'measureInput', raw);
      return withEnv(i, (env) =>
        measureJob(
          {
            format: i.format ?? 'raw',
            // Only arithmetic is done with it: sizes past 2^53 (to 2^63 - 1) are measured too.
            ...(i.size !== undefined ? { size: parseImageSize(i.size, { inexact: true }) } : {}),
            ...(i.source ? { source: toSpec(i.source) } : {}),
            ...(i.snapshot !== undefined ? { snapshot: i.snapshot } : {}),
            ...(i.options !== undefined ? { options: i.options } : {}),
          },
          env,
        ),
      );
    },

    async resize(raw) {
      const i = await validated(validate, 'resizeInput', raw);
      return withEnv(i, (env) => resizeJob({ image: toSpec(i.image), size: i.size, shrink: i.shrink ?? false, ...(i.preallocation ? { preallocation: i.preallocation } : {}) }, env));
    },

    async snapshotList(raw) {
      const i = await validated(validate, 'snapshotListInput', raw);
      return withEnv(i, (env) => snapshotList(toSpec(i.image), env));
    },
    async snapshotCreate(raw) {
      const i = await validated(validate, 'snapshotInput', raw);
      return withEnv(i, (env) => snapshotAction('create', toSpec(i.image), i.name, env));
    },
    async snapshotApply(raw) {
      const i = await validated(validate, 'snapshotInput', raw);
      return withEnv(i, (env) => snapshotAction('apply', toSpec(i.image), i.name, env));
    },
    async snapshotDelete(raw) {
      const i = await validated(validate, 'snapshotInput', raw);
      return withEnv(i, (env) => snapshotAction('delete', toSpec(i.image), i.name, env));
    },

    commit(raw) {
      return startJob('commit', `Commit ${name(raw?.image?.filename)}`, async (ctl) => {
        const i = await validated(validate, 'commitInput', raw);
        return withEnv(i, (env) => commitJob({ image: toSpec(i.image), ...(i.base !== undefined ? { base: i.base } : {}), drop: i.drop ?? false }, env, ctl));
      });
    },

    rebase(raw) {
      return startJob('rebase', `Rebase ${name(raw?.image?.filename)} onto ${name(raw?.backingFile) || '(none)'}`, async (ctl) => {
        const i = await validated(validate, 'rebaseInput', raw);
        return withEnv(i, (env) => rebaseJob({ image: toSpec(i.image), backingFile: i.backingFile, ...(i.backingFormat ? { backingFormat: i.backingFormat } : {}), unsafe: i.unsafe ?? false }, env, ctl));
      });
    },

    amend(raw) {
      return startJob('amend', `Amend ${name(raw?.image?.filename)}`, async (ctl) => {
        const i = await validated(validate, 'amendInput', raw);
        return withEnv(i, (env) => amendJob({ image: toSpec(i.image), options: i.options, force: i.force ?? false }, env, ctl));
      });
    },

    bitmap(raw) {
      return startJob('bitmap', `Bitmap ${name(raw?.bitmap)} of ${name(raw?.image?.filename)}`, async (ctl) => {
        const i = await validated(validate, 'bitmapInput', raw);
        return withEnv(i, (env) => bitmapJob({ image: toSpec(i.image), bitmap: i.bitmap, actions: i.actions, ...(i.granularity !== undefined ? { granularity: i.granularity } : {}), ...(i.sourceImage ? { sourceImage: toSpec(i.sourceImage) } : {}) }, env, ctl));
      });
    },

    async listFormats(): Promise<FormatDescription[]> {
      return formatDrivers().map((d) => ({
        name: d.name,
        description: d.description,
        canCreate: typeof d.create === 'function',
        readOnly: d.readOnlyFormat ?? false,
        supportsBacking: d.supportsBacking ?? d.createOptions.some((o) => o.name === 'backing_file'),
        createOptions: d.createOptions.map(optionJson),
        amendOptions: (d.amendOptions ?? []).map(optionJson),
      }));
    },

    jobs() {
      return [...jobs.values()].map((j) => ({ ...j.summary, progress: { ...j.summary.progress } }));
    },

    cancelJob(jobId) {
      const j = jobs.get(jobId);
      if (!j || j.summary.state !== 'running') return false;
      j.controller.abort();
      return true;
    },

    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    async close() {
      for (const j of jobs.values()) if (j.summary.state === 'running') j.controller.abort();
      await Promise.all([...jobs.values()].map((j) => j.settled));
    },
  };
  return service;
}

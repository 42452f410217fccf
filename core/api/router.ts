// The service's one router (docs/architecture.md "core/api"): every method is ONE entry here,
// `name: { input: zod schema, kind: 'query' | 'job', run }`. Everything else is derived from it:
// the service type and object (service.ts, implementation.ts), the dispatcher both transports
// share (Electron IPC and browser mode's WebSocket, electron/dispatch.ts), which validates each
// call once with `input`, and the renderer's typed client (renderer/api-client.ts imports
// `type AppRouter` only). A 'query' answers its result; a 'job' runs as a job (progress, cancel,
// events) and the wire answers {jobId} at once.

import type { z } from 'zod';
import * as S from './schemas.ts';
import { imageSpec } from './image-spec.ts';
import type { FormatDescription, FormatOptionJson, JobSummary } from './types.ts';
import type { JobHandle, PlatterService } from './service.ts';
import type { JobControl, JobEnv } from '../jobs/common.ts';
import { parseImageSize } from '../jobs/common.ts';
import { formatDrivers } from '../drivers/registry.ts';
import type { OptionSpec } from '../block/options-schema.ts';
import type { FormatDriver, FormatEncryption } from '../block/types.ts';
import { LUKS_CREATE_DEFAULTS } from '../crypto/luks-volume.ts';
import { humanInfo, info as infoJob } from '../jobs/info.ts';
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

export type Kind = 'query' | 'job';

/** What a method's `run` gets besides its input. */
export interface CallContext {
  /** Secrets from the call's own `secrets`/`objects` (cleared when the call ends) and warnings. */
  readonly env: JobEnv;
  /** A job's progress and cancel signal (a query gets one that never aborts). */
  readonly ctl: JobControl;
  /** The service the call runs on (the library scan reads images through its `info`). */
  readonly service: PlatterService;
  /** This service's jobs, and cancelling one of them. */
  jobs(): JobSummary[];
  cancelJob(jobId: string): boolean;
}

export interface Procedure<S extends z.ZodType = z.ZodType, R = unknown, K extends Kind = Kind, C = CallContext> {
  /** Validates (and fills defaults of) every call's input, once, where the call enters. */
  readonly input: S;
  readonly kind: K;
  readonly run: (input: z.output<S>, ctx: C) => Promise<R> | R;
  /** A job's words for the jobs panel ("Convert a.vmdk -> b.qcow2"); may see unvalidated input. */
  readonly label?: (input: z.input<S>) => string;
}

/** A method that answers its result. */
export function query<S extends z.ZodType, R, C = CallContext>(input: S, run: (input: z.output<S>, ctx: C) => Promise<R> | R): Procedure<S, R, 'query', C> {
  return { input, kind: 'query', run };
}

/** A long method: it runs as a job with progress, cancel and events. */
export function job<S extends z.ZodType, R, C = CallContext>(input: S, label: (input: z.input<S>) => string, run: (input: z.output<S>, ctx: C) => Promise<R>): Procedure<S, R, 'job', C> {
  return { input, kind: 'job', run, label };
}

/** A name for a job label from untrusted input. */
function str(v: unknown): string {
  return typeof v === 'string' ? v : '?';
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

/** A driver as the GUI sees it: its options and what it can do (FormatDriver's capabilities). */
export function describeFormat(d: FormatDriver): FormatDescription {
  return {
    name: d.name,
    description: d.description,
    canCreate: typeof d.create === 'function',
    readOnly: d.readOnlyFormat ?? false,
    supportsBacking: d.supportsBacking ?? d.createOptions.some((o) => o.name === 'backing_file'),
    compression: d.compressedWrites ?? false,
    ...(d.encryption ? { encryption: describeEncryption(d, d.encryption) } : {}),
    createOptions: d.createOptions.map(optionJson),
    amendOptions: (d.amendOptions ?? []).map(optionJson),
  };
}

/** The options of a LUKS payload in a format's schema (named with its key-secret's prefix), each
 *  with LUKS's default where the schema has none (qcow2's -o help shows no defaults for them). */
function describeEncryption(d: FormatDriver, e: FormatEncryption): NonNullable<FormatDescription['encryption']> {
  const prefix = e.keySecret.slice(0, -'key-secret'.length);
  const cipherOptions = !e.luks
    ? []
    : d.createOptions
        .filter((o) => o.name.startsWith(prefix) && LUKS_CREATE_DEFAULTS[o.name.slice(prefix.length)] !== undefined)
        .map((o) => ({ ...optionJson(o), ...(o.default === undefined ? { default: LUKS_CREATE_DEFAULTS[o.name.slice(prefix.length)]! } : {}) }));
  return { keySecret: e.keySecret, ...(e.luks ? { luks: e.luks === true ? true : { ...e.luks } } : {}), cipherOptions };
}

export const serviceRouter = {
  info: query(S.infoInput, (i, { env }) => infoJob({ image: imageSpec(i.image), backingChain: i.backingChain ?? false }, env)),

  create: job(
    S.createInput,
    (i) => `Create ${str(i?.filename)}`,
    async (i, { env, ctl }) => {
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
    },
  ),

  convert: job(
    S.convertInput,
    (i) => `Convert ${str(i?.source?.filename)} -> ${str(i?.target?.filename)}`,
    (i, { env, ctl }) =>
      convertJob(
        {
          sources: [i.source, ...(i.moreSources ?? [])].map(imageSpec),
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
          ...(i.rateLimit ? { rateLimit: i.rateLimit } : {}),
          ...(i.bitmaps ? { bitmaps: true } : {}),
          ...(i.skipBrokenBitmaps ? { skipBrokenBitmaps: true } : {}),
        },
        env,
        ctl,
      ),
  ),

  check: job(S.checkInput, (i) => `Check ${str(i?.image?.filename)}`, (i, { env, ctl }) => checkJob({ image: imageSpec(i.image), ...(i.repair ? { repair: i.repair } : {}) }, env, ctl)),

  compare: job(S.compareInput, (i) => `Compare ${str(i?.a?.filename)} with ${str(i?.b?.filename)}`, (i, { env, ctl }) => compareJob({ a: imageSpec(i.a), b: imageSpec(i.b), strict: i.strict ?? false }, env, ctl)),

  /** `qemu-img info` as text, as the CLI prints it (for "copy as text"). */
  infoText: query(S.infoInput, async (i, { env }) => {
    const r = await infoJob({ image: imageSpec(i.image), backingChain: i.backingChain ?? false }, env);
    return (Array.isArray(r) ? r : [r]).map((one) => humanInfo(one)).join('\n');
  }),

  map: query(S.mapInput, async (i, { env }) => toApiEntries(await mapJob({ image: imageSpec(i.image), ...(i.start !== undefined ? { start: i.start } : {}), ...(i.length !== undefined ? { length: i.length } : {}) }, env))),

  measure: query(S.measureInput, (i, { env }) =>
    measureJob(
      {
        format: i.format ?? 'raw',
        // Only arithmetic is done with it: sizes past 2^53 (to 2^63 - 1) are measured too.
        ...(i.size !== undefined ? { size: parseImageSize(i.size, { inexact: true }) } : {}),
        ...(i.source ? { source: imageSpec(i.source) } : {}),
        ...(i.snapshot !== undefined ? { snapshot: i.snapshot } : {}),
        ...(i.options !== undefined ? { options: i.options } : {}),
      },
      env,
    ),
  ),

  resize: query(S.resizeInput, (i, { env }) => resizeJob({ image: imageSpec(i.image), size: i.size, shrink: i.shrink ?? false, ...(i.preallocation ? { preallocation: i.preallocation } : {}) }, env)),

  snapshotList: query(S.snapshotListInput, (i, { env }) => snapshotList(imageSpec(i.image), env)),
  snapshotCreate: query(S.snapshotInput, (i, { env }) => snapshotAction('create', imageSpec(i.image), i.name, env)),
  snapshotApply: query(S.snapshotInput, (i, { env }) => snapshotAction('apply', imageSpec(i.image), i.name, env)),
  snapshotDelete: query(S.snapshotInput, (i, { env }) => snapshotAction('delete', imageSpec(i.image), i.name, env)),

  commit: job(S.commitInput, (i) => `Commit ${str(i?.image?.filename)}`, (i, { env, ctl }) => commitJob({ image: imageSpec(i.image), ...(i.base !== undefined ? { base: i.base } : {}), drop: i.drop ?? false, ...(i.rateLimit ? { rateLimit: i.rateLimit } : {}) }, env, ctl)),

  rebase: job(
    S.rebaseInput,
    (i) => `Rebase ${str(i?.image?.filename)} onto ${str(i?.backingFile) || '(none)'}`,
    (i, { env, ctl }) => rebaseJob({ image: imageSpec(i.image), backingFile: i.backingFile, ...(i.backingFormat ? { backingFormat: i.backingFormat } : {}), unsafe: i.unsafe ?? false, ...(i.backingCache ? { backingCache: i.backingCache } : {}) }, env, ctl),
  ),

  amend: job(S.amendInput, (i) => `Amend ${str(i?.image?.filename)}`, (i, { env, ctl }) => amendJob({ image: imageSpec(i.image), options: i.options, force: i.force ?? false }, env, ctl)),

  bitmap: job(
    S.bitmapInput,
    (i) => `Bitmap ${str(i?.bitmap)} of ${str(i?.image?.filename)}`,
    (i, { env, ctl }) => bitmapJob({ image: imageSpec(i.image), bitmap: i.bitmap, actions: i.actions, ...(i.granularity !== undefined ? { granularity: i.granularity } : {}), ...(i.sourceImage ? { sourceImage: imageSpec(i.sourceImage) } : {}) }, env, ctl),
  ),

  /** Every registered format with its option schemas and capabilities (for generated forms). */
  listFormats: query(S.listFormatsInput, (): FormatDescription[] => formatDrivers().map(describeFormat)),

  /** Jobs started by this service (running and finished, newest last). */
  jobs: query(S.listFormatsInput, (_i, ctx) => ctx.jobs()),

  /** Cancel a job by id; false when no running job has that id. */
  cancelJob: query(S.jobIdInput, (i, ctx) => ctx.cancelJob(i.jobId)),
};

export type ServiceRouter = typeof serviceRouter;

/** A router: method names to procedures. */
export type Router = Record<string, Procedure<z.ZodType, unknown, Kind, never>>;

type AnyProc = Procedure<z.ZodType, unknown, Kind, never>;
export type InputOf<P> = P extends Procedure<infer S, unknown, Kind, never> ? z.input<S> : never;
export type ResultOf<P> = P extends { run: (...a: never[]) => infer R } ? Awaited<R> : never;

/** A method as a function: its input argument is optional where the schema accepts undefined. */
type Fn<P extends AnyProc, Out> = undefined extends InputOf<P> ? (input?: InputOf<P>) => Out : (input: InputOf<P>) => Out;

/** The in-process form of a router (the service): a job answers a JobHandle, a query a Promise. */
export type RouterMethods<R> = {
  [K in keyof R]: R[K] extends AnyProc ? Fn<R[K], R[K]['kind'] extends 'job' ? JobHandle<ResultOf<R[K]>> : Promise<ResultOf<R[K]>>> : never;
};

/** The wire form of a router (the renderer's client): a job answers {jobId} at once, a query
 *  its result, `undefined` travelling as null. */
export type RouterClient<R> = {
  [K in keyof R]: R[K] extends AnyProc ? Fn<R[K], Promise<R[K]['kind'] extends 'job' ? { jobId: string } : ResultOf<R[K]> extends undefined | void ? null : ResultOf<R[K]>>> : never;
};

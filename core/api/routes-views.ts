// The app's methods for issue #16's views (items 3, 5, 6, 9): a convert that verifies its copy
// and can be resumed, interrupted converts found in library folders, deleting a source only
// after a verified copy, the allocation map's data, and qemu-img bench. One spread line puts
// them into the app's router (app-router.ts); their schemas live here.

import { readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { imageRef, secretInput } from './schemas.ts';
import { imageSpec } from './image-spec.ts';
import { job, query } from './router.ts';
import type { ImageSpec } from '../jobs/common.ts';
import { convert as convertJob } from '../jobs/convert.ts';
import { info as infoJob } from '../jobs/info.ts';
import { map as mapJob, toApiEntries } from '../jobs/map.ts';
import { bench as benchJob, benchHeader } from '../jobs/bench.ts';
import { findFormat } from '../drivers/registry.ts';
import { parseOptions, type OptionValues } from '../block/options-schema.ts';
import { STAGING_MARK } from '../jobs/staging.ts';
import { describeInterrupted, discardInterrupted, resumableConvert, readJournal, verifyCopy, whyNotResumable, type InterruptedConvert, type VerifyResult } from '../jobs/resumable-convert.ts';
import { summarize, type AllocationSummary } from '../shared/allocation-map.ts';
import type { ImageInfo, MapEntry } from './types.ts';
import { BlockError, invalidArgument } from '../errors.ts';

const withSecrets = { secrets: z.array(secretInput).optional(), objects: z.array(z.string()).optional() };

function str(v: unknown): string {
  return typeof v === 'string' ? v : '?';
}

export const convertVerifiedInput = z.object({
  source: imageRef,
  target: z.object({ filename: z.string().min(1), format: z.string().min(1), options: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional() }),
  compressed: z.boolean().optional(),
  snapshot: z.string().optional(),
  /** Keep a journal so a cancelled or killed convert can be resumed (where the target allows). */
  resumable: z.boolean().default(true),
  /** Compare with the source and check the target afterwards. */
  verify: z.boolean().default(true),
  ...withSecrets,
});
export const convertResumeInput = z.object({ target: z.string().min(1), verify: z.boolean().default(true), ...withSecrets });
export const targetInput = z.object({ target: z.string().min(1) });
export const foldersInput = z.object({ paths: z.array(z.string().min(1)).max(1000) });
export const deleteSourceInput = z.object({ source: z.string().min(1), target: z.string().min(1) });
export const allocationInput = z.object({ image: imageRef, ...withSecrets });
export const benchInput = z.object({
  image: imageRef,
  count: z.number().int().min(1).max(10_000_000).optional(),
  depth: z.number().int().min(1).max(1024).optional(),
  size: z.number().int().min(1).max(64 << 20).optional(),
  step: z.number().int().min(0).optional(),
  offset: z.number().int().min(0).optional(),
  write: z.boolean().optional(),
  pattern: z.number().int().min(0).max(255).optional(),
  flushInterval: z.number().int().min(0).optional(),
  ...withSecrets,
});
export type ConvertVerifiedInput = z.input<typeof convertVerifiedInput>;

export interface ConvertVerifiedResult {
  source: string;
  target: string;
  format: string;
  bytesCopied: number;
  bytesSkipped: number;
  /** The convert kept a journal (a cancel or kill can be resumed). */
  resumable: boolean;
  /** Why it could not keep one (the target's format or options). */
  notResumable?: string;
  /** Where a resumed copy started. */
  resumedFrom?: number;
  verify?: VerifyResult;
  /** The source may be deleted (a verified copy of a plain file). */
  deletable?: boolean;
}

/** Copies verified in this process: source path -> what was true when it was verified. The source
 *  may be deleted only while it is still the file that was verified. */
const verifiedCopies = new Map<string, { target: string; size: number; mtimeMs: number; ino: number }>();

function rememberVerified(source: string, target: string): void {
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(source) || /^[A-Za-z][A-Za-z0-9+.-]*:/.test(target)) return;
  try {
    const st = statSync(source);
    verifiedCopies.set(resolve(source), { target: resolve(target), size: st.size, mtimeMs: st.mtimeMs, ino: st.ino });
  } catch {
    // not a plain file: nothing to delete later
  }
}

async function afterCopy(source: ImageSpec, target: ImageSpec, verify: boolean, env: Parameters<typeof verifyCopy>[2], ctl: Parameters<typeof verifyCopy>[3]): Promise<VerifyResult | undefined> {
  if (!verify) return undefined;
  const v = await verifyCopy(source, target, env, ctl);
  if (v.verified) rememberVerified(source.filename, target.filename);
  return v;
}

export const viewsRoutes = {
  /** Convert (qemu-img convert), resumable where the target allows, then verified
   *  (qemu-img compare + check). */
  convertVerified: job(
    convertVerifiedInput,
    (i) => `Convert ${str(i?.source?.filename)} -> ${str(i?.target?.filename)}`,
    async (i, { env, ctl }): Promise<ConvertVerifiedResult> => {
      const options: OptionValues = (i.target.options ?? {}) as OptionValues;
      const notResumable = i.resumable
        ? whyNotResumable({ format: i.target.format, options, sources: 1, ...(i.compressed ? { compressed: true } : {}), ...(i.snapshot ? { snapshot: true } : {}), targetFilename: i.target.filename }) ??
          (i.source.imageOpts || /^[A-Za-z][A-Za-z0-9+.-]*:/.test(i.source.filename) ? 'the source is not a plain file' : undefined)
        : 'not asked for';
      const source = imageSpec(i.source);
      let stats: { bytesCopied: number; bytesSkipped: number; format: string; resumedFrom?: number };
      if (!notResumable) {
        const driver = findFormat(i.target.format);
        if (driver) parseOptions(driver.createOptions, options); // refuse bad options before anything is written
        stats = await resumableConvert({ source, target: { filename: i.target.filename, format: i.target.format, options } }, env, ctl);
      } else {
        stats = await convertJob({ sources: [source], target: { filename: i.target.filename, format: i.target.format, options }, ...(i.compressed ? { compressed: true } : {}), ...(i.snapshot ? { snapshot: i.snapshot } : {}) }, env, ctl);
      }
      // A convert from a snapshot copied other contents than the source's current state: nothing
      // to compare with. An encrypted target opens with the key secret it was created with.
      const keyOption = Object.keys(options).find((k) => k.endsWith('key-secret') && typeof options[k] === 'string');
      const targetSpec: ImageSpec = keyOption
        ? { filename: `json:${JSON.stringify({ driver: i.target.format, file: { driver: 'file', filename: i.target.filename }, ...(keyOption === 'key-secret' ? { 'key-secret': options[keyOption] } : { encrypt: { 'key-secret': options[keyOption] } }) })}` }
        : { filename: i.target.filename, format: i.target.format };
      const verify = i.snapshot ? undefined : await afterCopy(source, targetSpec, i.verify, env, ctl);
      return {
        source: i.source.filename,
        target: i.target.filename,
        format: stats.format,
        bytesCopied: stats.bytesCopied,
        bytesSkipped: stats.bytesSkipped,
        resumable: !notResumable,
        ...(notResumable ? { notResumable } : {}),
        ...(verify ? { verify } : {}),
        deletable: verifiedCopies.get(resolve(i.source.filename))?.target === resolve(i.target.filename),
      };
    },
  ),

  /** Continue an interrupted resumable convert into `target` from its journal. */
  convertResume: job(
    convertResumeInput,
    (i) => `Resume convert -> ${str(i?.target)}`,
    async (i, { env, ctl }): Promise<ConvertVerifiedResult> => {
      const j = readJournal(i.target);
      const source: ImageSpec = { filename: j.source.path, format: j.source.format };
      const r = await resumableConvert({ source, target: { filename: j.target.path, format: j.target.format, options: j.target.options }, resume: true }, env, ctl);
      const verify = await afterCopy(source, { filename: j.target.path, format: j.target.format }, i.verify, env, ctl);
      return { source: j.source.path, target: j.target.path, format: r.format, bytesCopied: r.bytesCopied, bytesSkipped: r.bytesSkipped, resumable: true, resumedFrom: r.resumedFrom, ...(verify ? { verify } : {}), deletable: verifiedCopies.get(j.source.path)?.target === j.target.path };
    },
  ),

  /** Interrupted resumable converts whose journals lie in these folders (or beside these files). */
  interruptedConverts: query(foldersInput, (i): InterruptedConvert[] => {
    const out: InterruptedConvert[] = [];
    const seen = new Set<string>();
    for (const p of i.paths) {
      let dir = resolve(p);
      try {
        if (!statSync(dir).isDirectory()) dir = dirname(dir);
      } catch {
        continue;
      }
      if (seen.has(dir)) continue;
      seen.add(dir);
      let names: string[] = [];
      try {
        names = readdirSync(dir);
      } catch {
        continue;
      }
      const suffix = `${STAGING_MARK}journal.json`;
      for (const n of names) {
        if (!n.startsWith('.') || !n.endsWith(suffix)) continue;
        const target = join(dir, n.slice(1, -suffix.length));
        const d = describeInterrupted(target);
        if (d) out.push(d);
      }
    }
    return out;
  }),

  /** Remove an interrupted convert's staged file and journal. */
  discardInterruptedConvert: query(targetInput, (i) => {
    discardInterrupted(i.target);
    return true;
  }),

  /** Delete the source of a copy this app verified, while it is still the file it verified. */
  deleteVerifiedSource: query(deleteSourceInput, (i) => {
    const src = resolve(i.source);
    const v = verifiedCopies.get(src);
    if (!v || v.target !== resolve(i.target)) throw invalidArgument(`${i.source} was not verified against ${i.target}: Platter deletes a source only after a verified copy`);
    let st;
    try {
      st = statSync(src);
    } catch {
      throw new BlockError('NotFound', `${i.source} is gone already`);
    }
    if (!st.isFile() || st.size !== v.size || st.mtimeMs !== v.mtimeMs || st.ino !== v.ino) throw invalidArgument(`${i.source} changed after it was verified: verify the copy again before deleting it`);
    try {
      statSync(v.target);
    } catch {
      throw new BlockError('NotFound', `The verified copy ${i.target} is gone: the source is kept`);
    }
    rmSync(src);
    verifiedCopies.delete(src);
    return { deleted: i.source };
  }),

  /** The allocation map's data: qemu-img map entries, the chain's layers, bytes per layer. */
  allocationMap: query(allocationInput, async (i, { env }): Promise<{ entries: MapEntry[]; layers: ImageInfo[]; summary: AllocationSummary }> => {
    const info = await infoJob({ image: imageSpec(i.image), backingChain: true }, env);
    const layers = Array.isArray(info) ? info : [info];
    const entries = toApiEntries(await mapJob({ image: imageSpec(i.image) }, env));
    return { entries, layers, summary: summarize(entries, layers) };
  }),

  /** qemu-img bench: elapsed seconds and qemu-img's header line. */
  bench: job(
    benchInput,
    (i) => `Bench ${str(i?.image?.filename)}`,
    async (i, { env, ctl }) => {
      const o = {
        image: imageSpec(i.image),
        ...(i.count !== undefined ? { count: i.count } : {}),
        ...(i.depth !== undefined ? { depth: i.depth } : {}),
        ...(i.size !== undefined ? { size: i.size } : {}),
        ...(i.step !== undefined ? { step: i.step } : {}),
        ...(i.offset !== undefined ? { offset: i.offset } : {}),
        ...(i.write ? { write: true } : {}),
        ...(i.pattern !== undefined ? { pattern: i.pattern } : {}),
        ...(i.flushInterval ? { flushInterval: i.flushInterval } : {}),
      };
      const seconds = await benchJob(o, env, ctl);
      return { header: benchHeader(o), seconds, text: `Run completed in ${seconds.toFixed(3)} seconds.` };
    },
  ),
};

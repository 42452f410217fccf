// A convert that can be resumed, and verifying a finished copy (issue #16, items 5 and 6).
//
// resumableConvert copies one source image into a new raw or qcow2 image written under a fixed
// staging name beside the target (`.NAME.platter-partial-resumable`, hidden like every staging
// leftover, so a killed convert never leaves a file under the target's name that opens as a
// finished image). Beside it, a journal (`.NAME.platter-partial-journal.json`) records the
// source's identity (path, size, mtime, inode, SHA-256 of its first and last MiB), the target's
// (staged path, inode, format, options, virtual size) and the prefix of the virtual disk whose
// bytes are written to the target file: the journal is replaced atomically (write + rename) only after
// the target was flushed, so it never claims more than the target holds. A cancelled or failed
// convert keeps both; so does a killed one (the journal is at most one interval old).
//
// Resume trusts nothing it has not checked: the journal must parse and name this target, the
// source must still be the same file (size, mtime, inode, head and tail hashes), the staged file
// the same inode, of the recorded format and size, and (qcow2) `check` must find no corruption
// (leaks, which a kill may leave, are repaired). Then only the bytes after the journal's prefix
// are copied; there the target may hold anything a killed run wrote after its last journal, so
// ranges that are zero in the source are zeroed in the target unless it already reads as zeros.
//
// Resumable target formats: raw (every byte is where the guest offset says) and qcow2 (its
// metadata is flushed before each journal write; a kill leaves at worst leaked clusters, which the
// check before resuming repairs). Other formats, compressed targets, targets with a backing file
// or encryption, and several sources go through the ordinary convert (convert.ts).
//
// verifyCopy: qemu-img compare of source and target, then qemu-img check of the target.

import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync, fsyncSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { blockStatusAbove, type BlockNode } from '../block/node.ts';
import { openImage } from '../drivers/open.ts';
import { createImage } from '../drivers/create.ts';
import { findFormat } from '../drivers/registry.ts';
import { parseOptions, type OptionValues } from '../block/options-schema.ts';
import { BlockError, cancelled, invalidArgument, unsupported } from '../errors.ts';
import type { CheckReport, CompareResult } from '../api/types.ts';
import { openSpec, progressReporter, type ImageSpec, type JobControl, type JobEnv } from './common.ts';
import { STAGING_MARK } from './staging.ts';
import { isZero } from './zero-detect.ts';
import { compare } from './compare.ts';
import { check } from './check.ts';

/** Target formats a convert can resume into (see the head of this file for why these). */
export const RESUMABLE_FORMATS: readonly string[] = ['raw', 'qcow2'];
export const JOURNAL_VERSION = 1;
/** Bytes per copy request. */
const CHUNK = 4 << 20;
/** Requests in flight. */
const LANES = 4;
/** How often the journal is brought up to date (ms). */
export const DEFAULT_JOURNAL_INTERVAL_MS = 1000;
/** Bytes hashed at each end of the source file. */
const HASH_SPAN = 1 << 20;

export interface ResumableConvertOptions {
  source: ImageSpec;
  target: { filename: string; format: string; options?: OptionValues };
  /** Continue from the journal (refused, with the reason, when it cannot be trusted). */
  resume?: boolean;
  journalIntervalMs?: number;
}

export interface ResumableConvertResult {
  target: string;
  format: string;
  bytesCopied: number;
  bytesSkipped: number;
  /** Where the copy started (0, or the journal's prefix when resumed). */
  resumedFrom: number;
}

export interface SourceIdentity {
  path: string;
  format: string;
  virtualSize: number;
  fileSize: number;
  mtimeMs: number;
  ino: number;
  headSha256: string;
  tailSha256: string;
}

export interface ConvertJournal {
  version: typeof JOURNAL_VERSION;
  source: SourceIdentity;
  target: { path: string; stagedPath: string; format: string; options: OptionValues; virtualSize: number; ino: number };
  /** [start, end) byte ranges of the virtual disk that are in the target (one prefix today). */
  done: [number, number][];
  updated: string;
}

/** The staged file and the journal of a resumable convert into `target`. */
export function resumePaths(target: string): { staged: string; journal: string } {
  const final = resolve(target);
  const dir = dirname(final);
  const name = basename(final);
  return { staged: join(dir, `.${name}${STAGING_MARK}resumable`), journal: join(dir, `.${name}${STAGING_MARK}journal.json`) };
}

/** Can this convert run resumably? undefined when it can, else why not (in words). */
export function whyNotResumable(o: { format: string; options?: OptionValues; sources: number; compressed?: boolean; backing?: boolean; snapshot?: boolean; targetFilename: string }): string | undefined {
  if (!RESUMABLE_FORMATS.includes(o.format)) return `a ${o.format} target cannot be resumed (only ${RESUMABLE_FORMATS.join(' and ')})`;
  if (o.sources !== 1) return 'several sources cannot be resumed';
  if (o.compressed) return 'compressed targets cannot be resumed';
  if (o.backing) return 'targets with a backing file cannot be resumed';
  if (o.snapshot) return 'a convert from a snapshot cannot be resumed';
  if (Object.keys(o.options ?? {}).some((k) => k.includes('encrypt') || k.endsWith('key-secret') || k === 'data_file')) return 'encrypted targets and external data files cannot be resumed';
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(o.targetFilename)) return 'only plain file targets can be resumed';
  return undefined;
}

function sha256Of(fd: number, position: number, length: number): string {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return createHash('sha256').update(buf.subarray(0, done)).digest('hex');
}

/** The identity of a source image file as the journal records it. */
export function sourceIdentity(path: string, format: string, virtualSize: number): SourceIdentity {
  const fd = openSync(path, 'r');
  try {
    const st = fstatSync(fd);
    const span = Math.min(HASH_SPAN, st.size);
    return {
      path: resolve(path),
      format,
      virtualSize,
      fileSize: st.size,
      mtimeMs: st.mtimeMs,
      ino: st.ino,
      headSha256: sha256Of(fd, 0, span),
      tailSha256: sha256Of(fd, st.size - span, span),
    };
  } finally {
    closeSync(fd);
  }
}

/** Write the journal atomically: a temporary file, synced, renamed over the old one. */
function writeJournal(path: string, j: ConvertJournal): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeFileSync(fd, JSON.stringify(j, null, 1) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** A journal refused for resuming (code 'ResumeRefused': the GUI offers to start again). */
function refuse(why: string): BlockError {
  return new BlockError('InvalidArgument', `Cannot resume the convert: ${why}`, {}, { hint: 'Start the convert again (the staged copy is replaced).' });
}

function isNum(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Read and validate the journal of `target` (refusing with the reason when it is unusable). */
export function readJournal(target: string): ConvertJournal {
  const { journal, staged } = resumePaths(target);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(journal, 'utf8'));
  } catch (e) {
    throw refuse((e as NodeJS.ErrnoException).code === 'ENOENT' ? `no journal of an interrupted convert into ${target}` : 'its journal is damaged (not JSON)');
  }
  const j = raw as ConvertJournal;
  const s = j?.source;
  const t = j?.target;
  const ok =
    j?.version === JOURNAL_VERSION &&
    s && typeof s.path === 'string' && typeof s.format === 'string' && isNum(s.virtualSize) && isNum(s.fileSize) && typeof s.mtimeMs === 'number' && isNum(s.ino) && typeof s.headSha256 === 'string' && typeof s.tailSha256 === 'string' &&
    t && typeof t.path === 'string' && t.stagedPath === staged && typeof t.format === 'string' && RESUMABLE_FORMATS.includes(t.format) && typeof t.options === 'object' && t.options !== null && isNum(t.virtualSize) && isNum(t.ino) &&
    Array.isArray(j.done) && j.done.every((r) => Array.isArray(r) && r.length === 2 && isNum(r[0]) && isNum(r[1]) && r[0] <= r[1] && r[1] <= t.virtualSize);
  if (!ok) throw refuse('its journal is damaged (fields missing or out of range)');
  if (t.path !== resolve(target)) throw refuse(`the journal belongs to ${t.path}`);
  return j;
}

/** The prefix the journal says is done. */
function donePrefix(j: ConvertJournal): number {
  let end = 0;
  for (const [a, b] of [...j.done].sort((x, y) => x[0] - y[0])) if (a <= end) end = Math.max(end, b);
  return end;
}

/** Check the journal against the source and the staged target; the reason when they disagree. */
export function journalMismatch(j: ConvertJournal): string | undefined {
  let st;
  try {
    st = statSync(j.source.path);
  } catch {
    return `the source ${j.source.path} is gone`;
  }
  if (st.size !== j.source.fileSize) return `the source changed since the convert stopped (its size is ${st.size}, was ${j.source.fileSize})`;
  if (st.ino !== j.source.ino) return 'the source was replaced by another file since the convert stopped';
  if (st.mtimeMs !== j.source.mtimeMs) return 'the source changed since the convert stopped (it was modified)';
  const now = sourceIdentity(j.source.path, j.source.format, j.source.virtualSize);
  if (now.headSha256 !== j.source.headSha256 || now.tailSha256 !== j.source.tailSha256) return 'the source changed since the convert stopped (its first or last MiB differs)';
  let ts;
  try {
    ts = statSync(j.target.stagedPath);
  } catch {
    return 'the partly written target is gone';
  }
  if (ts.ino !== j.target.ino) return 'the partly written target was replaced by another file';
  return undefined;
}

/** A description of an interrupted convert found beside `target`, or undefined. */
export interface InterruptedConvert {
  target: string;
  source: string;
  format: string;
  done: number;
  total: number;
  updated: string;
  /** The source's format and the target's options (to start again with the same choices). */
  sourceFormat?: string;
  options?: OptionValues;
  /** Why it cannot be resumed (then only "start again" or "discard" are offered). */
  problem?: string;
}

/** Targets a resumable convert of this process is writing now (not interrupted). */
const active = new Set<string>();

export function describeInterrupted(target: string): InterruptedConvert | undefined {
  if (active.has(resolve(target)) || !existsSync(resumePaths(target).journal)) return undefined;
  try {
    const j = readJournal(target);
    const problem = journalMismatch(j);
    return { target: j.target.path, source: j.source.path, format: j.target.format, done: donePrefix(j), total: j.target.virtualSize, updated: j.updated, sourceFormat: j.source.format, options: j.target.options, ...(problem ? { problem } : {}) };
  } catch (e) {
    return { target: resolve(target), source: '', format: '', done: 0, total: 0, updated: '', problem: (e as Error).message };
  }
}

/** Remove an interrupted convert's staged file and journal. */
export function discardInterrupted(target: string): void {
  if (active.has(resolve(target))) throw invalidArgument(`A convert into ${target} is running: cancel it first`);
  removeLeftovers(target);
}

function removeLeftovers(target: string): void {
  const p = resumePaths(target);
  rmSync(p.staged, { force: true });
  rmSync(p.journal, { force: true });
  rmSync(`${p.journal}.tmp`, { force: true });
}

export async function resumableConvert(o: ResumableConvertOptions, env: JobEnv, ctl: JobControl = {}): Promise<ResumableConvertResult> {
  const format = o.target.format;
  const driver = findFormat(format);
  if (!driver?.create) throw unsupported(`Unknown file format '${format}'`);
  const why = whyNotResumable({ format, ...(o.target.options ? { options: o.target.options } : {}), sources: 1, targetFilename: o.target.filename });
  if (why) throw invalidArgument(`This convert cannot be resumable: ${why}`);
  if (o.source.imageOpts || /^[A-Za-z][A-Za-z0-9+.-]*:/.test(o.source.filename)) throw invalidArgument('This convert cannot be resumable: only a plain file source can be identified for resuming');
  const paths = resumePaths(o.target.filename);
  const finalName = resolve(o.target.filename);
  if (resolve(o.source.filename) === finalName) throw invalidArgument('The target must be a new file, not the source');
  const interval = o.journalIntervalMs ?? DEFAULT_JOURNAL_INTERVAL_MS;
  if (active.has(finalName)) throw invalidArgument(`A convert into ${o.target.filename} is running already`);
  active.add(finalName);
  try {
    return await copyResumable(o, driver, paths, finalName, interval, env, ctl);
  } finally {
    active.delete(finalName);
  }
}

async function copyResumable(o: ResumableConvertOptions, driver: NonNullable<ReturnType<typeof findFormat>>, paths: { staged: string; journal: string }, finalName: string, interval: number, env: JobEnv, ctl: JobControl): Promise<ResumableConvertResult> {
  const format = o.target.format;

  let journal: ConvertJournal;
  let start = 0;
  const source = await openSpec(o.source, env, { readOnly: true, noShare: true });
  let target: BlockNode | undefined;
  try {
    const total = source.size;
    if (o.resume) {
      journal = readJournal(o.target.filename);
      const problem = journalMismatch(journal);
      if (problem) throw refuse(problem);
      if (journal.source.path !== resolve(source.filename) && journal.source.path !== resolve(o.source.filename)) throw refuse(`the journal was written for the source ${journal.source.path}`);
      if (journal.source.virtualSize !== total || journal.target.virtualSize !== total) throw refuse('the source\'s virtual size differs from the journal\'s');
      if (journal.target.format === 'qcow2') {
        // A kill may leave leaked clusters (harmless, repaired here); a corruption means the
        // staged image cannot be trusted.
        ctl.onProgress?.({ done: 0, total: 1, phase: 'checking the partial target' });
        const r = await check({ image: { filename: paths.staged, format: 'qcow2' }, repair: 'leaks' }, env);
        if (r.corruptions || r['check-errors'] || r.failed) throw refuse(`qemu-img check finds the partly written target damaged (${r.corruptions ?? 0} corruptions, ${r['check-errors']} errors)`);
      }
      start = donePrefix(journal);
    } else {
      removeLeftovers(o.target.filename);
      const values = parseOptions(driver.createOptions, o.target.options ?? {});
      await createImage({ format, filename: paths.staged, finalName, size: total, options: values, secrets: env.secrets, warn: env.warn, ...(ctl.signal ? { signal: ctl.signal } : {}) });
      journal = {
        version: JOURNAL_VERSION,
        source: sourceIdentity(o.source.filename, source.format, total),
        target: { path: finalName, stagedPath: paths.staged, format, options: o.target.options ?? {}, virtualSize: total, ino: statSync(paths.staged).ino },
        done: [[0, 0]],
        updated: new Date().toISOString(),
      };
      writeJournal(paths.journal, journal);
    }
    // cache=unsafe, as convert's own default: flush() writes qcow2's cached metadata back to the
    // file (so the journal never claims a range a killed process still held in memory) without
    // waiting for the disk. After a power loss the verify step (compare) is what catches a range
    // the journal claims but the disk lost.
    target = await openImage(paths.staged, { format: journal.target.format, readOnly: false, fileOptions: { cache: 'unsafe' }, secrets: env.secrets, warn: env.warn });
    if (target.size !== total) throw refuse(`the partly written target's size (${target.size}) is not the source's (${total})`);
    const resumed = o.resume === true;
    const progress = progressReporter(ctl, total - start, resumed ? 'copying (resumed)' : 'copying');
    let bytesCopied = 0;
    let bytesSkipped = 0;

    // Chunks in order; `finished` holds completed chunk starts above the watermark.
    let next = start;
    let watermark = start;
    const finished = new Set<number>();
    const advance = () => {
      while (finished.has(watermark)) {
        finished.delete(watermark);
        watermark = Math.min(total, watermark + CHUNK - (watermark % CHUNK));
      }
    };
    const chunkEnd = (pos: number) => Math.min(total, pos - (pos % CHUNK) + CHUNK);

    const t = target;
    /** Make a zero range read as zeros in the target (a fresh image already does; past the
     *  journal of a resumed one, a killed run may have written there). */
    const zeroRange = async (off: number, len: number) => {
      if (!resumed) return;
      let p = off;
      while (p < off + len) {
        const st = await t.blockStatus(p, off + len - p);
        if (!st.zero) await t.writeZeroes(p, st.length, { mayUnmap: true });
        p += st.length;
      }
    };
    const doChunk = async (pos: number) => {
      const end = chunkEnd(pos);
      let p = pos;
      while (p < end) {
        if (ctl.signal?.aborted) throw cancelled();
        const st = await blockStatusAbove(source, p, end - p, { precise: true });
        if (st.zero) {
          await zeroRange(p, st.length);
          bytesSkipped += st.length;
        } else {
          const buf = await source.read(p, st.length);
          if (isZero(buf)) {
            await zeroRange(p, st.length);
            bytesSkipped += st.length;
          } else {
            await t.write(p, buf);
            bytesCopied += st.length;
          }
        }
        p += st.length;
        progress.add(st.length);
      }
    };

    let lastJournal = Date.now();
    let journaling: Promise<void> | undefined;
    const saveJournal = async () => {
      const upTo = watermark; // every chunk below it completed before this flush starts
      await t.flush();
      journal = { ...journal, done: [[0, upTo]], updated: new Date().toISOString() };
      writeJournal(paths.journal, journal);
    };
    let failed: unknown;
    const lane = async () => {
      while (failed === undefined && next < total) {
        if (ctl.signal?.aborted) throw cancelled();
        const pos = next;
        next = chunkEnd(pos);
        await doChunk(pos);
        finished.add(pos);
        advance();
        if (!journaling && Date.now() - lastJournal >= interval) {
          lastJournal = Date.now();
          journaling = saveJournal().finally(() => (journaling = undefined));
          await journaling;
        }
      }
    };
    await Promise.all(
      Array.from({ length: LANES }, () =>
        lane().catch((e) => {
          failed ??= e;
        }),
      ),
    );
    if (journaling) await journaling.catch(() => {});
    if (failed !== undefined) {
      // Keep what is done for a resume: flush, then record the prefix.
      await saveJournal().catch(() => {});
      throw failed;
    }
    await t.flush();
    target = undefined;
    await t.close();
    renameSync(paths.staged, finalName);
    rmSync(paths.journal, { force: true });
    progress.finish();
    return { target: o.target.filename, format, bytesCopied, bytesSkipped, resumedFrom: start };
  } finally {
    if (target) await target.close().catch(() => {});
    await source.close().catch(() => {});
  }
}

export interface VerifyResult {
  /** Identical contents and a clean check (or a format without a check). */
  verified: boolean;
  compare: CompareResult;
  /** The target's check, or undefined where the format has none. */
  check?: Pick<CheckReport, 'exitCode' | 'corruptions' | 'leaks' | 'check-errors' | 'messages'>;
  /** The result in words: "Identical, verified" or the first difference. */
  words: string;
}

/** qemu-img compare source target, then qemu-img check target. */
export async function verifyCopy(source: ImageSpec, target: ImageSpec, env: JobEnv, ctl: JobControl = {}): Promise<VerifyResult> {
  const cmp = await compare({ a: source, b: target }, env, {
    ...(ctl.signal ? { signal: ctl.signal } : {}),
    onProgress: (p) => ctl.onProgress?.({ ...p, phase: 'verifying: comparing' }),
  });
  if (!cmp.identical) return { verified: false, compare: cmp, words: `Not verified: ${cmp.message}` };
  if (ctl.signal?.aborted) throw cancelled();
  ctl.onProgress?.({ done: 0, total: 1, phase: 'verifying: checking' });
  let r: CheckReport;
  try {
    r = await check({ image: target }, env);
  } catch (e) {
    if (!(e instanceof BlockError && e.code === 'NoCheck')) throw e;
    ctl.onProgress?.({ done: 1, total: 1, phase: 'verifying: checking' });
    return { verified: true, compare: cmp, words: 'Identical, verified (qemu-img compare: Images are identical; this format has no consistency check)' };
  }
  ctl.onProgress?.({ done: 1, total: 1, phase: 'verifying: checking' });
  const summary = { exitCode: r.exitCode, 'check-errors': r['check-errors'], messages: r.messages, ...(r.corruptions ? { corruptions: r.corruptions } : {}), ...(r.leaks ? { leaks: r.leaks } : {}) };
  if (r.exitCode !== 0) return { verified: false, compare: cmp, check: summary, words: `Not verified: the contents are identical but qemu-img check finds ${r.corruptions ?? 0} corruptions, ${r.leaks ?? 0} leaks, ${r['check-errors']} errors` };
  return { verified: true, compare: cmp, check: summary, words: 'Identical, verified (qemu-img compare: Images are identical; check: no errors)' };
}

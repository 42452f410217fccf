// `npm run bench`: times `platter convert` against `qemu-img convert` side by side, on the standard
// workload (a 4 GiB virtual raw image holding ~1.25 GiB of data: half
// random, half compressible text, the rest holes), for raw->raw, raw->qcow2, qcow2->qcow2,
// vmdk(monolithicSparse)->qcow2 and convert -c. Each run times qemu-img and then Platter back to
// back on the same input (the machine is shared: only such pairs are comparable); the table gives
// the medians over the runs of both times and of the per-run ratios, and lists every ratio. Writes
// the table to docs/benchmarks.md. Pairs whose format driver is not registered are skipped.
// Then every bench suite in scripts/bench-suites/ (each module exporting `suite: BenchSuite`, the
// contract in scripts/bench-suites/types.ts) is run the same way, one table per suite after the
// convert table; a suite that cannot run here is listed as skipped with its reason.
//
// Options: --size-gib N (virtual size, default 4), --data-gib N (data, default 1.25),
// --runs N (runs per pair, default 5; medians), --only name[,name] (convert pairs, suites or
// suite pairs to run, by name; a suite's pair by the start of its name), --suite NAME[,NAME] (only these suites; the convert pairs are then
// left out unless --only names some), --no-convert (no convert pairs), --keep (keep the temp
// dir), --no-write (do not update docs/benchmarks.md). A run without the convert pairs updates
// only its suites' sections of docs/benchmarks.md.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, writeSync, ftruncateSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { symlinkSync } from 'node:fs';
import { buildCli } from './build-cli.mjs';
import { findFormat } from '../core/drivers/registry.ts';
import { existsSync as exists, readdirSync, readFileSync, mkdirSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { BenchContext, BenchPair, BenchSuite, RunResult as SuiteRunResult } from './bench-suites/types.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PLATTER = join(ROOT, 'bin/platter.mjs');
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
/** Bytes of each data extent in the workload, and the unit the holes are laid out in. */
const EXTENT = 4 * MiB;
const TIME_BIN = '/usr/bin/time';

interface Args {
  sizeGiB: number;
  dataGiB: number;
  runs: number;
  only?: string[];
  suites?: string[];
  convert: boolean;
  keep: boolean;
  write: boolean;
}

/** Runs per pair unless --runs says otherwise. */
const DEFAULT_RUNS = 5;

/** How many runs a pair gets: --runs, capped for slow pairs (maxRuns); raised for short, noisy
 *  ones (minRuns) in a full run (the default count or more), not in a quick check with fewer. */
function runCount(requested: number, p: { maxRuns?: number; minRuns?: number }): number {
  if (p.minRuns !== undefined && requested >= DEFAULT_RUNS) return Math.max(requested, p.minRuns);
  return Math.min(requested, p.maxRuns ?? requested);
}

function parseCli(argv: string[]): Args {
  const a: Args = { sizeGiB: 4, dataGiB: 1.25, runs: DEFAULT_RUNS, convert: true, keep: false, write: true };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => argv[++i] ?? '';
    if (k === '--size-gib') a.sizeGiB = Number(v());
    else if (k === '--data-gib') a.dataGiB = Number(v());
    else if (k === '--runs') a.runs = Math.max(1, Number(v()));
    else if (k === '--only') a.only = v().split(',');
    else if (k === '--suite') a.suites = v().split(',');
    else if (k === '--no-convert') a.convert = false;
    else if (k === '--keep') a.keep = true;
    else if (k === '--no-write') a.write = false;
    else throw new Error(`unknown option ${k}`);
  }
  return a;
}

/** Build the workload: data extents spread evenly over the image, alternating random and text. */
function makeWorkload(path: string, size: number, data: number): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, size);
    const n = Math.floor(data / EXTENT);
    const stride = Math.floor(size / n / EXTENT) * EXTENT;
    const random = Buffer.allocUnsafe(EXTENT);
    const text = Buffer.alloc(EXTENT);
    const words = 'the quick brown fox jumps over the lazy dog while qemu-img converts disk images block by block\n';
    for (let p = 0; p < EXTENT; p += words.length) text.write(words, p, Math.min(words.length, EXTENT - p), 'latin1');
    for (let i = 0; i < n; i++) {
      let buf = text;
      if (i % 2 === 0) {
        randomFillSync(random);
        buf = random;
      } else {
        // Vary the text a little so it is not one repeated block.
        buf.write(`extent ${i} `, 0, 'latin1');
      }
      writeSync(fd, buf, 0, EXTENT, i * stride);
    }
  } finally {
    closeSync(fd);
  }
}

interface RunResult {
  wall: number;
  rssKiB: number | undefined;
  status: number;
  stderr: string;
}

/**
 * The timed commands' environment: ours without NODE_EXTRA_CA_CERTS. Some machines (this
 * sandbox, for its registry proxy) set it, and then every Node process parses the whole
 * certificate bundle before running any code (about 0.1 s; Node's own start is about 0.04 s).
 * A user's shell normally has no such variable, and the CLI makes no TLS connections.
 */
const TIMED_ENV: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_EXTRA_CA_CERTS'));
/** Where the CLI keeps its V8 code cache during the bench (set once the temp dir exists). */
function useCacheDir(dir: string): void {
  TIMED_ENV['XDG_CACHE_HOME'] = dir;
}

/** Run a command under /usr/bin/time -v (peak RSS) or plain (RSS unknown). Each starts with no
 *  dirty page cache (sync first): otherwise the kernel's writeback of earlier files (the 1.25 GiB
 *  sources just made, or a previous output) competes with whichever command runs next. */
function timed(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<RunResult> {
  spawnSync('sync', [], { stdio: 'ignore' });
  const useTime = existsSync(TIME_BIN);
  const [bin, argv] = useTime ? [TIME_BIN, ['-v', cmd, ...args]] : [cmd, args];
  const env = opts.env ? { ...TIMED_ENV, ...opts.env } : TIMED_ENV;
  delete env['NODE_EXTRA_CA_CERTS'];
  return new Promise((res, rej) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(bin, argv, { stdio: ['ignore', 'ignore', 'pipe'], env, ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}) });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', rej);
    child.on('close', (status) => {
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
      res({ wall, rssKiB: m ? Number(m[1]) : undefined, status: status ?? -1, stderr: useTime ? stderr.split('\n\tCommand being timed')[0]! : stderr });
    });
  });
}

/**
 * The CLI as shipped (scripts/build-cli.mjs: one CommonJS bundle run from a V8 code cache), built
 * into `dir`; koffi resolves through a node_modules link. Running from source through tsx adds
 * seconds of TypeScript loading per process on a loaded 2-CPU machine; that column is reported
 * separately.
 */
async function bundleCli(dir: string): Promise<string> {
  const cmd = await buildCli({ outDir: dir });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return cmd;
}

/** The workload in each source format. */
interface Sources {
  raw: string;
  qcow2: string;
  vmdk: string;
}

interface Pair {
  name: string;
  needs: string[];
  /** Arguments after `convert`, given the source paths and an output path. */
  args: (src: Sources, out: string) => string[];
  /** At most this many runs (the slow pairs: each run takes a minute). */
  maxRuns?: number;
  /** At least this many in a full bench (runCount). */
  minRuns?: number;
}

/** The pairs of about half a second a run: on this machine a run of either tool now and then takes
 *  5-10x longer (the kernel's copies into new page-cache pages stall, whichever tool writes), and
 *  with 5 runs two such runs on one side move the median ratio a long way. */
const SHORT_PAIR_RUNS = 11;

const PAIRS: Pair[] = [
  { name: 'raw->raw', needs: ['raw'], args: (s, o) => ['-f', 'raw', '-O', 'raw', s.raw, o], minRuns: SHORT_PAIR_RUNS },
  { name: 'raw->qcow2', needs: ['raw', 'qcow2'], args: (s, o) => ['-f', 'raw', '-O', 'qcow2', s.raw, o], minRuns: SHORT_PAIR_RUNS },
  { name: 'qcow2->qcow2', needs: ['qcow2'], args: (s, o) => ['-f', 'qcow2', '-O', 'qcow2', s.qcow2, o], minRuns: SHORT_PAIR_RUNS },
  { name: 'vmdk->qcow2', needs: ['vmdk', 'qcow2'], args: (s, o) => ['-f', 'vmdk', '-O', 'qcow2', s.vmdk, o], minRuns: SHORT_PAIR_RUNS },
  { name: 'convert -c (raw->qcow2)', needs: ['raw', 'qcow2'], args: (s, o) => ['-c', '-f', 'raw', '-O', 'qcow2', s.raw, o], maxRuns: 3 },
];

const fmtS = (s: number) => `${s.toFixed(2)} s`;
const fmtRss = (k: number | undefined) => (k === undefined ? 'n/a' : `${Math.round(k / 1024)} MiB`);
const median = (xs: number[]): number => {
  const v = [...xs].sort((x, y) => x - y);
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
};
/** Medians of back-to-back runs (reference `q`, platter `pl`): times, per-run ratios, peak RSS. */
function summarize(runs: { q: RunResult; pl: RunResult }[]) {
  const ratios = runs.map((r) => r.pl.wall / r.q.wall);
  return {
    ratios,
    ratio: median(ratios),
    qMed: median(runs.map((r) => r.q.wall)),
    pMed: median(runs.map((r) => r.pl.wall)),
    qRss: Math.max(...runs.map((r) => r.q.rssKiB ?? 0)) || undefined,
    pRss: Math.max(...runs.map((r) => r.pl.rssKiB ?? 0)) || undefined,
  };
}
const fmtLoad = () => loadavg().map((l) => l.toFixed(1)).join(' ');

/** The convert pairs (the standard workload); answers the load average at their start. */
async function benchConvert(a: Args, dir: string, bundled: string, rows: string[], skipped: string[]): Promise<string> {
  let loadStart = fmtLoad();
  {
    const size = Math.round(a.sizeGiB * GiB);
    const data = Math.round(a.dataGiB * GiB);
    const raw = join(dir, 'workload.raw');
    process.stdout.write(`workload: ${a.sizeGiB} GiB virtual, ${a.dataGiB} GiB data (half random, half text) in ${dir}\n`);
    makeWorkload(raw, size, data);
    const pairs = PAIRS.filter((p) => !a.only || a.only.includes(p.name));
    // The other sources are made by qemu-img from the raw workload (vmdk: its default
    // monolithicSparse subformat).
    const src: Sources = { raw, qcow2: '', vmdk: '' };
    for (const f of ['qcow2', 'vmdk'] as const) {
      if (!pairs.some((p) => p.args(src, '')[1] === f) || !findFormat(f)) continue;
      src[f] = join(dir, `workload.${f}`);
      const r = await timed('qemu-img', ['convert', '-f', 'raw', '-O', f, raw, src[f]]);
      if (r.status !== 0) throw new Error(`making the ${f} source failed: ${r.stderr}`);
    }
    loadStart = fmtLoad();
    // Warm tsx's transform cache and the CLI's code cache (made by a first convert, as a user's
    // first run makes it), so no timed run pays for compilation it would not pay in daily use.
    await timed(process.execPath, [PLATTER, 'formats']);
    const warm = join(dir, 'out-warm');
    await timed(process.execPath, [bundled, 'convert', '-f', 'raw', '-O', 'qcow2', raw, warm]);
    rmSync(warm, { force: true });

    for (const p of pairs) {
      const missing = p.needs.filter((f) => !findFormat(f));
      if (missing.length) {
        const why = `${p.name}: skipped, format driver ${missing.map((m) => `'${m}'`).join(', ')} not registered`;
        skipped.push(why);
        process.stdout.write(`${why}\n`);
        continue;
      }
      const runs: { q: RunResult; pl: RunResult }[] = [];
      let fromSource: RunResult | undefined;
      for (let i = 0, n = runCount(a.runs, p); i < n; i++) {
        const qOut = join(dir, 'out-qemu');
        const pOut = join(dir, 'out-platter');
        const q = await timed('qemu-img', ['convert', ...p.args(src, qOut)]);
        rmSync(qOut, { force: true });
        const pl = await timed(process.execPath, [bundled, 'convert', ...p.args(src, pOut)]);
        rmSync(pOut, { force: true });
        if (q.status !== 0) throw new Error(`qemu-img convert (${p.name}) failed: ${q.stderr}`);
        if (pl.status !== 0) {
          skipped.push(`${p.name}: platter convert failed: ${pl.stderr.trim().split('\n')[0]}`);
          process.stdout.write(`${p.name}: platter convert failed: ${pl.stderr}\n`);
          runs.length = 0;
          break;
        }
        runs.push({ q, pl });
        process.stdout.write(`${p.name} run ${i + 1}: qemu-img ${fmtS(q.wall)}, platter ${fmtS(pl.wall)}, ratio ${(pl.wall / q.wall).toFixed(2)}\n`);
        if (i === 0) {
          // The unbundled CLI once per pair (its extra cost is TypeScript loading, not the copy).
          fromSource = await timed(process.execPath, [PLATTER, 'convert', ...p.args(src, pOut)]);
          rmSync(pOut, { force: true });
        }
      }
      if (!runs.length) continue;
      const { ratios, ratio, qMed, pMed, qRss, pRss } = summarize(runs);
      const row = `| ${p.name} | ${fmtS(qMed)} | ${fmtS(pMed)} | **${ratio.toFixed(2)}** | ${ratios.map((r) => r.toFixed(2)).join(', ')} | ${fromSource ? fmtS(fromSource.wall) : 'n/a'} | ${fmtRss(qRss)} | ${fmtRss(pRss)} |`;
      rows.push(row);
      process.stdout.write(`${p.name}: median qemu-img ${fmtS(qMed)}, platter ${fmtS(pMed)}, median ratio ${ratio.toFixed(2)} (${ratios.map((r) => r.toFixed(2)).join(', ')})\n`);
    }
  }
  return loadStart;
}


/** Suite modules: every .ts in scripts/bench-suites/ that exports `suite` (types.ts and helper
 *  modules export none), in name order. */
async function loadSuites(): Promise<BenchSuite[]> {
  const folder = join(ROOT, 'scripts/bench-suites');
  if (!exists(folder)) return [];
  const out: BenchSuite[] = [];
  for (const f of readdirSync(folder).filter((n) => n.endsWith('.ts') && !n.endsWith('.d.ts')).sort()) {
    const mod = (await import(pathToFileURL(join(folder, f)).href)) as { suite?: BenchSuite };
    if (mod.suite && typeof mod.suite.setup === 'function') out.push(mod.suite);
  }
  return out;
}

const lc = (x: string) => x.toLowerCase();
/** Which pairs of a suite the options select: all when the suite is named (or nothing narrows),
 *  else those whose name starts with a name given (case-insensitive; pair names may hold commas,
 *  which --only splits on, so the start of a name is enough). */
function selectPairs(a: Args, suite: BenchSuite, pairs: BenchPair[]): BenchPair[] {
  if (!a.only) return pairs;
  const only = a.only.map((n) => lc(n.trim())).filter(Boolean);
  if (only.includes(lc(suite.name))) return pairs;
  return pairs.filter((p) => only.some((n) => lc(p.name).startsWith(n)));
}
/** Whether a suite is run at all (before its setup). */
function suiteSelected(a: Args, suite: BenchSuite, convertNames: string[], suiteNames: string[]): boolean {
  if (a.suites && !a.suites.map(lc).includes(lc(suite.name))) return false;
  if (a.only && !a.suites) {
    // --only naming a suite runs it; a name that is neither a convert pair nor a suite may be a
    // suite's pair, so every suite then sets up and keeps the pairs so named.
    if (a.only.map(lc).includes(lc(suite.name))) return true;
    const pairNames = a.only.filter((n) => !convertNames.includes(n) && !suiteNames.map(lc).includes(lc(n)));
    if (!pairNames.length) return false;
  }
  return true;
}

interface SuiteReport {
  name: string;
  /** Markdown of the section (heading, table, skipped lines). */
  section: string;
}

/** Run one suite: setup, each pair back to back, teardown (always); its section of the doc
 *  (none when --only selected none of its pairs). */
async function runSuite(a: Args, suite: BenchSuite, dir: string, platter: string): Promise<SuiteReport | undefined> {
  const heading = `## ${suite.name}`;
  const log = (line: string) => process.stdout.write(`[${suite.name}] ${line}\n`);
  let why: string | undefined;
  try {
    why = await suite.unavailable();
  } catch (e) {
    why = `unavailable() failed: ${(e as Error).message}`;
  }
  if (why !== undefined) {
    log(`skipped: ${why}`);
    return { name: suite.name, section: `${heading}\n\nSkipped: ${why}\n` };
  }
  const sdir = join(dir, `suite-${suite.name.replace(/[^A-Za-z0-9_-]+/g, '_')}`);
  mkdirSync(sdir, { recursive: true });
  const ctx: BenchContext = {
    dir: sdir,
    platter,
    timed: (cmd, args, opts) => timed(cmd, args, opts) as Promise<SuiteRunResult>,
    log,
  };
  const rows: string[] = [];
  const notes: string[] = [];
  const loadAt = fmtLoad();
  let selected = true;
  try {
    const all = await suite.setup(ctx);
    const pairs = selectPairs(a, suite, all);
    selected = pairs.length > 0;
    for (const p of pairs) {
      const runs: { q: RunResult; pl: RunResult }[] = [];
      let failed: string | undefined;
      for (let i = 0, n = runCount(a.runs, p); i < n; i++) {
        const q = await p.reference.run();
        await p.reference.after?.();
        if (q.status !== 0) {
          failed = `${p.referenceLabel} failed: ${q.stderr.trim().split('\n').slice(-1)[0] ?? ''}`;
          break;
        }
        const pl = await p.platter.run();
        await p.platter.after?.();
        if (pl.status !== 0) {
          failed = `platter failed: ${pl.stderr.trim().split('\n').slice(-1)[0] ?? ''}`;
          log(`${p.name}: ${pl.stderr}`);
          break;
        }
        runs.push({ q: q as RunResult, pl: pl as RunResult });
        log(`${p.name} run ${i + 1}: ${p.referenceLabel} ${fmtS(q.wall)}, platter ${fmtS(pl.wall)}, ratio ${(pl.wall / q.wall).toFixed(2)}`);
      }
      if (failed !== undefined) {
        notes.push(`${p.name}: ${failed}`);
        log(`${p.name}: ${failed}`);
        continue;
      }
      if (!runs.length) continue;
      const { ratios, ratio, qMed, pMed, qRss, pRss } = summarize(runs);
      const goal = p.target === undefined ? 'none (for comparison)' : `<= ${p.target} (${ratio <= p.target ? 'met' : '**not met**'})`;
      rows.push(`| ${p.name} | ${p.referenceLabel} | ${fmtS(qMed)} | ${fmtS(pMed)} | **${ratio.toFixed(2)}** | ${goal} | ${ratios.map((r) => r.toFixed(2)).join(', ')} | ${fmtRss(qRss)} | ${fmtRss(pRss)} |`);
      log(`${p.name}: median ${p.referenceLabel} ${fmtS(qMed)}, platter ${fmtS(pMed)}, median ratio ${ratio.toFixed(2)} (target ${goal.replace(/\*/g, '')})`);
    }
  } catch (e) {
    notes.push(`setup or run failed: ${(e as Error).message.split('\n')[0]}`);
    log(`failed: ${(e as Error).stack ?? String(e)}`);
  } finally {
    try {
      await suite.teardown();
    } catch (e) {
      notes.push(`teardown failed: ${(e as Error).message.split('\n')[0]}`);
    }
    if (!a.keep) rmSync(sdir, { recursive: true, force: true });
  }
  if (!selected) {
    log('no pair selected by --only');
    return undefined;
  }
  const table = rows.length
    ? [
        '| pair | reference | reference (median) | platter (median) | ratio platter/reference (median) | target | ratio of each run | reference peak RSS | platter peak RSS |',
        '|---|---|---|---|---|---|---|---|---|',
        ...rows,
      ].join('\n')
    : 'No pair ran.';
  const section = `${heading}

Load average ${loadAt} at the start, ${fmtLoad()} at the end; ${a.runs} run(s) per pair (fewer where a pair caps them, more where a pair of short runs needs them for a steady median).

${table}
${notes.length ? `\n${notes.map((n) => `- ${n}`).join('\n')}\n` : ''}`;
  process.stdout.write(`\n${section}\n`);
  return { name: suite.name, section };
}

const SUITES_BEGIN = '<!-- bench-suites -->';
const SUITES_END = '<!-- /bench-suites -->';
const sectionMark = (name: string) => `<!-- suite: ${name} -->`;

/** The suites' part of the doc: one marked section per suite, in order. */
function suitesBlock(reports: SuiteReport[]): string {
  if (!reports.length) return '';
  return `${SUITES_BEGIN}\n${reports.map((r) => `${sectionMark(r.name)}\n${r.section.trimEnd()}\n`).join('\n')}${SUITES_END}\n`;
}

/** A run without the convert pairs: replace (or add) only its suites' sections in the doc. */
function spliceSuites(doc: string, reports: SuiteReport[]): string {
  const b = doc.indexOf(SUITES_BEGIN);
  const e = doc.indexOf(SUITES_END);
  const old = new Map<string, string>();
  const order: string[] = [];
  if (b >= 0 && e > b) {
    const inner = doc.slice(b + SUITES_BEGIN.length, e);
    for (const part of inner.split(/^<!-- suite: /m).slice(1)) {
      const name = part.slice(0, part.indexOf(' -->'));
      old.set(name, part.slice(part.indexOf('\n') + 1));
      order.push(name);
    }
  }
  for (const r of reports) {
    if (!old.has(r.name)) order.push(r.name);
    old.set(r.name, r.section);
  }
  const block = suitesBlock(order.map((name) => ({ name, section: old.get(name)! })));
  if (b >= 0 && e > b) return doc.slice(0, b) + block + doc.slice(e + SUITES_END.length + 1);
  // No suites yet: before the paragraph on how platter gets there (or at the end).
  const at = doc.indexOf('How platter gets there:');
  return at >= 0 ? `${doc.slice(0, at)}${block}\n${doc.slice(at)}` : `${doc}\n${block}`;
}

async function main(): Promise<void> {
  const a = parseCli(process.argv.slice(2));
  const convertNames = PAIRS.map((p) => p.name);
  const runConvert = a.convert && (a.suites ? !!a.only?.some((n) => convertNames.includes(n)) : !a.only || a.only.some((n) => convertNames.includes(n)));
  const dir = mkdtempSync(join(tmpdir(), 'platter-bench-'));
  const rows: string[] = [];
  const skipped: string[] = [];
  const reports: SuiteReport[] = [];
  let loadStart = fmtLoad();
  try {
    const bundled = await bundleCli(join(dir, 'bundle'));
    useCacheDir(join(dir, 'cache'));
    if (runConvert) loadStart = await benchConvert(a, dir, bundled, rows, skipped);
    else {
      // Make the CLI's code cache (as the convert part's warm-up run does).
      await timed(process.execPath, [bundled, 'formats']);
    }
    const suites = await loadSuites();
    for (const suite of suites) {
      if (!suiteSelected(a, suite, convertNames, suites.map((s) => s.name))) continue;
      const r = await runSuite(a, suite, dir, bundled);
      if (r) reports.push(r);
    }
  } finally {
    if (!a.keep) rmSync(dir, { recursive: true, force: true });
  }
  const docPath = join(ROOT, 'docs/benchmarks.md');
  if (!runConvert) {
    if (a.write && reports.length) {
      const existing = exists(docPath) ? readFileSync(docPath, 'utf8') : '# Benchmarks\n';
      writeFileSync(docPath, spliceSuites(existing, reports));
      process.stdout.write(`updated ${reports.map((r) => r.name).join(', ')} in docs/benchmarks.md\n`);
    }
    return;
  }
  const table = [
    '| conversion | qemu-img (median) | platter (median) | ratio platter/qemu-img (median) | ratio of each run | platter from source (tsx), run 1 | qemu-img peak RSS | platter peak RSS |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
  const doc = `# Benchmarks: platter convert vs qemu-img convert

Generated by \`npm run bench\` (scripts/bench.ts) on ${new Date().toISOString().slice(0, 10)}, ${cpus().length} CPUs,
Node ${process.version}, \`qemu-img --version\` 7.2. Workload: a ${a.sizeGiB} GiB virtual raw image with
${a.dataGiB} GiB of data in ${EXTENT / MiB} MiB extents spread over the disk, alternately random and
compressible text, holes elsewhere; the qcow2 and vmdk (monolithicSparse)
sources are made from it by qemu-img. Wall time of the whole command, including process start.
Both commands run with the bench's environment minus NODE_EXTRA_CA_CERTS${process.env['NODE_EXTRA_CA_CERTS'] !== undefined ? ' (set on this machine for its registry proxy: with it, every Node process parses the whole certificate bundle before running any code, about 0.1 s)' : ''}.
Method: ${a.runs} run(s) per conversion (at most 3 for convert -c, a minute each${a.runs >= DEFAULT_RUNS ? `; at least ${SHORT_PAIR_RUNS} for the others, half a second each and prone to 5-10x stalls of either tool` : ''}); each run times qemu-img and then platter back to back on
the same input, and the ratio column is the median of those per-run ratios (the machine is shared,
so only back-to-back pairs are comparable). Load average (1/5/15 min) ${loadStart} at the start,
${fmtLoad()} at the end. Peak RSS from \`/usr/bin/time -v\` (highest of the runs). Output files are
deleted between runs and \`sync\` runs before every timed command (so no command shares the
machine with the writeback of an earlier one's output); page cache warm. "platter" is the CLI as
shipped (scripts/build-cli.mjs, built in the bench's temp dir): one esbuild bundle that its
launcher runs from a V8 code cache, made by an untimed convert first, as a user's first run makes
it; "from source (tsx)" is \`bin/platter.mjs\`, which compiles the TypeScript sources through tsx
at every start.

${table}
${skipped.length ? `\nSkipped:\n${skipped.map((s) => `- ${s}`).join('\n')}\n` : ''}
${reports.length ? `\nBench suites (scripts/bench-suites/): each pair runs the reference and then platter back to back, N times; times and ratios are medians, the target is the issue's goal for the median ratio.\n\n${suitesBlock(reports)}` : ''}
How platter gets there: convert is driven by block status (holes and known-zero ranges are neither
read nor written), data is moved in 1 MiB requests with 8 in flight (-m; small enough for the
buffers to stay in the CPU caches, which halved the kernel's copy time against 4 MiB), each lane
reads into its own reusable, page-aligned buffer (the kernel's page-cache copies into malloc'd
memory, 16 bytes off a page boundary, cost three times as much), straight from where block status
says the data lies in the source's file and straight to where the target's reservation put it
(no format-driver work per request), a host block device is read with O_DIRECT (Linux; qemu-img
reads through the page cache unless -T none), zero runs inside data are detected (-S 4k: whole
zero buffers in one comparison, three bytes looked at per data sector) and skipped, and
compression runs in the worker pool (one worker per core). A qcow2 target opened with -t unsafe
(qemu-img's default) keeps its L2 and refcount changes in its caches until close, and the in-order
copy orders the allocation of each request's clusters, not its data write, so the layout follows
guest order while writes overlap. The CLI's I/O pool has one thread per core (2 to 4), its helper
threads do not preempt the main thread that feeds them (SCHED_BATCH), and it starts from a V8
code cache.
Figures vary from run to run on a shared machine; compare the two columns of one run, not runs.
`;
  process.stdout.write(`\n${table}\n`);
  if (a.write) {
    writeFileSync(docPath, doc);
    process.stdout.write('wrote docs/benchmarks.md\n');
  }
}

await main();

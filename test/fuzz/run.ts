// The fuzz orchestrator: mutates seed images of one format and runs each case in a child process
// with limits: a case fails on a crash (an exception that is not Platter's BlockError, a native
// crash), a hang (no answer within the timeout), or memory over the cap.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Rng } from './rng.ts';
import { mutate } from './mutate.ts';
import { seedImages } from './seeds.ts';
import { caseTimeoutMs } from './budget.ts';

export interface FuzzOptions {
  format: string;
  cases: number;
  seed: number;
  /** A case that has not answered by then is a hang. */
  timeoutMs?: number;
  /** Resident memory cap for the case process. */
  maxRssBytes?: number;
  /** Case processes run side by side (default 1). */
  jobs?: number;
  /** Log a progress line every this many cases (default: none). */
  progressEvery?: number;
  /** Where failing inputs are saved (default: none). */
  saveFailuresTo?: string;
  log?: (line: string) => void;
}

export interface FuzzFailure {
  caseId: number;
  seedImage: string;
  mutation: string[];
  reason: string;
  savedAs?: string;
}

export interface FuzzReport {
  format: string;
  cases: number;
  ok: number;
  errors: number;
  errorKinds: Record<string, number>;
  failures: FuzzFailure[];
  seconds: number;
}

/** Cases live in memory-backed storage where there is some (each case writes and reads MiBs). */
function scratchRoot(): string {
  return existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
}

const CHILD = fileURLToPath(new URL('./case-child.ts', import.meta.url));
const MEMORY_CAP = 1 << 30;

class CaseProcess {
  child!: ChildProcessWithoutNullStreams;
  lines!: Interface;
  #waiting: ((line: string | null) => void) | undefined;
  stderr = '';

  constructor() {
    this.start();
  }

  start(): void {
    // PLATTER_FUZZ_PROFILE_DIR=DIR: each case process writes a V8 CPU profile there when it ends.
    const profile = process.env.PLATTER_FUZZ_PROFILE_DIR;
    this.child = spawn(process.execPath, [...(profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : []), '--import', 'tsx', `--max-old-space-size=${MEMORY_CAP >> 20}`, CHILD], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.stderr = '';
    this.child.stderr.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
    this.lines = createInterface({ input: this.child.stdout });
    this.lines.on('line', (l) => {
      const w = this.#waiting;
      this.#waiting = undefined;
      w?.(l);
    });
    this.child.on('exit', () => {
      const w = this.#waiting;
      this.#waiting = undefined;
      w?.(null);
    });
  }

  /** Send one case; resolves with its answer line, null if the process died, 'timeout' on a hang.
   *  A timer that fires more than a second late means this process was suspended (SIGSTOP, a
   *  paused VM) with the case: the case gets its full time again instead of counting as a hang. */
  ask(payload: object, timeoutMs: number): Promise<string | null | 'timeout'> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout;
      let suspensions = 0;
      const arm = () => {
        const due = Date.now() + timeoutMs;
        timer = setTimeout(() => {
          if (Date.now() - due > 1000 && ++suspensions <= 20) return arm();
          this.#waiting = undefined;
          resolve('timeout');
        }, timeoutMs);
      };
      arm();
      this.#waiting = (line) => {
        clearTimeout(timer);
        resolve(line);
      };
      this.child.stdin.write(JSON.stringify(payload) + '\n');
    });
  }

  async restart(): Promise<void> {
    await this.stop();
    this.start();
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const gone = new Promise((r) => this.child.once('exit', r));
      // A healthy child ends when its input ends (and writes a profile if asked to); a stuck one
      // is killed.
      this.child.stdin.end();
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
      await gone;
      clearTimeout(timer);
    }
  }
}

export async function runFuzz(o: FuzzOptions): Promise<FuzzReport> {
  const started = Date.now();
  const timeoutMs = o.timeoutMs ?? 10_000;
  const maxRss = o.maxRssBytes ?? MEMORY_CAP;
  const jobs = Math.max(1, Math.min(o.jobs ?? 1, 16));
  const { dir: seedDir, seeds } = seedImages(o.format);
  const work = mkdtempSync(join(scratchRoot(), `platter-fuzz-${o.format}-`));
  const seedBytes = seeds.map((s) => readFileSync(s));
  const report: FuzzReport = { format: o.format, cases: 0, ok: 0, errors: 0, errorKinds: {}, failures: [], seconds: 0 };
  // Case i's mutation depends only on (seed, i), so the figures do not depend on the job count.
  let next = 0;
  const lane = async (k: number) => {
    // Each lane has its own folder with every seed file (overlays and vmdk descriptors name their
    // siblings) and its own case process.
    const dir = join(work, `lane${k}`);
    mkdirSync(dir);
    for (const f of readdirSync(seedDir)) if (!f.startsWith('.')) copyFileSync(join(seedDir, f), join(dir, f));
    const proc = new CaseProcess();
    try {
      while (next < o.cases) {
        const i = next++;
        const rng = new Rng((o.seed * 1_000_003 + i) >>> 0);
        const which = rng.below(seeds.length);
        const m = mutate(o.format, seedBytes[which]!, rng);
        const path = join(dir, `case${extname(seeds[which]!)}`);
        writeFileSync(path, m.image);
        const caseTimeout = caseTimeoutMs(m.image, timeoutMs);
        const answer = await proc.ask({ id: i, path, format: o.format, probe: rng.chance(0.15), out: join(dir, 'out.raw') }, caseTimeout);
        report.cases++;
        let reason: string | undefined;
        if (answer === 'timeout') {
          reason = `hang: no answer within ${caseTimeout} ms`;
          await proc.restart();
        } else if (answer === null) {
          reason = `process died (${proc.child.signalCode ?? proc.child.exitCode}): ${proc.stderr.trim().split('\n').slice(-3).join(' | ')}`;
          await proc.restart();
        } else {
          const r = JSON.parse(answer) as { outcome: string; kind?: string; message?: string; rss: number };
          if (r.outcome === 'crash' || r.outcome === 'escape') reason = `${r.outcome}: ${r.message}`;
          else if (r.rss > maxRss) reason = `memory: rss ${r.rss} bytes`;
          else if (r.outcome === 'error') {
            report.errors++;
            report.errorKinds[r.kind ?? '?'] = (report.errorKinds[r.kind ?? '?'] ?? 0) + 1;
          } else report.ok++;
        }
        if (reason) {
          const failure: FuzzFailure = { caseId: i, seedImage: basename(seeds[which]!), mutation: m.description, reason };
          if (o.saveFailuresTo) {
            mkdirSync(o.saveFailuresTo, { recursive: true });
            failure.savedAs = join(o.saveFailuresTo, `${o.format}-seed${o.seed}-case${i}${extname(seeds[which]!)}`);
            writeFileSync(failure.savedAs, m.image);
          }
          report.failures.push(failure);
          o.log?.(`FAIL ${o.format} case ${i} (${failure.seedImage}: ${m.description.join(', ')}): ${reason}`);
        }
        if (o.progressEvery && report.cases % o.progressEvery === 0) {
          o.log?.(`${o.format}: ${report.cases}/${o.cases} cases, ${report.failures.length} failures, ${((Date.now() - started) / 1000).toFixed(0)} s`);
        }
      }
    } finally {
      await proc.stop();
    }
  };
  try {
    await Promise.all(Array.from({ length: jobs }, (_, k) => lane(k)));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  report.failures.sort((a, b) => a.caseId - b.caseId);
  report.seconds = (Date.now() - started) / 1000;
  return report;
}

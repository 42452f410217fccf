// `npm run bench`: times `platter convert` against `qemu-img convert` side by side, on the standard
// workload of PERFORMANCE-NOTES.md (a 4 GiB virtual raw image holding ~1.25 GiB of data: half
// random, half compressible text, the rest holes), for raw->raw, raw->qcow2, vmdk->qcow2 and
// convert -c. Prints wall time, the Platter/qemu-img ratio and peak RSS of each run, and writes the
// table to docs/benchmarks.md. Pairs whose format driver is not registered are skipped, saying so.
//
// Options: --size-gib N (virtual size, default 4), --data-gib N (data, default 1.25),
// --runs N (best of N, default 1), --only name[,name] (pairs to run), --keep (keep the temp dir),
// --no-write (do not update docs/benchmarks.md).

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, writeSync, ftruncateSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { tmpdir, cpus } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { symlinkSync, mkdirSync } from 'node:fs';
import { build } from 'esbuild';
import { findFormat } from '../core/block/registry.ts';

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
  keep: boolean;
  write: boolean;
}

function parseCli(argv: string[]): Args {
  const a: Args = { sizeGiB: 4, dataGiB: 1.25, runs: 1, keep: false, write: true };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => argv[++i] ?? '';
    if (k === '--size-gib') a.sizeGiB = Number(v());
    else if (k === '--data-gib') a.dataGiB = Number(v());
    else if (k === '--runs') a.runs = Math.max(1, Number(v()));
    else if (k === '--only') a.only = v().split(',');
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

/** Run a command under /usr/bin/time -v (peak RSS) or plain (RSS unknown). */
function timed(cmd: string, args: string[]): Promise<RunResult> {
  const useTime = existsSync(TIME_BIN);
  const [bin, argv] = useTime ? [TIME_BIN, ['-v', cmd, ...args]] : [cmd, args];
  return new Promise((res, rej) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(bin, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
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
 * Bundle the CLI (and the worker entry next to it, as pool.ts expects) with esbuild into `dir`:
 * the form the desktop app ships, and what the ratio is measured on. Running from source through
 * tsx adds seconds of TypeScript loading per process on a loaded 2-CPU machine; that column is
 * reported separately.
 */
async function bundleCli(dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const entry = join(dir, 'cli-entry.mjs');
  writeFileSync(entry, `import { main } from ${JSON.stringify(join(ROOT, 'core/cli/main.ts'))};\nprocess.exitCode = await main(process.argv.slice(2));\n`);
  const banner = { js: "import { createRequire as __platterCreateRequire } from 'node:module'; const require = __platterCreateRequire(import.meta.url);" };
  const common = { bundle: true, platform: 'node' as const, format: 'esm' as const, target: 'node20', external: ['koffi'], banner, logLevel: 'warning' as const };
  await build({ ...common, entryPoints: [entry], outfile: join(dir, 'platter.mjs') });
  await build({ ...common, entryPoints: [join(ROOT, 'core/workers/worker-main.ts')], outfile: join(dir, 'worker-entry.mjs') });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return join(dir, 'platter.mjs');
}

interface Pair {
  name: string;
  needs: string[];
  /** Arguments after `convert`, given the source paths and an output path. */
  args: (src: { raw: string; vmdk: string }, out: string) => string[];
}

const PAIRS: Pair[] = [
  { name: 'raw->raw', needs: ['raw'], args: (s, o) => ['-f', 'raw', '-O', 'raw', s.raw, o] },
  { name: 'raw->qcow2', needs: ['raw', 'qcow2'], args: (s, o) => ['-f', 'raw', '-O', 'qcow2', s.raw, o] },
  { name: 'vmdk->qcow2', needs: ['vmdk', 'qcow2'], args: (s, o) => ['-f', 'vmdk', '-O', 'qcow2', s.vmdk, o] },
  { name: 'convert -c (raw->qcow2)', needs: ['raw', 'qcow2'], args: (s, o) => ['-c', '-f', 'raw', '-O', 'qcow2', s.raw, o] },
];

const fmtS = (s: number) => `${s.toFixed(2)} s`;
const fmtRss = (k: number | undefined) => (k === undefined ? 'n/a' : `${Math.round(k / 1024)} MiB`);

async function main(): Promise<void> {
  const a = parseCli(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), 'platter-bench-'));
  const rows: string[] = [];
  const skipped: string[] = [];
  try {
    const size = Math.round(a.sizeGiB * GiB);
    const data = Math.round(a.dataGiB * GiB);
    const raw = join(dir, 'workload.raw');
    process.stdout.write(`workload: ${a.sizeGiB} GiB virtual, ${a.dataGiB} GiB data (half random, half text) in ${dir}\n`);
    makeWorkload(raw, size, data);
    let vmdk = '';
    const pairs = PAIRS.filter((p) => !a.only || a.only.includes(p.name));
    if (pairs.some((p) => p.needs.includes('vmdk')) && findFormat('vmdk')) {
      vmdk = join(dir, 'workload.vmdk');
      const r = await timed('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', raw, vmdk]);
      if (r.status !== 0) throw new Error(`making the vmdk source failed: ${r.stderr}`);
    }
    const bundled = await bundleCli(join(dir, 'bundle'));
    // Warm tsx's transform cache and the bundle, so the first timed run pays no compilation.
    await timed(process.execPath, [PLATTER, 'formats']);
    await timed(process.execPath, [bundled, 'formats']);

    for (const p of pairs) {
      const missing = p.needs.filter((f) => !findFormat(f));
      if (missing.length) {
        const why = `${p.name}: skipped, format driver ${missing.map((m) => `'${m}'`).join(', ')} not registered`;
        skipped.push(why);
        process.stdout.write(`${why}\n`);
        continue;
      }
      let best: { q: RunResult; pl: RunResult; src: RunResult } | undefined;
      for (let i = 0; i < a.runs; i++) {
        const qOut = join(dir, 'out-qemu');
        const pOut = join(dir, 'out-platter');
        const q = await timed('qemu-img', ['convert', ...p.args({ raw, vmdk }, qOut)]);
        rmSync(qOut, { force: true });
        const pl = await timed(process.execPath, [bundled, 'convert', ...p.args({ raw, vmdk }, pOut)]);
        rmSync(pOut, { force: true });
        const src = await timed(process.execPath, [PLATTER, 'convert', ...p.args({ raw, vmdk }, pOut)]);
        rmSync(pOut, { force: true });
        if (q.status !== 0) throw new Error(`qemu-img convert (${p.name}) failed: ${q.stderr}`);
        if (pl.status !== 0) {
          skipped.push(`${p.name}: platter convert failed: ${pl.stderr.trim().split('\n')[0]}`);
          process.stdout.write(`${p.name}: platter convert failed: ${pl.stderr}\n`);
          best = undefined;
          break;
        }
        if (!best || pl.wall / q.wall < best.pl.wall / best.q.wall) best = { q, pl, src };
      }
      if (!best) continue;
      const ratio = best.pl.wall / best.q.wall;
      const row = `| ${p.name} | ${fmtS(best.q.wall)} | ${fmtS(best.pl.wall)} | ${ratio.toFixed(2)} | ${fmtS(best.src.wall)} | ${fmtRss(best.q.rssKiB)} | ${fmtRss(best.pl.rssKiB)} |`;
      rows.push(row);
      process.stdout.write(`${p.name}: qemu-img ${fmtS(best.q.wall)}, platter ${fmtS(best.pl.wall)} (from source via tsx ${fmtS(best.src.wall)}), ratio ${ratio.toFixed(2)}, peak RSS ${fmtRss(best.q.rssKiB)} / ${fmtRss(best.pl.rssKiB)}\n`);
    }
  } finally {
    if (!a.keep) rmSync(dir, { recursive: true, force: true });
  }

  const table = [
    '| conversion | qemu-img | platter | ratio platter/qemu-img | platter from source (tsx) | qemu-img peak RSS | platter peak RSS |',
    '|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
  const doc = `# Benchmarks: platter convert vs qemu-img convert

Generated by \`npm run bench\` (scripts/bench.ts) on ${new Date().toISOString().slice(0, 10)}, ${cpus().length} CPUs,
Node ${process.version}, \`qemu-img --version\` 7.2. Workload: a ${a.sizeGiB} GiB virtual raw image with
${a.dataGiB} GiB of data in ${EXTENT / MiB} MiB extents spread over the disk, alternately random and
compressible text, holes elsewhere (PERFORMANCE-NOTES.md). Wall time of the whole command, including
process start, best of ${a.runs} run(s); peak RSS from \`/usr/bin/time -v\`. Output files are deleted
between runs; page cache warm. "platter" is the CLI bundled with esbuild (as the desktop app ships
it; the bench builds it in its temp dir); "from source (tsx)" is \`bin/platter.mjs\`, which compiles
the TypeScript sources through tsx at every start.

${table}
${skipped.length ? `\nSkipped:\n${skipped.map((s) => `- ${s}`).join('\n')}\n` : ''}
How platter gets there: convert is driven by block status (holes and known-zero ranges are neither
read nor written), data is moved in 4 MiB requests with 8 in flight (-m), zero runs inside data are
detected (-S 4k) and skipped, and compression runs in the worker pool (one worker per core).
Figures vary from run to run on a shared machine; compare the two columns of one run, not runs.
`;
  process.stdout.write(`\n${table}\n`);
  if (a.write) {
    writeFileSync(join(ROOT, 'docs/benchmarks.md'), doc);
    process.stdout.write('wrote docs/benchmarks.md\n');
  }
}

await main();

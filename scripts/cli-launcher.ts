// The shipped `platter` command (dist/cli/platter.cjs, built by scripts/build-cli.mjs): sets the
// CLI's V8 flags, then runs the bundled CLI beside it (platter-cli.cjs) from a V8 code cache, as
// VS Code starts its own code. Compiling the 600 KB bundle was a quarter of every CLI start
// (30 ms of 120); with the cache V8 reads compiled code instead. The cache lives in the user's
// cache directory (XDG_CACHE_HOME or ~/.cache, ~/Library/Caches, %LOCALAPPDATA%; a directory only
// the user can write, since cached code runs), one file per subcommand (each caches the functions
// its runs compile: convert's copy path, info's printing), bundle and Node version. V8 checks
// that a cache matches the source and the flags and rejects it otherwise; a missing or rejected
// cache is (re)written at exit, after the run, so it holds what the run compiled. Any failure
// around the cache only means a slower start. PLATTER_CODE_CACHE=off disables it; =debug reports
// what happened on stderr.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, homedir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Script } from 'node:vm';
import { CLI_V8_FLAGS } from '../core/cli/v8-flags.ts';

const BUNDLE = join(__dirname, 'platter-cli.cjs');
const mode = process.env['PLATTER_CODE_CACHE'];
const report = (m: string) => {
  if (mode === 'debug') process.stderr.write(`platter: code cache: ${m}\n`);
};

function cacheDirectory(): string | undefined {
  if (mode === 'off') return undefined;
  try {
    const base =
      process.platform === 'win32' ? process.env['LOCALAPPDATA'] : process.platform === 'darwin' ? join(homedir(), 'Library', 'Caches') : process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache');
    return base ? join(base, 'platter', 'v8-code-cache') : undefined;
  } catch {
    return undefined;
  }
}

setFlagsFromString(CLI_V8_FLAGS);
// libuv's I/O pool does the page-cache copies of every read and write. With more threads than
// cores they only contend: for the CPUs, and for each file's inode lock, on which waiting writers
// spin (measured on 2 cores, 1.25 GiB converts: 2 threads 5-10% faster than libuv's default 4,
// with less spread between runs). The pool starts at the first request that needs it, which in
// this CommonJS program comes after this line; a size the user set is kept.
// A host device among the arguments is the exception: its reads wait for the disk (a block
// device's page cache is seldom warm), not for a CPU, and two threads leave one read in flight
// behind each write. QEMU's pool grows to 64 threads; 8 keep 8 requests (convert's -m) in flight
// (measured on a 1 GiB loop device on 2 cores: 2 threads took about twice as long as 4 or 8).
const namesDevice = process.argv.slice(2).some((a) => a.includes('/dev/') || a.startsWith('\\\\.\\'));
process.env['UV_THREADPOOL_SIZE'] ??= String(namesDevice ? 8 : Math.min(4, Math.max(2, availableParallelism())));
// The bundle is ASCII (scripts/build-cli.mjs checks): latin1 gives the string UTF-8 would, without
// the decoding (5 ms of every start for its 2 MB).
const source = readFileSync(BUNDLE, 'latin1');
const dir = cacheDirectory();
let cacheFile: string | undefined;
/** The part of a cache file's name that names this bundle and Node. */
let bundleKey = '';
let cached: Buffer | undefined;
if (dir) {
  try {
    const st = statSync(BUNDLE);
    const command = /^[a-z][a-z-]{0,19}$/.test(process.argv[2] ?? '') ? process.argv[2] : 'other';
    bundleKey = `-${process.version}-${process.arch}-${st.size}-${Math.floor(st.mtimeMs)}.bin`;
    cacheFile = join(dir, `cli-${command}${bundleKey}`);
    cached = readFileSync(cacheFile);
  } catch {
    cached = undefined;
  }
}
const wrapper = `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
const script = new Script(wrapper, { filename: BUNDLE, ...(cached ? { cachedData: cached } : {}) });
report(cached ? (script.cachedDataRejected ? 'rejected' : 'used') : cacheFile ? 'none yet' : 'off');
if (cacheFile && dir && (!cached || script.cachedDataRejected)) {
  const file = cacheFile;
  process.once('exit', () => {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, script.createCachedData(), { mode: 0o600 });
      renameSync(tmp, file);
      // Caches of other bundles or Node versions are stale now.
      for (const name of readdirSync(dir)) if (name.startsWith('cli-') && !name.endsWith(bundleKey) && !name.endsWith('.tmp')) rmSync(join(dir, name), { force: true });
      report(`written ${file}`);
    } catch (e) {
      report(`not written: ${(e as Error).message}`);
    }
  });
}
const mod = { exports: {} };
(script.runInThisContext() as (...a: unknown[]) => void).call(mod.exports, mod.exports, createRequire(BUNDLE), mod, BUNDLE, __dirname);

// Test helpers shared by every suite: temporary directories, the shared fixtures folder, and
// running the real QEMU tools (qemu-img, qemu-io, qemu-nbd) and the platter CLI as subprocesses.
// Interop tests use these to compare Platter with QEMU, never mocks.

import { spawnSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** ../shared/fixtures next to the checkout (absent on some machines: tests skip, saying so). */
export const FIXTURES = resolve(REPO_ROOT, '../shared/fixtures');
export const HAVE_FIXTURES = existsSync(join(FIXTURES, 'fixtures.json'));
export const SKIP_NO_FIXTURES = HAVE_FIXTURES ? false : `shared fixtures not found at ${FIXTURES}`;

export function have(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}
export const HAVE_QEMU = have('qemu-img') && have('qemu-io');
export const SKIP_NO_QEMU = HAVE_QEMU ? false : 'qemu-img/qemu-io not installed (apt-get install qemu-utils)';

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = 'platter-test-'): { dir: string; path(name: string): string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, path: (name) => join(dir, name), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** QEMU's PBKDF2 calibration (LUKS iter-time) fails now and then on a busy machine when its
 *  thread CPU clock shows no progress ("Unable to get accurate CPU usage", crypto/pbkdf.c): an
 *  oracle flake, not a verdict, so such a run is repeated, after a pause that grows each time
 *  (the calibration needs a moment of CPU to itself). */
const QEMU_PBKDF_CALIBRATION_FLAKE = 'Unable to get accurate CPU usage';

export function run(cmd: string, args: string[], opts: { input?: string | Buffer; cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): RunResult {
  for (let attempt = 1; ; attempt++) {
    const r = spawnSync(cmd, args, { input: opts.input, cwd: opts.cwd, env: opts.env ?? process.env, encoding: 'utf8', timeout: opts.timeoutMs ?? 120_000, maxBuffer: 256 << 20 });
    if (r.error) throw r.error;
    if (r.status !== 0 && cmd.startsWith('qemu-') && attempt < 8 && r.stderr.includes(QEMU_PBKDF_CALIBRATION_FLAKE)) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100 * attempt);
      continue;
    }
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }
}

/** Run a command and fail with its stderr when it exits non-zero. */
export function runOk(cmd: string, args: string[], opts?: Parameters<typeof run>[2]): string {
  const r = run(cmd, args, opts);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

export const qemuImg = (...args: string[]) => runOk('qemu-img', args);
export const qemuIo = (...args: string[]) => runOk('qemu-io', args);
export const qemuImgJson = <T = any>(...args: string[]): T => JSON.parse(runOk('qemu-img', [...args, '--output=json'])) as T;

/** Run the platter CLI from source (as `npm run --silent platter --` does). */
export function platter(args: string[], opts?: Parameters<typeof run>[2]): RunResult {
  return run(process.execPath, [join(REPO_ROOT, 'bin/platter.mjs'), ...args], opts);
}

/** Start a long-running process (qemu-nbd -k, qemu-io holding an image); kill() stops it. */
export function startProcess(cmd: string, args: string[]): { child: ChildProcess; kill(): Promise<void> } {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  return {
    child,
    kill: () =>
      new Promise((res) => {
        if (child.exitCode !== null || child.signalCode !== null) return res();
        child.once('exit', () => res());
        child.kill('SIGTERM');
      }),
  };
}

export function md5(buf: Buffer): string {
  return createHash('md5').update(buf).digest('hex');
}

export function md5File(path: string): string {
  return md5(readFileSync(path));
}

/** A fixture's path, gunzipping "x.gz" into `into` (next to its siblings when asked) once. */
export function fixture(rel: string, into?: string): string {
  const p = join(FIXTURES, rel);
  if (existsSync(p)) return p;
  const gz = `${p}.gz`;
  if (!existsSync(gz)) throw new Error(`fixture ${rel} not found`);
  if (!into) throw new Error(`fixture ${rel} is gzipped: pass a directory to unpack it into`);
  const out = join(into, rel.split('/').pop()!);
  if (!existsSync(out)) writeFileSync(out, gunzipSync(readFileSync(gz)));
  return out;
}

/** The facts about every fixture (fixtures.json "fixtures": id, format, files, open, qemu_info,
 *  virtual_size, raw_md5, raw_nonzero_runs, qemu_map, qemu_check, qemu_error, ...). */
export function fixtureFacts(): any[] {
  return JSON.parse(readFileSync(join(FIXTURES, 'fixtures.json'), 'utf8')).fixtures;
}

/** One fixture's facts by id ("generated/qcow2-v3.qcow2"). */
export function fixtureById(id: string): any {
  const f = fixtureFacts().find((x) => x.id === id);
  if (!f) throw new Error(`no fixture ${id} in fixtures.json`);
  return f;
}

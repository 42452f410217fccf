// A one-node Sheepdog cluster for the sheepdog protocol tests: sheep and dog built once from the
// vendored source (../shared/vendor/sheepdog, scripts/build-sheepdog.sh caches the build per
// tarball hash), then per test file a sheep in the foreground on 127.0.0.1 at a free port with
// its own store directory and its own cluster file (the local cluster driver's default,
// /tmp/sheepdog_shm, would join every sheep on the machine into one cluster), formatted with
// one copy. Only the sheep this helper started is
// stopped, by its pid.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { freePort } from './nbd-peers.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './qemu.ts';

export const SHEEPDOG_VENDOR = join(REPO_ROOT, '../shared/vendor/sheepdog');

/** The directory holding `sheep` and `dog`, or why there is none (the tests then skip, saying so). */
export function sheepdogBinaries(): { dir: string; skip: false } | { dir?: undefined; skip: string } {
  if (!existsSync(join(SHEEPDOG_VENDOR, 'build.sh'))) return { skip: `sheepdog source not found at ${SHEEPDOG_VENDOR}` };
  const r = spawnSync('bash', [join(REPO_ROOT, 'scripts/build-sheepdog.sh'), SHEEPDOG_VENDOR], { encoding: 'utf8' });
  const dir = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !existsSync(join(dir, 'sheep')) || !existsSync(join(dir, 'dog'))) return { skip: `sheepdog build failed: ${r.stderr.trim() || `exit ${r.status}`}` };
  return { dir, skip: false };
}

export { freePort };

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect({ host: '127.0.0.1', port });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export interface SheepCluster {
  port: number;
  /** The unix socket the sheep also listens on (STORE/sock). */
  socketPath: string;
  /** sheepdog://127.0.0.1:PORT/NAME */
  uri(name: string): string;
  /** Run dog with `-p PORT` appended; stdout as a Buffer. */
  dog(args: string[], input?: Buffer): { status: number | null; stdout: Buffer; stderr: string };
  /** dog, failing the test when it fails. */
  dogOk(args: string[], input?: Buffer): Buffer;
  stop(): Promise<void>;
}

/** Start a sheep and format a one-copy cluster on it. */
export async function startSheep(dir: string): Promise<SheepCluster> {
  const store = mkdtempSync(join(tmpdir(), 'platter-sheep-'));
  const port = await freePort();
  const child: ChildProcess = spawn(join(dir, 'sheep'), ['-f', '-n', '-c', `local:${join(store, 'shm')}`, '-b', '127.0.0.1', '-p', String(port), join(store, 'store')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  let exited = false;
  const exit = new Promise<void>((r) => child.once('exit', () => ((exited = true), r())));
  // A test process that dies leaves no sheep behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const dog = (args: string[], input?: Buffer) => {
    const r = spawnSync(join(dir, 'dog'), [...args, '-p', String(port)], { input, maxBuffer: 1 << 30, timeout: 120_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
  };
  const stop = async () => {
    process.removeListener('exit', killOnExit);
    if (!exited && child.pid !== undefined) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exit;
      clearTimeout(t);
    }
    rmSync(store, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  while (!(await canConnect(port))) {
    if (exited || Date.now() > deadline) {
      await stop();
      throw new Error(`sheep did not start on port ${port}: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const f = dog(['cluster', 'format', '-c', '1']);
  if (f.status !== 0) {
    await stop();
    throw new Error(`dog cluster format failed: ${f.stderr}`);
  }
  return {
    port,
    socketPath: join(store, 'store', 'sock'),
    uri: (name) => `sheepdog://127.0.0.1:${port}/${name}`,
    dog,
    dogOk(args, input) {
      const r = dog(args, input);
      if (r.status !== 0) throw new Error(`dog ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
      return r.stdout;
    },
    stop,
  };
}

/** `dog vdi list -r` rows: kind ('=' working, 's' snapshot, 'c' clone), name, snapshot id, size, vdi id, tag. */
export function vdiList(c: SheepCluster): { kind: string; name: string; id: number; size: number; vid: string; tag: string; line: string }[] {
  return c
    .dogOk(['vdi', 'list', '-r'])
    .toString()
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) => {
      const f = line.split(' ');
      return { kind: f[0]!, name: f[1]!, id: Number(f[2]), size: Number(f[3]), vid: f[7]!, tag: f[9] ?? '', line };
    });
}

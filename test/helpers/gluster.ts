// A GlusterFS volume for a test: glusterd (the one running, or one this helper starts with its own
// pid and log files), and a one-brick volume in a temporary directory, named by this machine's
// host name (glusterd refuses "localhost" and 127.0.0.1 as a brick host; the name must resolve to
// an address of this machine). stop() stops and deletes the volume, and stops glusterd only when
// this helper started it (by its pid). Where glusterd cannot run (not installed, not root, the host
// name does not resolve), start() answers the reason and the tests skip saying so.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { tempDir } from './qemu.ts';

export interface GlusterVolume {
  /** Host name the brick and the clients use (resolves to this machine). */
  host: string;
  volume: string;
  /** The brick directory: the volume's files appear here. */
  brick: string;
  /** glusterd's unix socket (for gluster+unix://). */
  socket: string;
  stop(): Promise<void>;
}

const GLUSTERD = '/usr/sbin/glusterd';
const GLUSTER = '/usr/sbin/gluster';
const SOCKET = '/var/run/glusterd.socket';

function cli(args: string[], timeoutMs = 60_000): { ok: boolean; out: string } {
  const r = spawnSync(GLUSTER, ['--mode=script', ...args], { encoding: 'utf8', timeout: timeoutMs });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Is a glusterd answering on this machine? */
function glusterdAnswers(): boolean {
  return cli(['volume', 'list'], 15_000).ok;
}

/** Start a volume, or answer why it cannot be. */
export async function startGlusterVolume(): Promise<GlusterVolume | string> {
  if (process.platform !== 'linux') return 'GlusterFS tests run on Linux only';
  if (!existsSync(GLUSTERD) || !existsSync(GLUSTER)) return 'glusterd not installed (apt-get install glusterfs-server)';
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'glusterd needs root (its working directory is /var/lib/glusterd)';
  const host = hostname();
  const resolved = spawnSync('getent', ['hosts', host], { encoding: 'utf8' });
  if (resolved.status !== 0 || resolved.stdout.trim() === '') return `the host name '${host}' does not resolve (glusterd needs a brick host name that is not "localhost"; add it to /etc/hosts)`;

  const tmp = tempDir('platter-gluster-');
  let startedPid: number | undefined;
  if (!glusterdAnswers()) {
    const pidFile = join(tmp.dir, 'glusterd.pid');
    const r = spawnSync(GLUSTERD, ['-p', pidFile, `--log-file=${join(tmp.dir, 'glusterd.log')}`], { encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) {
      tmp.cleanup();
      return `glusterd could not start: ${(r.stderr || r.stdout || String(r.error)).trim()}`;
    }
    for (let i = 0; i < 100 && !existsSync(pidFile); i++) await sleep(100);
    startedPid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : undefined;
    let up = false;
    for (let i = 0; i < 60 && !(up = glusterdAnswers()); i++) await sleep(500);
    if (!up) {
      if (startedPid) killPid(startedPid);
      const log = existsSync(join(tmp.dir, 'glusterd.log')) ? readFileSync(join(tmp.dir, 'glusterd.log'), 'utf8').split('\n').filter((l) => / E /.test(l)).slice(-2).join(' ') : '';
      tmp.cleanup();
      return `glusterd started but does not answer${log ? `: ${log}` : ''}`;
    }
  }
  const volume = `platter-${process.pid}-${randomBytes(3).toString('hex')}`;
  const brick = join(tmp.dir, 'brick');
  mkdirSync(brick);
  const stopGlusterd = async (): Promise<void> => {
    if (startedPid) killPid(startedPid);
    tmp.cleanup();
  };
  const created = cli(['volume', 'create', volume, `${host}:${brick}`, 'force']);
  if (!created.ok) {
    await stopGlusterd();
    return `gluster volume create failed: ${created.out.trim()}`;
  }
  const started = cli(['volume', 'start', volume]);
  if (!started.ok) {
    cli(['volume', 'delete', volume]);
    await stopGlusterd();
    return `gluster volume start failed: ${started.out.trim()}`;
  }
  return {
    host,
    volume,
    brick,
    socket: SOCKET,
    async stop() {
      cli(['volume', 'stop', volume, 'force']);
      cli(['volume', 'delete', volume]);
      // glusterd keeps the brick's extended attributes; the directory goes with the temp dir.
      rmSync(brick, { recursive: true, force: true });
      await stopGlusterd();
    },
  };
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    // gone already
  }
}

/** Run a command without blocking the event loop (gluster opens take seconds: tests overlap them). */
export function runAsync(cmd: string, args: string[], timeoutMs = 180_000): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** libgfapi's own log lines ("[2026-... ] I [...]"), which it writes to stderr by default for
 *  both tools: left out before outputs are compared. */
export function withoutGlusterLog(text: string): string {
  return text
    .split('\n')
    .filter((l) => !/^\[\d{4}-\d\d-\d\d [\d:.]+ \+\d{4}\] [A-Z] \[/.test(l))
    .join('\n');
}

// Helpers shared by the bench suites (this module exports no `suite`, so the runner does not run
// it): the sample data they are made of, free ports, servers started and stopped by pid (only the
// processes a suite started), and the two sides of a pair as commands.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, rmSync, writeSync } from 'node:fs';
import { createConnection } from 'node:net';
import { randomFillSync } from 'node:crypto';
import { freePort } from '../../test/helpers/nbd-peers.ts';
import type { BenchContext, BenchSide, RunResult } from './types.ts';

export { freePort };

export const MiB = 1 << 20;

/** Whether a program is on PATH. */
export const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Run a command to completion; throws with its output when it fails. */
export function runOk(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * MiB, ...(opts.env ? { env: opts.env } : {}), ...(opts.input !== undefined ? { input: opts.input } : {}) });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.error?.message ?? ''}${r.stderr}${r.stdout}`);
  return r.stdout;
}

/**
 * Mixed sample data, MiB by MiB: a quarter random (incompressible), half text (compressible,
 * varied so no two MiB are alike), a quarter zeros unless `zeros` is false (then text). Written to
 * `path` (`bytes` a multiple of 1 MiB); the file has no holes.
 */
export function writeMixed(path: string, bytes: number, zeros = true): void {
  const fd = openSync(path, 'w');
  try {
    const random = Buffer.allocUnsafe(MiB);
    const text = Buffer.alloc(MiB);
    const zero = Buffer.alloc(MiB);
    const words = 'block drivers read clusters and sectors; qemu-img converts images from one format to another\n';
    for (let p = 0; p < MiB; p += words.length) text.write(words, p, Math.min(words.length, MiB - p), 'latin1');
    for (let i = 0; i < bytes / MiB; i++) {
      let buf: Buffer;
      if (i % 4 === 0) {
        randomFillSync(random);
        buf = random;
      } else if (i % 4 === 3 && zeros) buf = zero;
      else {
        for (let p = 0; p < MiB; p += 4096) text.write(`${i}:${p}`, p, 'latin1');
        buf = text;
      }
      writeSync(fd, buf, 0, MiB, i * MiB);
    }
  } finally {
    closeSync(fd);
  }
}


function canConnect(where: { port: number } | { path: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const s = 'path' in where ? createConnection({ path: where.path }) : createConnection({ host: '127.0.0.1', port: where.port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** A server process a suite started (and only it is stopped). */
export interface Server {
  proc: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** Start a server and wait until it accepts connections on `where` (or `ready()` says so). */
export async function startServer(
  cmd: string,
  args: string[],
  where: { port: number } | { path: string } | { ready(): Promise<boolean> },
  opts: { env?: NodeJS.ProcessEnv; ms?: number } = {},
): Promise<Server> {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(opts.env ? { env: opts.env } : {}) });
  let out = '';
  proc.stdout!.on('data', (b: Buffer) => (out = (out + b.toString()).slice(-8192)));
  proc.stderr!.on('data', (b: Buffer) => (out = (out + b.toString()).slice(-8192)));
  const server: Server = {
    proc,
    output: () => out,
    stop: () => stopProcess(proc),
  };
  const ready = 'ready' in where ? where.ready : 'path' in where ? async () => existsSync(where.path) && canConnect(where) : () => canConnect(where);
  const until = Date.now() + (opts.ms ?? 20_000);
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${cmd} exited (${proc.exitCode ?? proc.signalCode}): ${out.trim()}`);
    if (await ready()) return server;
    if (Date.now() > until) {
      await server.stop();
      throw new Error(`${cmd} did not start: ${out.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** SIGTERM one process this suite started, SIGKILL after 10 s; resolves when it has exited. */
export function stopProcess(proc: ChildProcess | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return resolve();
    const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    proc.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    proc.kill('SIGTERM');
  });
}

/** One side of a pair: a command timed by the runner, and an output file deleted after it. */
export function side(ctx: BenchContext, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; output?: string } = {}): BenchSide {
  return {
    run: (): Promise<RunResult> => ctx.timed(cmd, args, opts.env ? { env: opts.env } : undefined),
    ...(opts.output !== undefined ? { after: () => rmSync(opts.output!, { force: true }) } : {}),
  };
}

/** The Platter side: the shipped CLI with these arguments. */
export function platterSide(ctx: BenchContext, args: string[], opts: { env?: NodeJS.ProcessEnv; output?: string } = {}): BenchSide {
  return side(ctx, process.execPath, [ctx.platter, ...args], opts);
}

/** Whether qemu-img has a block driver (qemu-block-extra ships ssh, iscsi, ...). */
export function qemuHasDriver(name: string): boolean {
  const r = spawnSync('qemu-img', ['--help'], { encoding: 'utf8' });
  const m = /Supported formats:(.*)/.exec(r.stdout ?? '');
  return !!m && m[1]!.split(/\s+/).includes(name);
}

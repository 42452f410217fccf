// Drive jobs with administrator rights for the desktop app (docs/architecture.md "Elevated drive
// jobs"), balenaEtcher's design: when the user images or writes a drive this user may not open,
// the GUI offers "Authorize…", and main starts the helper (core/cli/elevated-worker.ts) through
// the OS's own authorization (pkexec / the UAC prompt / the macOS administrator dialog). The
// helper connects back over a private channel (a unix socket or named pipe announced in a 0700
// directory), proves itself with a one-time random token, receives the one job, and streams
// progress; cancel goes the other way. To the GUI it is the same job: progress, cancel, result.
//
// Nothing here imports 'electron': main.ts lends the helper's command (Electron's binary run as
// Node on the bundled helper), and the tests replace the elevation (`start`) by a plain spawn.

import { spawn } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { chmod, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorFromHelper, helperMessage, PIPE_FILE, readMessages, sendMessage, SOCKET_FILE, TOKEN_FILE, type HelperMessage } from '../core/api/elevated-protocol.ts';
import type { DriveJobResult, ElevatedDriveJob } from '../core/api/routes-drives.ts';
import type { JobControl } from '../core/jobs/common.ts';
import { BlockError, cancelled } from '../core/errors.ts';

/** How to run the helper without elevation: a program, its arguments (the channel is appended)
 *  and the environment it needs (ELECTRON_RUN_AS_NODE=1 for Electron's binary). */
export interface HelperCommand {
  exe: string;
  args: readonly string[];
  env?: Readonly<Record<string, string>>;
}

/** A program and its argument vector, run without a shell. */
export interface Command {
  file: string;
  args: string[];
}

export interface HelperExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The start of what it wrote to stderr (the elevation tool's refusal). */
  stderr: string;
  /** The OS could not start the program at all (ENOENT: no pkexec). */
  spawnError?: string;
}

export interface StartedHelper {
  exited: Promise<HelperExit>;
  /** Best effort: an elevated process may not be ours to signal. */
  stop(): void;
}

/** Starts the helper: elevated (elevatedStart) or, in tests, as it is (plainStart). */
export type HelperStarter = (helper: HelperCommand) => StartedHelper;

/** POSIX shell single quotes. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** An AppleScript string literal. */
export function appleScriptString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** A PowerShell single-quoted string (PowerShell also takes the typographic quotes as quotes). */
export function powerShellQuote(s: string): string {
  return `'${s.replace(/['\u2018\u2019\u201a\u201b]/g, (q) => q + q)}'`;
}

/** A script for powershell.exe -EncodedCommand (base64 of its UTF-16LE text: no quoting at all). */
export function powerShellEncoded(script: string): string {
  return Buffer.from(script, 'utf16le').toString('base64');
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The command that runs `helper` with administrator rights on `platform`, the OS's way:
 * - linux: pkexec (polkit's dialog); --disable-internal-agent so it never falls back to asking
 *   on a terminal; pkexec clears the environment, so /usr/bin/env sets what the helper needs.
 * - darwin: osascript's `do shell script ... with administrator privileges` (the system's
 *   authorization dialog, showing `prompt`); the shell line is built with POSIX quotes, then
 *   made an AppleScript string.
 * - win32: powershell Start-Process -Verb RunAs (the UAC prompt) -Wait, whose elevated program
 *   is powershell again with an encoded script that sets the environment and runs the helper;
 *   the exit status comes back through -PassThru. Encoded scripts need no quoting by cmd.exe.
 */
export function elevationCommand(platform: NodeJS.Platform, helper: HelperCommand, prompt: string): Command {
  const env = Object.entries(helper.env ?? {});
  for (const [k] of env) if (!ENV_NAME.test(k)) throw new BlockError('InvalidArgument', `Not an environment variable name: '${k}'`);
  const argv = [helper.exe, ...helper.args];
  if (platform === 'linux') {
    return { file: '/usr/bin/pkexec', args: ['--disable-internal-agent', '/usr/bin/env', ...env.map(([k, v]) => `${k}=${v}`), ...argv] };
  }
  if (platform === 'darwin') {
    const line = [...env.map(([k, v]) => `${k}=${shellQuote(v)}`), ...argv.map(shellQuote)].join(' ');
    return { file: '/usr/bin/osascript', args: ['-e', `do shell script ${appleScriptString(line)} with prompt ${appleScriptString(prompt)} with administrator privileges`] };
  }
  if (platform === 'win32') {
    const inner = [...env.map(([k, v]) => `$env:${k} = ${powerShellQuote(v)}`), `& ${argv.map(powerShellQuote).join(' ')}`, 'exit $LASTEXITCODE'].join('; ');
    const elevatedArgs = ['-NoProfile', '-NonInteractive', '-WindowStyle', 'Hidden', '-EncodedCommand', powerShellEncoded(inner)];
    const outer = `$ErrorActionPreference = 'Stop'; $p = Start-Process -FilePath 'powershell.exe' -ArgumentList @(${elevatedArgs.map(powerShellQuote).join(',')}) -Verb RunAs -WindowStyle Hidden -Wait -PassThru; exit $p.ExitCode`;
    return { file: 'powershell.exe', args: ['-NoProfile', '-NonInteractive', '-EncodedCommand', powerShellEncoded(outer)] };
  }
  throw new BlockError('Unsupported', `Platter cannot ask for administrator rights on ${platform}`);
}

/** Run a command (no shell) and report how it ended. */
export function spawnCommand(cmd: Command, env?: Readonly<Record<string, string>>): StartedHelper {
  const child = spawn(cmd.file, cmd.args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env }, windowsHide: true });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => {
    if (stderr.length < 8192) stderr += s;
  });
  const exited = new Promise<HelperExit>((resolve) => {
    child.once('error', (e) => resolve({ code: null, signal: null, stderr, spawnError: e.message }));
    child.once('close', (code, signal) => resolve({ code, signal, stderr }));
  });
  return { exited, stop: () => void child.kill() };
}

/** The test seam: the helper as it is, without elevation. */
export const plainStart: HelperStarter = (helper) => spawnCommand({ file: helper.exe, args: [...helper.args] }, helper.env);

/** The helper through the OS's authorization (elevationCommand). */
export function elevatedStart(platform: NodeJS.Platform, prompt: string): HelperStarter {
  return (helper) => spawnCommand(elevationCommand(platform, helper, prompt));
}

/** Why the helper never connected, in words: the user said no, no agent, or the tool failed. */
export function elevationFailure(platform: NodeJS.Platform, exit: HelperExit): BlockError {
  const detail = exit.stderr.trim().split('\n').slice(-1)[0] ?? '';
  const refused = (why: string) => new BlockError('Permission', `${why}: the drive job did not run`);
  if (exit.spawnError) return refused(`Platter could not ask for administrator rights (${platform === 'linux' ? 'pkexec, from polkit, is needed' : exit.spawnError})`);
  if (platform === 'linux') {
    if (exit.code === 126) return refused('The authorization was dismissed');
    if (/No authentication agent/i.test(exit.stderr)) return refused('No polkit authentication agent is running, so Platter cannot ask for administrator rights (start one, or run Platter as a user who may open raw disks)');
    if (exit.code === 127) return refused('Administrator rights were not granted');
  }
  if (platform === 'darwin' && /-128\b/.test(exit.stderr)) return refused('The authorization was cancelled');
  if (platform === 'win32' && exit.code !== 0 && !/^\d+$/.test(detail)) return refused(`Administrator rights were not granted (the UAC prompt was declined or failed${detail ? `: ${detail}` : ''})`);
  const how = exit.signal ? `killed by ${exit.signal}` : `exit status ${exit.code}`;
  return refused(`The elevated helper ended without connecting (${how}${detail ? `: ${detail}` : ''})`);
}

export interface ElevatedRunOptions {
  helper: HelperCommand;
  start: HelperStarter;
  platform?: NodeJS.Platform;
  /** How long a connection may take to present the token (default 5 s). */
  helloTimeoutMs?: number;
  /** How long the helper may take to stop after cancel before it is cut off (default 10 s). */
  cancelGraceMs?: number;
}

/**
 * Run one drive job in the elevated helper; progress and cancel as for any job. Resolves with the
 * helper's result, rejects with its error (a BlockError of the same kind and words), or with a
 * clear error when the authorization is refused, the helper misbehaves, or it dies mid-job.
 */
export async function runElevatedDriveJob(job: ElevatedDriveJob, ctl: JobControl, opts: ElevatedRunOptions): Promise<DriveJobResult> {
  const platform = opts.platform ?? process.platform;
  if (ctl.signal?.aborted) throw cancelled();
  const dir = await mkdtemp(join(tmpdir(), 'platter-elevate-'));
  try {
    if (platform !== 'win32') await chmod(dir, 0o700);
    const token = randomBytes(32).toString('hex');
    const tokenPath = join(dir, TOKEN_FILE);
    await writeFile(tokenPath, token, { mode: 0o600, flag: 'wx' });
    const address = platform === 'win32' ? `\\\\.\\pipe\\platter-elevated-${randomBytes(16).toString('hex')}` : join(dir, SOCKET_FILE);
    if (platform === 'win32') await writeFile(join(dir, PIPE_FILE), address, { flag: 'wx' });
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(address, () => resolve());
    });
    try {
      return await converse(server, token, tokenPath, dir, job, ctl, opts, platform);
    } finally {
      server.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function converse(server: ReturnType<typeof createServer>, token: string, tokenPath: string, dir: string, job: ElevatedDriveJob, ctl: JobControl, opts: ElevatedRunOptions, platform: NodeJS.Platform): Promise<DriveJobResult> {
  const expected = Buffer.from(token, 'utf8');
  return new Promise<DriveJobResult>((resolve, reject) => {
    let helper: Socket | undefined;
    let settled = false;
    let exit: HelperExit | undefined;
    const timers = new Set<NodeJS.Timeout>();
    const later = (ms: number, fn: () => void) => {
      const t = setTimeout(() => {
        timers.delete(t);
        fn();
      }, ms);
      timers.add(t);
    };
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      ctl.signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const fail = (e: BlockError) => settle(() => {
      helper?.destroy();
      reject(e);
    });

    const started = opts.start({ ...opts.helper, args: [...opts.helper.args, '--channel', dir] });
    void started.exited.then((e) => {
      exit = e;
      // Never connected: the authorization was refused, or the helper could not start.
      if (!helper) fail(elevationFailure(platform, e));
    });

    function onAbort() {
      if (!helper) {
        started.stop();
        fail(cancelled());
        return;
      }
      sendMessage(helper, { t: 'cancel' });
      later(opts.cancelGraceMs ?? 10_000, () => fail(cancelled()));
    }
    ctl.signal?.addEventListener('abort', onAbort, { once: true });

    server.on('connection', (sock: Socket) => {
      if (helper || settled) {
        sock.destroy();
        return;
      }
      let greeted = false;
      const helloTimer = setTimeout(() => sock.destroy(), opts.helloTimeoutMs ?? 5000);
      sock.on('error', () => {});
      readMessages<HelperMessage>(
        sock,
        helperMessage,
        (m) => {
          if (!greeted) {
            clearTimeout(helloTimer);
            const given = m.t === 'hello' ? Buffer.from(m.token, 'utf8') : Buffer.alloc(0);
            // A connection that does not present the token is refused; the real helper may still come.
            if (helper || given.length !== expected.length || !timingSafeEqual(given, expected)) {
              sock.destroy();
              return;
            }
            greeted = true;
            helper = sock;
            server.close(); // one helper, one connection: the token is spent
            void unlink(tokenPath).catch(() => {});
            sock.on('close', () => {
              if (settled) return;
              // Give the launcher a moment to report how the helper ended.
              const report = () => {
                const how = exit ? (exit.signal ? ` (killed by ${exit.signal})` : exit.code !== null ? ` (exit status ${exit.code})` : '') : '';
                fail(new BlockError('Io', `The elevated helper stopped before finishing the job${how}: the drive or image may be partly written`));
              };
              if (exit) report();
              else {
                void started.exited.then(report);
                later(2000, report);
              }
            });
            sendMessage(sock, { t: 'start', job });
            if (ctl.signal?.aborted) onAbort();
            return;
          }
          if (m.t === 'progress') ctl.onProgress?.({ done: m.done, total: m.total, ...(m.phase !== undefined ? { phase: m.phase } : {}) });
          else if (m.t === 'result') settle(() => resolve({ ...(m.result.verified !== undefined ? { verified: m.result.verified } : {}), ...(m.result.message !== undefined ? { message: m.result.message } : {}) }));
          else if (m.t === 'error') settle(() => reject(errorFromHelper(m.error)));
          else fail(new BlockError('Io', 'The elevated helper greeted twice: the job was stopped'));
        },
        (why) => {
          clearTimeout(helloTimer);
          if (sock !== helper) {
            sock.destroy();
            return;
          }
          fail(new BlockError('Io', `The elevated helper sent ${why}: the job was stopped`));
        },
      );
    });
  });
}

// How a running platter CLI opened a file: start it (from source) with arguments that make it run
// for a while (a convert with -r), wait until its copy has begun (its staged target appears),
// read the open(2) flags of its descriptors on the file from /proc/PID/fdinfo, then stop it with
// SIGTERM (which cancels the job: the staged target is removed). Linux only.

import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { REPO_ROOT } from './qemu.ts';

export interface RunningOpen {
  /** open(2) flags of each descriptor the process had on the file (empty: none seen). */
  flags: number[];
  /** The process's exit status after SIGTERM, and its stderr. */
  status: number | null;
  stderr: string;
  /** Files left in the target's folder whose names start with ".<target name>" (staging). */
  leftovers: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function flagsOn(pid: number, path: string): number[] {
  const out: number[] = [];
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== path) continue;
      const m = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (m) out.push(parseInt(m[1]!, 8));
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** Run `platter ...args` whose last argument is a new target; report its flags on `watched`. */
export async function openFlagsDuringConvert(args: string[], watched: string): Promise<RunningOpen> {
  const target = args[args.length - 1]!;
  const stagedPrefix = `.${basename(target)}.`;
  const dir = dirname(target);
  const path = realpathSync(watched);
  const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/platter.mjs'), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let flags: number[] = [];
  try {
    for (let i = 0; i < 600 && child.exitCode === null; i++) {
      if (readdirSync(dir).some((n) => n.startsWith(stagedPrefix))) {
        flags = flagsOn(child.pid!, path);
        break;
      }
      await sleep(50);
    }
  } finally {
    child.kill('SIGTERM');
  }
  const status = await exited;
  return { flags, status, stderr, leftovers: readdirSync(dir).filter((n) => n.startsWith(stagedPrefix) || n === basename(target)) };
}

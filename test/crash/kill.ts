// Run the platter CLI and SIGKILL it at a chosen moment: once it reports progress (-p), once a
// file of the target appears in a folder, or a fixed time after it starts. Used by the crash
// tests of whole-image jobs (convert, create, commit, rebase, resize, amend, snapshot).
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/qemu.ts';

export type KillTrigger = { progress: true } | { fileIn: string; stem: string } | { started: true };

export interface KillOutcome {
  killed: boolean;
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Start `platter ARGS`; when `trigger` fires, SIGKILL it after `delayMs`. */
export function runPlatterAndKill(args: string[], delayMs: number, trigger: KillTrigger): Promise<KillOutcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/platter.mjs'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let timer: NodeJS.Timeout | undefined;
    let stdout = '';
    let stderr = '';
    const arm = () => (timer ??= setTimeout(() => child.kill('SIGKILL'), delayMs));
    if ('started' in trigger) arm();
    const poll =
      'fileIn' in trigger
        ? setInterval(() => {
            if (readdirSync(trigger.fileIn).some((n) => n.includes(trigger.stem))) arm();
          }, 5)
        : undefined;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if ('progress' in trigger && /\((?!0\.00)\d+\.\d+\/100%\)/.test(d.toString())) arm();
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (status, signal) => {
      if (timer) clearTimeout(timer);
      if (poll) clearInterval(poll);
      resolve({ killed: signal === 'SIGKILL', status, stdout, stderr });
    });
  });
}

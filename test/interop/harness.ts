// In-process runner for the platter CLI (core/cli/main.ts) used by the CLI interop tests: same
// argv, captured stdout/stderr and exit status, without paying a process start per call. Tests
// that must prove process-level behaviour (no stack trace, exit code) spawn bin/platter.mjs.

import assert from 'node:assert/strict';
import { main } from '../../core/cli/main.ts';
import { run, qemuImg, qemuIo } from '../helpers/qemu.ts';

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

export async function platterInProcess(args: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const status = await main(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
  return { status, stdout, stderr };
}

/** qemu-img with its status and output (no throw on a non-zero exit). */
export function qemuImgRaw(...args: string[]): CliResult {
  const r = run('qemu-img', args);
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Platter prints what qemu-img prints for `args` (its "qemu-img:" lines as "platter:") and exits
 *  with the same status. */
export async function assertSameAsQemuImg(args: string[]): Promise<void> {
  const q = qemuImgRaw(...args);
  const p = await platterInProcess(args);
  assert.equal(p.stdout, q.stdout, args.join(' '));
  assert.equal(p.stderr, q.stderr.replace(/^qemu-img:/gm, 'platter:').replace(/^Try 'qemu-img --help'/gm, "Try 'platter --help'"), args.join(' '));
  assert.equal(p.status, q.status, args.join(' '));
}

/** Write a pattern at offsets with qemu-io (-f raw unless given). */
export function qemuWrite(file: string, format: string, writes: [offset: number, length: number, pattern: number][]): void {
  const args = ['-f', format];
  for (const [o, l, p] of writes) args.push('-c', p < 0 ? `write -z ${o} ${l}` : `write -P ${p} ${o} ${l}`);
  qemuIo(...args, file);
}

export { qemuImg };

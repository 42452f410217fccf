// Helpers for the image-locking matrix (test/interop/lock-matrix.test.ts), in the manner of QEMU's
// iotest 153: holders (a QEMU tool or Platter keeping an image open in one mode) and probers (one
// short QEMU command or its Platter equivalent), each probe reduced to a comparable outcome:
// "ok", "locked: <QEMU's lock message>" or "error". Locking protocol: qemu-block-drivers(7)
// "Image locking"; lock bytes as in block/file-posix.c (QEMU 7.2).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import type { BlockNode } from '../../core/block/node.ts';
import { BlockError } from '../../core/errors.ts';
import type { PlatterService } from '../../core/api/service.ts';
import { run } from '../helpers/qemu.ts';

/** Longest wait for a holder to take its locks (QEMU tools start in well under a second). */
export const HOLD_TIMEOUT_MS = 8000;
/** Longest run of one QEMU probe. */
export const PROBE_TIMEOUT_MS = 10_000;
/** Polling period while waiting for a holder's lock bytes to settle. */
const POLL_MS = 25;
/** Consecutive identical /proc/locks readings that count as "settled". */
const STABLE_READINGS = 3;
/** Size every matrix image is created with; resize probes resize to it (a no-op that still
 *  needs the resize permission). */
export const IMAGE_SIZE = '1M';

export type Fmt = 'raw' | 'qcow2';

/** A probe outcome: "ok", "locked: Failed to get ... lock" (QEMU's words) or "error". */
export type Outcome = string;

/** QEMU's lock conflict message inside an error text (raw_check_lock_bytes' wording). */
const LOCK_MESSAGE = /Failed to get (?:shared )?"[^"]+" lock/;

/** One QEMU command's outcome from its exit status and stderr. */
export function qemuOutcome(status: number | null, stderr: string): Outcome {
  if (status === 0) return 'ok';
  const m = LOCK_MESSAGE.exec(stderr);
  return m ? `locked: ${m[0]}` : 'error';
}

/** A Platter call's outcome: BlockError 'Locked' carries the same message as QEMU's. */
export async function platterOutcome(fn: () => Promise<unknown>): Promise<Outcome> {
  try {
    await fn();
    return 'ok';
  } catch (e) {
    if (e instanceof BlockError && e.kind === 'Locked') {
      const m = LOCK_MESSAGE.exec(e.message);
      return `locked: ${m ? m[0] : e.message}`;
    }
    return 'error';
  }
}

/** Bytes locked on `path` by anyone, from /proc/locks ("N: OFDLCK ADVISORY READ -1 MAJ:MIN:INODE START END"). */
export function lockedBytes(path: string): number[] {
  const ino = String(statSync(path).ino);
  const out = new Set<number>();
  for (const line of readFileSync('/proc/locks', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || f[1] === '->') continue;
    if (f[5]!.split(':')[2] !== ino) continue;
    const start = Number(f[6]);
    const end = f[7] === 'EOF' ? start : Number(f[7]);
    for (let b = start; b <= end; b++) out.add(b);
  }
  return [...out].sort((a, b) => a - b);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Something keeping an image open until release(). */
export interface Holder {
  readonly label: string;
  release(): Promise<void>;
}

/** Kill a child's whole process group (it was spawned detached) and wait for it, time-bound. */
function killGroup(child: ChildProcess): Promise<void> {
  return new Promise<void>((res) => {
    if (child.exitCode !== null || child.signalCode !== null) return res();
    const timer = setTimeout(res, HOLD_TIMEOUT_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      res();
    });
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  });
}

/** A shell that runs a daemon-like tool (qemu-nbd) in the background and kills it as soon as its
 *  own stdin (our pipe) closes, so the tool cannot outlive a test runner that dies abruptly.
 *  qemu-io needs no such guard: it already exits on end of input. */
const STDIN_WATCHDOG = '"$@" & p=$!; read _; kill -9 $p';

/** Start a QEMU tool holding `path` (qemu-io on a stdin pipe, qemu-nbd -k) and resolve once its
 *  lock bytes have settled in /proc/locks. */
export async function qemuHolder(label: string, cmd: string, args: string[], path: string): Promise<Holder> {
  const [exe, argv] = cmd === 'qemu-io' ? [cmd, args] : ['sh', ['-c', STDIN_WATCHDOG, 'sh', cmd, ...args]];
  const child = spawn(exe, argv, { stdio: ['pipe', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += String(d)));
  const release = () => killGroup(child);
  const deadline = Date.now() + HOLD_TIMEOUT_MS;
  let bytes: number[] = [];
  let stable = 0;
  try {
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`${cmd} exited early: ${stderr}`);
      const now = lockedBytes(path);
      if (now.length > 0 && now.join() === bytes.join()) {
        if (++stable >= STABLE_READINGS) return { label, release };
      } else stable = 0;
      bytes = now;
      await sleep(POLL_MS);
    }
    throw new Error(`${cmd} ${args.join(' ')} took no locks within ${HOLD_TIMEOUT_MS} ms: ${stderr}`);
  } catch (e) {
    await release();
    throw e;
  }
}

/** Platter holding `path` in this process with openImage's options for the mode. */
export async function platterHolder(label: string, path: string, fmt: Fmt, mode: { readOnly: boolean; forceShare?: boolean; noShare?: boolean }): Promise<Holder> {
  const node: BlockNode = await openImage(path, { format: fmt, readOnly: mode.readOnly, forceShare: mode.forceShare ?? false, ...(mode.noShare !== undefined ? { noShare: mode.noShare } : {}), warn: () => {} });
  return { label, release: () => node.close() };
}

/** One prober: a QEMU command and the Platter call that does the same. `qemu` returns argv
 *  (tool first); `platter` runs in this process through the API service or openImage. */
export interface Probe {
  name: string;
  qemu(path: string, fmt: Fmt, scratch: string): string[];
  platterName: string;
  platter(svc: PlatterService, path: string, fmt: Fmt, scratch: string): Promise<unknown>;
}

/** Open through openImage, do one I/O, close (the Platter side of a qemu-io -c probe). */
async function openAndDo(path: string, fmt: Fmt, mode: { readOnly: boolean; forceShare?: boolean; noShare?: boolean }, io: (n: BlockNode) => Promise<unknown>): Promise<void> {
  const n = await openImage(path, { format: fmt, readOnly: mode.readOnly, forceShare: mode.forceShare ?? false, ...(mode.noShare !== undefined ? { noShare: mode.noShare } : {}), warn: () => {} });
  try {
    await io(n);
  } finally {
    await n.close();
  }
}

/** The probers of iotest 153, each with its Platter equivalent. */
export const PROBES: Probe[] = [
  {
    name: 'qemu-img info',
    qemu: (p, f) => ['qemu-img', 'info', '-f', f, p],
    platterName: 'platter info',
    platter: (s, p, f) => s.info({ image: { filename: p, format: f } }),
  },
  {
    name: 'qemu-img info -U',
    qemu: (p, f) => ['qemu-img', 'info', '-U', '-f', f, p],
    platterName: 'platter info -U',
    platter: (s, p, f) => s.info({ image: { filename: p, format: f, forceShare: true } }),
  },
  {
    name: "qemu-io -c 'read 0 512'",
    qemu: (p, f) => ['qemu-io', '-f', f, '-c', 'read 0 512', p],
    platterName: 'openImage read-write (sharing all, as qemu-io) + read',
    platter: (_s, p, f) => openAndDo(p, f, { readOnly: false, noShare: false }, (n) => n.read(0, 512)),
  },
  {
    name: "qemu-io -r -c 'read 0 512'",
    qemu: (p, f) => ['qemu-io', '-r', '-f', f, '-c', 'read 0 512', p],
    platterName: 'openImage read-only + read',
    platter: (_s, p, f) => openAndDo(p, f, { readOnly: true }, (n) => n.read(0, 512)),
  },
  {
    name: "qemu-io -U -r -c 'read 0 512'",
    qemu: (p, f) => ['qemu-io', '-U', '-r', '-f', f, '-c', 'read 0 512', p],
    platterName: 'openImage read-only force-share + read',
    platter: (_s, p, f) => openAndDo(p, f, { readOnly: true, forceShare: true }, (n) => n.read(0, 512)),
  },
  {
    name: "qemu-io -c 'write 0 512'",
    qemu: (p, f) => ['qemu-io', '-f', f, '-c', 'write 0 512', p],
    platterName: 'openImage read-write (sharing all, as qemu-io) + write',
    platter: (_s, p, f) => openAndDo(p, f, { readOnly: false, noShare: false }, (n) => n.write(0, Buffer.alloc(512))),
  },
  {
    name: `qemu-img resize ${IMAGE_SIZE}`,
    qemu: (p, f) => ['qemu-img', 'resize', '-q', '-f', f, p, IMAGE_SIZE],
    platterName: `platter resize ${IMAGE_SIZE}`,
    platter: (s, p, f) => s.resize({ image: { filename: p, format: f }, size: IMAGE_SIZE }),
  },
  {
    name: 'qemu-img check',
    qemu: (p, f) => ['qemu-img', 'check', '-q', '-f', f, p],
    platterName: 'platter check',
    platter: (s, p, f) => s.check({ image: { filename: p, format: f } }).result,
  },
  {
    name: 'qemu-img convert (source)',
    qemu: (p, f, scratch) => ['qemu-img', 'convert', '-f', f, '-O', 'raw', p, scratch],
    platterName: 'platter convert (source)',
    platter: (s, p, f, scratch) => s.convert({ source: { filename: p, format: f }, target: { filename: scratch, format: 'raw' } }).result,
  },
  {
    name: 'qemu-img snapshot -l',
    qemu: (p) => ['qemu-img', 'snapshot', '-l', p], // qemu-img snapshot has no -f: the format is probed
    platterName: 'platter snapshot -l',
    platter: (s, p, f) => s.snapshotList({ image: { filename: p, format: f } }),
  },
];

/** Run a command without blocking the event loop (several CLI probes at once), time-bound. */
export function runAsync(cmd: string, args: string[]): Promise<{ status: number | null; stderr: string }> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: PROBE_TIMEOUT_MS * 3, killSignal: 'SIGKILL' });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += String(d)));
    child.once('error', rej);
    child.once('close', (status) => res({ status, stderr }));
  });
}

/** Run one QEMU probe and reduce it to an outcome. */
export function runQemuProbe(probe: Probe, path: string, fmt: Fmt, scratch: string): Outcome {
  const [cmd, ...args] = probe.qemu(path, fmt, scratch);
  const r = run(cmd!, args, { timeoutMs: PROBE_TIMEOUT_MS });
  return qemuOutcome(r.status, r.stderr);
}

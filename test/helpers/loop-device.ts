// Linux loop devices for tests of the host_device driver and the Drives view: a scratch file made
// into a real block device with `losetup -f --show`, always detached by the caller (`detach` in a
// finally / after hook). Needs root; LOOP_SKIP says why they cannot be used here.

import { closeSync, openSync, truncateSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A new file of `size` bytes (a hole). */
export function sizedFile(path: string, size: number): void {
  closeSync(openSync(path, 'w'));
  truncateSync(path, size);
}

/** Attach `backing` to a free loop device; undefined when that fails (not root, no loop driver). */
export function attachLoop(backing: string): string | undefined {
  const r = spawnSync('losetup', ['-f', '--show', backing], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Detach a loop device this test attached. */
export function detachLoop(dev: string): void {
  spawnSync('losetup', ['-d', dev]);
}

/** Re-read the backing file's size (losetup -c), e.g. after truncating it: the device shrinks. */
export function refreshLoopCapacity(dev: string): void {
  spawnSync('losetup', ['-c', dev]);
}

function probeLoop(): string | false {
  if (process.platform !== 'linux') return 'loop devices exist on Linux only';
  const dir = mkdtempSync(join(tmpdir(), 'platter-loop-probe-'));
  try {
    sizedFile(join(dir, 'p.img'), 1 << 20);
    const dev = attachLoop(join(dir, 'p.img'));
    if (!dev) return 'loop devices cannot be set up here (needs root and losetup)';
    detachLoop(dev);
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** false when loop devices work here, else the reason they do not. */
export const LOOP_SKIP: string | false = probeLoop();

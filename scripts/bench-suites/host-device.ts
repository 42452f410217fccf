// Bench suite (issue #19): imaging a 1 GiB host block device (a loop device over a scratch file,
// about half of it data in 1 MiB runs every 2 MiB, the rest zeros) into qcow2:
// `qemu-img convert -f raw -O qcow2 /dev/loopN out.qcow2` against `platter convert` of the same.
// Goal: platter/qemu-img <= 1.0. Needs root (losetup); teardown detaches the device it attached.
// Two pairs, because the page cache decides the time and this machine's memory reclaimer empties
// it within seconds at random: "not in the page cache" drops the page cache before every run (as
// when a drive is imaged: its blocks were never read); "backing file in the page cache" reads the
// whole device just before every run. A block device's own page cache is dropped when its last
// opener closes it, so what that read leaves cached is the backing file: both tools then read
// through the loop driver, from memory. Both untimed, the same for both tools.
// Platter reads a device with O_DIRECT by default (qemu-img through the page cache, its default):
// a third pair, for comparison and without a target, gives both tools -T none.

import { spawnSync } from 'node:child_process';
import { closeSync, openSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext, BenchPair, BenchSuite } from './types.ts';

const GiB = 1 << 30;
const MiB = 1 << 20;

let device: string | undefined;

function attach(file: string): string | undefined {
  const r = spawnSync('losetup', ['-f', '--show', file], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** 1 GiB: a 1 MiB run of non-zero bytes at every even MiB, holes between (~512 MiB of data). */
function makeBacking(path: string): void {
  const fd = openSync(path, 'w');
  try {
    truncateSync(path, GiB);
    const chunk = Buffer.alloc(MiB);
    for (let i = 0; i < chunk.length; i += 4096) chunk.fill((i / 4096) % 251 + 1, i, i + 4096);
    for (let off = 0; off < GiB; off += 2 * MiB) writeSync(fd, chunk, 0, MiB, off);
  } finally {
    closeSync(fd);
  }
}

export const suite: BenchSuite = {
  name: 'Host devices',
  async unavailable() {
    if (process.platform !== 'linux') return 'loop devices exist on Linux only';
    if (process.getuid?.() !== 0) return 'needs root for losetup';
    if (spawnSync('losetup', ['--version']).status !== 0) return 'losetup not installed';
    if (spawnSync('qemu-img', ['--version']).status !== 0) return 'qemu-img not installed';
    return undefined;
  },
  async setup(ctx: BenchContext): Promise<BenchPair[]> {
    const backing = join(ctx.dir, 'disk-1g.img');
    makeBacking(backing);
    device = attach(backing);
    if (!device) throw new Error('losetup -f --show failed');
    ctx.log(`host-device: ${device} over ${backing}`);
    const dev = device;
    const out = join(ctx.dir, 'out.qcow2');
    const clean = () => rmSync(out, { force: true });
    const args = ['convert', '-f', 'raw', '-O', 'qcow2', dev, out];
    // Untimed, before every run of either tool: the page cache as the pair wants it.
    const states: [label: string, prepare: () => void][] = [
      ['device not in the page cache', () => {
        spawnSync('sync');
        writeFileSync('/proc/sys/vm/drop_caches', '1');
      }],
      ['backing file in the page cache', () => void spawnSync('dd', [`if=${dev}`, 'of=/dev/null', 'bs=4M'], { stdio: 'ignore' })],
    ];
    /** One side: the page cache as the pair wants it (untimed), then the timed command. */
    const side = (prepare: () => void, cmd: string, argv: string[]) => ({
      run: () => {
        prepare();
        return ctx.timed(cmd, argv);
      },
      after: clean,
    });
    const pairs = states.map(([label, prepare]): BenchPair => ({
      name: `loop device (1 GiB, ~half data) -> qcow2, ${label}`,
      referenceLabel: 'qemu-img convert',
      target: 1.0,
      // Under a second a run, and qemu-img's time swings 2-3x from run to run here.
      minRuns: 11,
      reference: side(prepare, 'qemu-img', args),
      platter: side(prepare, process.execPath, [ctx.platter, ...args]),
    }));
    // Both past the page cache, device not cached: how the two tools compare in one mode.
    const [, cold] = states[0]!;
    const direct = ['convert', '-T', 'none', '-f', 'raw', '-O', 'qcow2', dev, out];
    pairs.push({
      name: 'loop device (1 GiB, ~half data) -> qcow2, device not in the page cache, both with -T none',
      referenceLabel: 'qemu-img convert -T none',
      target: undefined,
      maxRuns: 5,
      reference: side(cold, 'qemu-img', direct),
      platter: side(cold, process.execPath, [ctx.platter, ...direct]),
    });
    return pairs;
  },
  async teardown() {
    if (device) spawnSync('losetup', ['-d', device]);
    device = undefined;
  },
};

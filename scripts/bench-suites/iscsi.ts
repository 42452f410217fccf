// Issue #21's speed for iSCSI: `convert -O raw` of a 512 MiB LUN, qemu-img (libiscsi) vs Platter;
// target <= 1.2x. The suite starts its own tgtd (Linux STGT) on 127.0.0.1 (random portal port,
// its own control port) serving one LUN backed by a file in the suite's directory; teardown
// deletes the target and stops that tgtd (tgtd runs only as root).

import { join } from 'node:path';
import { existsSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import type { BenchContext, BenchPair, BenchSuite } from './types.ts';
import { MiB, freePort, have, isRoot, platterSide, qemuHasDriver, side, startServer, writeMixed, type Server } from './util.ts';

const SIZE = 512 * MiB;
const IQN = 'iqn.2026-12.org.platter.bench:disk';

let tgtd: Server | undefined;
let control = 0;

const tgtadm = (...args: string[]) => spawnSync('tgtadm', ['-C', String(control), ...args], { encoding: 'utf8' });
function tgtadmOk(...args: string[]): void {
  const r = tgtadm(...args);
  if (r.status !== 0) throw new Error(`tgtadm ${args.join(' ')}: ${r.stderr}${r.stdout}`);
}

export const suite: BenchSuite = {
  name: 'iSCSI',
  async unavailable() {
    for (const t of ['qemu-img', 'tgtd', 'tgtadm']) if (!have(t)) return `${t} not installed (apt-get install tgt)`;
    if (!isRoot) return 'tgtd needs root';
    if (!qemuHasDriver('iscsi')) return 'qemu-img has no iscsi driver (apt-get install qemu-block-extra)';
    return undefined;
  },
  async setup(ctx: BenchContext): Promise<BenchPair[]> {
    const port = await freePort();
    const portal = `127.0.0.1:${port}`;
    // A control port of our own (its socket must not be in use).
    do control = 100 + Math.floor(Math.random() * 900);
    while (existsSync(`/var/run/tgtd/socket.${control}`));
    tgtd = await startServer('tgtd', ['-f', '--iscsi', `portal=${portal}`, '-C', String(control)], {
      ready: async () => tgtadm('--mode', 'system', '--op', 'show').status === 0,
    });
    const lun = join(ctx.dir, 'lun.raw');
    writeMixed(lun, SIZE, false);
    tgtadmOk('--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid', '1', '-T', IQN);
    tgtadmOk('--lld', 'iscsi', '--mode', 'logicalunit', '--op', 'new', '--tid', '1', '--lun', '1', '-b', lun);
    tgtadmOk('--lld', 'iscsi', '--mode', 'target', '--op', 'bind', '--tid', '1', '--initiator-address', 'ALL');
    const url = `iscsi://${portal}/${IQN}/1`;
    const qOut = join(ctx.dir, 'out-qemu.raw');
    const pOut = join(ctx.dir, 'out-platter.raw');
    // One untimed read of the whole LUN first: the first reader through a new tgtd was up to 4x
    // slower than the next ones here, whichever tool it was.
    ctx.log('warming the LUN (one untimed qemu-img convert)');
    await ctx.timed('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', url, qOut]);
    rmSync(qOut, { force: true });
    return [
      {
        name: `convert -O raw from an iSCSI LUN (${SIZE / MiB} MiB)`,
        referenceLabel: 'qemu-img convert',
        target: 1.2,
        // Under half a second a run, with tgtd sharing the two cores: qemu-img's time swings 2-6x.
        minRuns: 11,
        reference: side(ctx, 'qemu-img', ['convert', '-f', 'raw', '-O', 'raw', url, qOut], { output: qOut }),
        platter: platterSide(ctx, ['convert', '-f', 'raw', '-O', 'raw', url, pOut], { output: pOut }),
      },
    ];
  },
  async teardown() {
    if (tgtd && tgtd.proc.exitCode === null) {
      // tgtd stops only once it has no targets.
      tgtadm('--lld', 'iscsi', '--mode', 'target', '--op', 'delete', '--force', '--tid', '1');
      tgtadm('--mode', 'system', '--op', 'delete');
      await tgtd.stop();
    }
    // tgtd leaves its control socket behind even when it exits cleanly.
    if (tgtd) for (const f of [`/var/run/tgtd/socket.${control}`, `/var/run/tgtd/socket.${control}.lock`]) rmSync(f, { force: true });
    tgtd = undefined;
  },
};

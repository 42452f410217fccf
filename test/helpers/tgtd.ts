// A real iSCSI target for tests (the setup test/interop/iscsi-tgt.test.ts uses, as a helper):
// Linux STGT's tgtd on 127.0.0.1 and a random portal port, with a control port of its own so it
// never meets the system's tgtd; tgtadm() configures it. stop() deletes the targets it was given
// and ends the tgtd started here (it stops only once it has no targets), then removes its socket.

import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { freePort } from './nbd-peers.ts';
import { have, run } from './qemu.ts';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
export const SKIP_NO_TGTD = !have('tgtd') || !have('tgtadm') ? 'tgtd/tgtadm not installed (apt-get install tgt)' : !isRoot ? 'tgtd needs root' : false;

export interface Tgtd {
  portal: string;
  /** tgtd's process id (a test may stop it with SIGSTOP to play a dead target). */
  pid: number;
  tgtadm(...args: string[]): string;
  /** Target `tid` named `iqn` with `backing` as LUN 1, open to every initiator address. */
  addTarget(tid: string, iqn: string, backing: string): void;
  stop(tids: string[]): Promise<void>;
}

export async function startTgtd(): Promise<Tgtd> {
  const port = await freePort();
  const portal = `127.0.0.1:${port}`;
  let control: number;
  do control = 100 + Math.floor(Math.random() * 900);
  while (existsSync(`/var/run/tgtd/socket.${control}`));
  const tgtd = spawn('tgtd', ['-f', '--iscsi', `portal=${portal}`, '-C', String(control)], { stdio: ['ignore', 'pipe', 'pipe'] });
  tgtd.stdout!.resume();
  tgtd.stderr!.resume();
  for (let i = 0; ; i++) {
    if (run('tgtadm', ['-C', String(control), '--mode', 'system', '--op', 'show']).status === 0) break;
    if (i > 100 || tgtd.exitCode !== null) throw new Error('tgtd did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  const tgtadm = (...args: string[]) => {
    const r = run('tgtadm', ['-C', String(control), ...args]);
    if (r.status !== 0) throw new Error(`tgtadm ${args.join(' ')}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  return {
    portal,
    pid: tgtd.pid!,
    tgtadm,
    addTarget(tid, iqn, backing) {
      tgtadm('--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid', tid, '-T', iqn);
      tgtadm('--lld', 'iscsi', '--mode', 'logicalunit', '--op', 'new', '--tid', tid, '--lun', '1', '-b', backing);
      tgtadm('--lld', 'iscsi', '--mode', 'target', '--op', 'bind', '--tid', tid, '--initiator-address', 'ALL');
    },
    async stop(tids) {
      if (tgtd.exitCode === null) {
        for (const tid of tids) run('tgtadm', ['-C', String(control), '--lld', 'iscsi', '--mode', 'target', '--op', 'delete', '--force', '--tid', tid]);
        run('tgtadm', ['-C', String(control), '--mode', 'system', '--op', 'delete']);
        const exited = new Promise((r) => tgtd.once('exit', r));
        const timer = setTimeout(() => tgtd.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      for (const f of [`/var/run/tgtd/socket.${control}`, `/var/run/tgtd/socket.${control}.lock`]) rmSync(f, { force: true });
    },
  };
}

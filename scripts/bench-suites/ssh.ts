// Issue #21's speed for ssh: `convert -O raw` of a 512 MiB file read over sftp, qemu-img (libssh)
// vs Platter; target <= 1.2x. The suite starts its own OpenSSH sshd on 127.0.0.1 (random port,
// its own host key, authorized_keys and config, internal-sftp) and its own ssh-agent holding a
// client key; both tools authenticate through that agent with host_key_check=no.

import { join } from 'node:path';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import type { BenchContext, BenchPair, BenchSuite } from './types.ts';
import { MiB, freePort, have, isRoot, platterSide, qemuHasDriver, runOk, side, startServer, writeMixed, type Server } from './util.ts';

const SSHD = '/usr/sbin/sshd';
const SIZE = 512 * MiB;

let sshd: Server | undefined;
let agent: Server | undefined;

/** sshd's per-connection processes (children of the sshd this suite started). */
function childrenOf(pid: number): number[] {
  const r = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n').filter(Boolean).map(Number);
}

export const suite: BenchSuite = {
  name: 'ssh',
  async unavailable() {
    if (!existsSync(SSHD)) return 'OpenSSH server (sshd) not installed';
    for (const t of ['qemu-img', 'ssh-keygen', 'ssh-agent', 'ssh-add']) if (!have(t)) return `${t} not installed`;
    if (!qemuHasDriver('ssh')) return "qemu-img has no ssh driver (apt-get install qemu-block-extra)";
    return undefined;
  },
  async setup(ctx: BenchContext): Promise<BenchPair[]> {
    const d = ctx.dir;
    runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'platter-bench', '-f', join(d, 'hostkey')]);
    runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'platter-bench', '-f', join(d, 'clientkey')]);
    writeFileSync(join(d, 'authorized_keys'), readFileSync(join(d, 'clientkey.pub')));
    const port = await freePort();
    writeFileSync(
      join(d, 'sshd_config'),
      [
        'ListenAddress 127.0.0.1',
        `Port ${port}`,
        `HostKey ${join(d, 'hostkey')}`,
        `AuthorizedKeysFile ${join(d, 'authorized_keys')}`,
        'Subsystem sftp internal-sftp',
        `PidFile ${join(d, 'sshd.pid')}`,
        'StrictModes no',
        'UsePAM no',
        '',
      ].join('\n'),
    );
    // sshd started by root needs its privilege-separation directory (Debian makes it at boot).
    if (isRoot && !existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });
    sshd = await startServer(SSHD, ['-f', join(d, 'sshd_config'), '-D', '-e'], { port });
    const sock = join(d, 'agent.sock');
    agent = await startServer('ssh-agent', ['-D', '-a', sock], { path: sock });
    const env = { ...process.env, SSH_AUTH_SOCK: sock };
    runOk('ssh-add', ['-q', join(d, 'clientkey')], { env });
    const src = join(d, 'remote.raw');
    writeMixed(src, SIZE, false);
    const uri = `ssh://127.0.0.1:${port}${src}?host_key_check=no`;
    const qOut = join(d, 'out-qemu.raw');
    const pOut = join(d, 'out-platter.raw');
    const agentEnv = { SSH_AUTH_SOCK: sock };
    return [
      {
        name: `convert -O raw from an ssh path (${SIZE / MiB} MiB)`,
        referenceLabel: 'qemu-img convert',
        target: 1.2,
        reference: side(ctx, 'qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, qOut], { output: qOut, env: agentEnv }),
        platter: platterSide(ctx, ['convert', '-f', 'raw', '-O', 'raw', uri, pOut], { output: pOut, env: agentEnv }),
        maxRuns: 3,
      },
    ];
  },
  async teardown() {
    if (sshd?.proc.pid !== undefined) {
      for (const pid of childrenOf(sshd.proc.pid)) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          /* already gone */
        }
      }
    }
    await sshd?.stop();
    await agent?.stop();
    sshd = agent = undefined;
  },
};

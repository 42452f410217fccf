// A real OpenSSH sshd for tests (the setup test/interop/ssh-qemu.test.ts uses, as a helper):
// started on 127.0.0.1 and a random port with its own host key, authorized_keys and config
// (internal-sftp), and a client key (passphrase-protected when asked). stop() ends only the
// processes started here: sshd's per-connection children, then sshd.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './nbd-peers.ts';
import { have, run } from './qemu.ts';

export const SSHD = '/usr/sbin/sshd';
export const SKIP_NO_SSHD = !existsSync(SSHD) || !have('ssh-keygen') ? 'OpenSSH (sshd, ssh-keygen) not installed' : false;

export interface Sshd {
  port: number;
  /** sshd's process id (its per-connection children are a test's to end mid-transfer). */
  pid: number;
  /** The client's private key file (authorized by this sshd). */
  clientKey: string;
  /** The host key's public half (for fingerprints). */
  hostKeyPub: string;
  stop(): Promise<void>;
}

async function waitForPort(port: number, proc: ChildProcess, log: () => string, ms = 10_000): Promise<void> {
  const { createConnection } = await import('node:net');
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ host: '127.0.0.1', port }, () => {
        s.end();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (proc.exitCode !== null || Date.now() > end) throw new Error(`sshd did not start: ${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Start sshd with files in `dir`; the client key has `passphrase` ('' for none). */
export async function startSshd(dir: string, passphrase = ''): Promise<Sshd> {
  const keygen = (file: string, pass: string) => {
    const r = run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', pass, '-C', 'platter-test', '-f', file]);
    if (r.status !== 0) throw new Error(`ssh-keygen: ${r.stderr}`);
  };
  keygen(join(dir, 'hostkey'), '');
  keygen(join(dir, 'clientkey'), passphrase);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'clientkey.pub')));
  const port = await freePort();
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      'ListenAddress 127.0.0.1',
      `Port ${port}`,
      `HostKey ${join(dir, 'hostkey')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'Subsystem sftp internal-sftp',
      `PidFile ${join(dir, 'sshd.pid')}`,
      'StrictModes no',
      'UsePAM no',
      '',
    ].join('\n'),
  );
  // sshd started by root needs its privilege-separation directory (Debian makes it at boot).
  if (process.getuid?.() === 0 && !existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });
  const sshd = spawn(SSHD, ['-f', join(dir, 'sshd_config'), '-D', '-e'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  sshd.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  await waitForPort(port, sshd, () => log);
  return {
    port,
    pid: sshd.pid!,
    clientKey: join(dir, 'clientkey'),
    hostKeyPub: join(dir, 'hostkey.pub'),
    async stop() {
      if (sshd.pid !== undefined) {
        const kids = spawnSync('pgrep', ['-P', String(sshd.pid)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
        for (const pid of kids) {
          try {
            process.kill(pid, 'SIGTERM');
          } catch {
            // gone already
          }
        }
      }
      if (sshd.exitCode !== null || sshd.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        sshd.once('exit', () => resolve());
        sshd.kill('SIGTERM');
      });
    },
  };
}

// Interop: a flush onto an sftp server that does not offer fsync@openssh.com (OpenSSH always
// offers it, so the server here is one made with the ssh2 package's server side, serving a real
// file) prints what qemu-img 7.2 prints (block/ssh.c unsafe_flush_warning: a warn_report line and
// then an error_report line, both with the program's name), and the data still lands.
// "convert -n onto ssh: stderr equals qemu-img's".

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { closeSync, fstatSync, ftruncateSync, openSync, readFileSync, readSync, writeSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';

const exec = promisify(execFile);
const ssh2 = (await import('ssh2')) as typeof import('ssh2') & { default?: typeof import('ssh2') };
const { Server, utils } = ssh2.default ?? ssh2;
const { STATUS_CODE } = utils.sftp;

/** An sftp-only server over real files, without any extension (no fsync@openssh.com). */
function startServer(): Promise<{ port: number; close(): void }> {
  const hostKey = utils.generateKeyPairSync('ed25519').private;
  const server = new Server({ hostKeys: [hostKey] }, (client) => {
    client.on('error', () => {});
    client.on('authentication', (ctx) => ctx.accept());
    client.on('ready', () => {
      client.on('session', (accept) => {
        const session = accept();
        session.on('sftp', (acceptSftp) => {
          const sftp = acceptSftp();
          const fds = new Map<number, number>();
          let next = 1;
          const fdOf = (h: Buffer) => (h.length === 4 ? fds.get(h.readUInt32BE(0)) : undefined);
          const attrsOf = (fd: number) => {
            const st = fstatSync(fd);
            return { mode: st.mode, uid: st.uid, gid: st.gid, size: st.size, atime: Math.floor(st.atimeMs / 1000), mtime: Math.floor(st.mtimeMs / 1000) };
          };
          sftp.on('OPEN', (id, filename, flags) => {
            try {
              const { OPEN_MODE } = utils.sftp;
              const mode = flags & OPEN_MODE.CREAT ? (flags & OPEN_MODE.TRUNC ? 'w+' : 'a+') : flags & OPEN_MODE.WRITE ? 'r+' : 'r';
              const fd = openSync(filename, mode === 'a+' ? 'r+' : mode);
              const h = Buffer.alloc(4);
              h.writeUInt32BE(next);
              fds.set(next++, fd);
              sftp.handle(id, h);
            } catch {
              sftp.status(id, STATUS_CODE.NO_SUCH_FILE);
            }
          });
          sftp.on('FSTAT', (id, h) => {
            const fd = fdOf(h);
            if (fd === undefined) return sftp.status(id, STATUS_CODE.FAILURE);
            sftp.attrs(id, attrsOf(fd));
          });
          sftp.on('FSETSTAT', (id, h, attrs) => {
            const fd = fdOf(h);
            if (fd === undefined) return sftp.status(id, STATUS_CODE.FAILURE);
            if (attrs.size !== undefined) ftruncateSync(fd, attrs.size);
            sftp.status(id, STATUS_CODE.OK);
          });
          sftp.on('READ', (id, h, offset, length) => {
            const fd = fdOf(h);
            if (fd === undefined) return sftp.status(id, STATUS_CODE.FAILURE);
            const buf = Buffer.alloc(length);
            const n = readSync(fd, buf, 0, length, offset);
            if (n === 0) return sftp.status(id, STATUS_CODE.EOF);
            sftp.data(id, buf.subarray(0, n));
          });
          sftp.on('WRITE', (id, h, offset, data) => {
            const fd = fdOf(h);
            if (fd === undefined) return sftp.status(id, STATUS_CODE.FAILURE);
            writeSync(fd, data, 0, data.length, offset);
            sftp.status(id, STATUS_CODE.OK);
          });
          sftp.on('CLOSE', (id, h) => {
            const fd = fdOf(h);
            if (fd !== undefined) closeSync(fd);
            fds.delete(h.readUInt32BE(0));
            sftp.status(id, STATUS_CODE.OK);
          });
          sftp.on('REALPATH', (id, p) => sftp.name(id, [{ filename: p, longname: p, attrs: {} as never }]));
        });
      });
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ port: (server.address() as { port: number }).port, close: () => server.close() }));
  });
}

describe('ssh flush onto a server without fsync@openssh.com', { skip: SKIP_NO_QEMU }, () => {
  const t = tempDir('platter-ssh-nofsync-');
  let srv: { port: number; close(): void };
  before(async () => {
    srv = await startServer();
  });
  after(() => {
    srv?.close();
    t.cleanup();
  });

  test('convert -n onto ssh: the warning lines equal qemu-img\'s, and the bytes land', { timeout: 60_000 }, async () => {
    const src = t.path('src.raw');
    writeFileSync(src, Buffer.alloc(1 << 20, 0x5c));
    const run = async (cmd: string, args: string[], target: string) => {
      writeFileSync(target, Buffer.alloc(1 << 20));
      const uri = `ssh://${process.env.USER ?? 'root'}@127.0.0.1:${srv.port}${target}?host_key_check=no`;
      const r = await exec(cmd, [...args, 'convert', '-n', '-t', 'writeback', '-f', 'raw', '-O', 'raw', src, uri], { env: { ...process.env, SSH_AUTH_SOCK: '' } }).catch((e: { stdout: string; stderr: string; code: number }) => e);
      return { stderr: r.stderr.replace(/^(qemu-img|platter): /gm, 'PROG: ').replaceAll(String(srv.port), 'PORT').replaceAll(target, 'TARGET'), data: readFileSync(target) };
    };
    const q = await run('qemu-img', [], t.path('q.raw'));
    const p = await run(process.execPath, [join(REPO_ROOT, 'bin/platter.mjs')], t.path('p.raw'));
    assert.match(q.stderr, /^PROG: warning: ssh server 127\.0\.0\.1 does not support fsync\nPROG: to support fsync, you need OpenSSH >= 6\.3\n/);
    assert.equal(p.stderr, q.stderr);
    assert.ok(q.data.equals(readFileSync(src)));
    assert.ok(p.data.equals(readFileSync(src)));
  });
});

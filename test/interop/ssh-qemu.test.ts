// The ssh protocol against qemu-img's own ssh driver (QEMU 7.2 block/ssh.c over libssh), both
// talking to a real OpenSSH sshd this file starts on 127.0.0.1 (its own host key, its own
// authorized_keys, internal-sftp) with its own ssh-agent holding a passphrase-protected client key.
// info, map, create, convert and every failure are run through `platter` and `qemu-img` over the
// same ssh:// names and must print the same bytes. known_hosts is read from the home directory of
// the password database (libssh does so, and Platter as libssh), so those cases run both tools in
// a private mount namespace with a temporary directory mounted over that home.
// Only the processes started here (sshd, its session children, the agents) are stopped.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { freePort } from '../helpers/nbd-peers.ts';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { platterInProcess } from './harness.ts';
import { startSshd, type Sshd } from '../helpers/sshd.ts';
import { REPO_ROOT, SKIP_NO_QEMU, have, qemuImg, qemuIo, run, tempDir, type RunResult } from '../helpers/qemu.ts';

const SSHD = '/usr/sbin/sshd';
const SKIP = SKIP_NO_QEMU || (!existsSync(SSHD) || !have('ssh-keygen') || !have('ssh-agent') || !have('ssh-add') ? 'OpenSSH (sshd, ssh-keygen, ssh-agent, ssh-add) not installed' : false);
const MiB = 1 << 20;

/** Output with the program's name taken out of its messages. */
const unnamed = (text: string) => text.replace(/^(platter|qemu-img): /gm, '');


async function waitForFile(path: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!existsSync(path)) {
    if (Date.now() > end) throw new Error(`${path} did not appear`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function stop(child: ChildProcess | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** The pids of the children of `pid` (sshd's per-connection processes). */
function childrenOf(pid: number): number[] {
  const r = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

describe('ssh protocol vs qemu-img (ssh driver, libssh) against a real sshd', { skip: SKIP }, () => {
  const t = tempDir('platter-ssh-');
  const d = t.dir;
  const passphrase = `pp-${randomBytes(12).toString('hex')}`;
  let port = 0;
  let server: Sshd | undefined;
  let agent: ChildProcess | undefined;
  let emptyAgent: ChildProcess | undefined;
  const agentSock = join(d, 'agent.sock');
  const emptyAgentSock = join(d, 'empty-agent.sock');
  /** Every output Platter printed in this file (checked for the passphrase at the end). */
  const platterOutputs: string[] = [];
  /** A home for known_hosts and default keys, mounted over the real one (see the file header). */
  const home = join(d, 'home');
  const realHome = userInfo().homedir;
  let namespaces: string | false = 'not checked';

  const remote = (name: string) => join(d, name);
  /** An ssh:// name of a file in the temporary directory; check null leaves host_key_check out. */
  const uri = (name: string, check: string | null = 'no') => `ssh://127.0.0.1:${port}${remote(name)}${check !== null ? `?host_key_check=${check}` : ''}`;

  /** Run a tool with this file's agent (or env overrides), optionally inside the home namespace. */
  function tool(cmd: 'platter' | 'qemu-img', args: string[], opts: { env?: NodeJS.ProcessEnv; privateHome?: boolean } = {}): RunResult {
    const env: NodeJS.ProcessEnv = { ...process.env, SSH_AUTH_SOCK: agentSock, ...opts.env };
    delete env.NODE_EXTRA_CA_CERTS;
    const argv = cmd === 'platter' ? [process.execPath, join(REPO_ROOT, 'bin/platter.mjs'), ...args] : ['qemu-img', ...args];
    const r = opts.privateHome
      ? run('unshare', ['-m', 'sh', '-c', 'mount --bind "$1" "$2" && shift 2 && exec "$@"', 'sh', home, realHome, ...argv], { env })
      : run(argv[0]!, argv.slice(1), { env });
    if (cmd === 'platter') platterOutputs.push(r.stdout, r.stderr);
    return r;
  }
  /** Platter in this process (a process start per call would dominate this file's time) unless
   *  the private home is needed; the environment is this file's agent plus the overrides. */
  async function platter(args: string[], opts: Parameters<typeof tool>[2] = {}): Promise<RunResult> {
    if (opts.privateHome) return tool('platter', args, opts);
    const saved = process.env.SSH_AUTH_SOCK;
    process.env.SSH_AUTH_SOCK = opts.env?.SSH_AUTH_SOCK ?? agentSock;
    try {
      const r = await platterInProcess(args);
      platterOutputs.push(r.stdout, r.stderr);
      return r;
    } finally {
      if (saved === undefined) delete process.env.SSH_AUTH_SOCK;
      else process.env.SSH_AUTH_SOCK = saved;
    }
  }
  const qemu = (args: string[], opts?: Parameters<typeof tool>[2]) => tool('qemu-img', args, opts);

  /** Both tools give the same output and status. */
  async function same(args: string[], opts?: Parameters<typeof tool>[2]): Promise<RunResult> {
    const p = await platter(args, opts);
    const q = qemu(args, opts);
    assert.equal(unnamed(p.stderr), unnamed(q.stderr), `stderr of ${args.join(' ')}`);
    assert.equal(p.stdout, q.stdout, `stdout of ${args.join(' ')}`);
    assert.equal(p.status, q.status, `status of ${args.join(' ')}`);
    return p;
  }

  /** Both tools fail with the same one-line message. */
  async function sameFailure(args: string[], opts?: Parameters<typeof tool>[2]): Promise<string> {
    const p = await same(args, opts);
    assert.notEqual(p.status, 0, `${args.join(' ')} should fail`);
    assert.equal(p.stderr.trimEnd().split('\n').length, 1, `one line: ${p.stderr}`);
    return unnamed(p.stderr).trimEnd();
  }

  function keyFingerprint(type: 'md5' | 'sha1' | 'sha256'): string {
    const [, b64] = readFileSync(join(d, 'hostkey.pub'), 'utf8').split(' ');
    return createHash(type).update(Buffer.from(b64!, 'base64')).digest('hex');
  }

  before(async () => {
    const keygen = (file: string, pass: string) => run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', pass, '-C', 'platter-test', '-f', file]);
    keygen(join(d, 'otherkey'), '');
    // sshd with its own host key, config and authorized client key (test/helpers/sshd.ts).
    server = await startSshd(d, passphrase);
    port = server.port;
    agent = spawn('ssh-agent', ['-D', '-a', agentSock], { stdio: 'ignore' });
    emptyAgent = spawn('ssh-agent', ['-D', '-a', emptyAgentSock], { stdio: 'ignore' });
    await waitForFile(agentSock);
    await waitForFile(emptyAgentSock);
    // ssh-add reads the passphrase from an askpass program (never from this process's output).
    const askpass = join(d, 'askpass.sh');
    writeFileSync(askpass, `#!/bin/sh\necho '${passphrase}'\n`);
    chmodSync(askpass, 0o700);
    const add = run('ssh-add', [join(d, 'clientkey')], { env: { ...process.env, SSH_AUTH_SOCK: agentSock, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' } });
    assert.equal(add.status, 0, add.stderr);
    mkdirSync(join(home, '.ssh'), { recursive: true });
    const probe = run('unshare', ['-m', 'sh', '-c', 'mount --bind "$1" "$2" && ls "$2/.ssh" >/dev/null', 'sh', home, realHome]);
    namespaces = probe.status === 0 ? false : `cannot mount a private home in a mount namespace (unshare -m): ${probe.stderr.trim()}`;

    qemuImg('create', '-q', '-f', 'qcow2', remote('img.qcow2'), '64M');
    qemuIo('-c', 'write -P 0x5a 0 3M', '-c', 'write -P 0x33 30M 1M', '-c', 'write -z 40M 1M', remote('img.qcow2'));
    mkdirSync(remote('dir'));
  });

  after(async () => {
    await server?.stop();
    await stop(agent);
    await stop(emptyAgent);
    t.cleanup();
  });

  test('info (human and --output=json) equals qemu-img info over the same ssh:// URI, in every option form', async () => {
    const p = await same(['info', uri('img.qcow2')]);
    assert.match(p.stdout, new RegExp(`^image: ssh://${userInfo().username}@127\\.0\\.0\\.1:${port}${remote('img.qcow2')}\\?host_key_check=no\n`));
    await same(['info', '--output=json', uri('img.qcow2')]);
    await same(['info', '-f', 'raw', uri('img.qcow2')]);
    // The property form and QEMU 7.2's QAPI form (json: and --image-opts).
    await same(['info', '--image-opts', `driver=qcow2,file.driver=ssh,file.host=127.0.0.1,file.port=${port},file.path=${remote('img.qcow2')},file.host_key_check=no,file.user=${userInfo().username}`]);
    const qapi = { driver: 'ssh', server: { host: '127.0.0.1', port: String(port) }, path: remote('img.qcow2'), 'host-key-check': { mode: 'none' } };
    await same(['info', '--output=json', `json:${JSON.stringify({ file: qapi })}`]);
    await same(['info', '--image-opts', `driver=qcow2,file.driver=ssh,file.server.host=127.0.0.1,file.server.port=${port},file.path=${remote('img.qcow2')},file.host-key-check.mode=hash,file.host-key-check.type=sha256,file.host-key-check.hash=${keyFingerprint('sha256')}`]);
  });

  test('map (human and json, qcow2 and raw) equals qemu-img map over ssh', async () => {
    await same(['map', uri('img.qcow2')]);
    await same(['map', '--output=json', uri('img.qcow2')]);
    await same(['map', '-f', 'raw', uri('img.qcow2')]);
    await same(['map', '-f', 'raw', '--output=json', uri('img.qcow2')]);
  });

  test('create onto ssh: the same bytes as qemu-img create onto ssh, and qemu-img reads it back over ssh', async () => {
    for (const fmt of ['qcow2', 'raw', 'vmdk', 'vdi', 'vpc', 'qed']) {
      const p = await platter(['create', '-f', fmt, uri(`p.${fmt}`), '5M']);
      const q = qemu(['create', '-f', fmt, uri(`q.${fmt}`), '5M']);
      assert.equal(p.status, 0, p.stderr);
      // (vmdk's, vdi's and qed's Formatting lines lack QEMU's defaults for local files too: not ssh's.)
      if (['qcow2', 'raw', 'vpc'].includes(fmt)) assert.equal(p.stdout.replace(`p.${fmt}`, `q.${fmt}`), q.stdout, `${fmt}: Formatting line`);
      assert.equal(statSync(remote(`p.${fmt}`)).mode & 0o777, 0o644, `${fmt}: mode 0644 as QEMU's ssh create`);
      // (vmdk, vdi and vpc carry random ids and times: those are compared through qemu-img.)
      if (!['vmdk', 'vdi', 'vpc'].includes(fmt)) assert.ok(readFileSync(remote(`p.${fmt}`)).equals(readFileSync(remote(`q.${fmt}`))), `${fmt}: same bytes as qemu-img's`);
      assert.equal(statSync(remote(`p.${fmt}`)).size, statSync(remote(`q.${fmt}`)).size, `${fmt}: same file size`);
      const size = (name: string) => (JSON.parse(qemu(['info', '--output=json', '-f', fmt, uri(name)]).stdout) as { 'virtual-size': number })['virtual-size'];
      assert.equal(size(`p.${fmt}`), size(`q.${fmt}`), `${fmt}: qemu-img's ssh driver reads the same size`);
    }
    const check = qemu(['check', uri('p.qcow2')]);
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stdout, /No errors were found on the image/);
  });

  test('convert onto and from remote images: qemu-img compare says identical, qcow2 byte-equal to qemu-img convert onto ssh', async () => {
    const src = remote('img.qcow2');
    let r = await platter(['convert', '-O', 'qcow2', src, uri('conv.qcow2')]);
    assert.equal(r.status, 0, r.stderr);
    r = qemu(['convert', '-O', 'qcow2', src, uri('conv-q.qcow2')]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(readFileSync(remote('conv.qcow2')).equals(readFileSync(remote('conv-q.qcow2'))), 'same qcow2 as qemu-img convert onto ssh');
    assert.match(qemu(['compare', src, uri('conv.qcow2')]).stdout, /Images are identical/);
    assert.equal(qemu(['check', remote('conv.qcow2')]).status, 0);
    // From a remote image to a local one, and remote raw to remote raw.
    r = await platter(['convert', '-O', 'raw', uri('conv.qcow2'), join(d, 'back.raw')]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(qemuImg('compare', src, join(d, 'back.raw')), /Images are identical/);
    r = await platter(['convert', '-f', 'raw', '-O', 'raw', uri('back.raw'), uri('copy.raw')]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(qemu(['compare', '-f', 'raw', '-F', 'raw', join(d, 'back.raw'), uri('copy.raw')]).stdout, /Images are identical/);
    // And Platter's compare over ssh agrees with qemu-img's.
    await same(['compare', src, uri('conv.qcow2')]);
  });

  test('host_key_check=md5:/sha1:/sha256: the right fingerprint (with or without colons) opens; a wrong one is refused naming the fingerprint seen', async () => {
    const colons = (hex: string) => hex.match(/../g)!.join(':');
    for (const type of ['md5', 'sha1', 'sha256'] as const) {
      const fp = keyFingerprint(type);
      await same(['info', uri('img.qcow2', `${type}:${colons(fp)}`)]);
      await same(['info', uri('img.qcow2', `${type}:${fp.toUpperCase()}`)]);
      const wrong = `${type}:${colons(fp.replace(/^./, fp[0] === '0' ? '1' : '0'))}`;
      const msg = await sameFailure(['info', uri('img.qcow2', wrong)]);
      assert.ok(msg.includes(`key fingerprint '${type}:${fp}' does not match host_key_check '${wrong}'`), msg);
      // Too short and too long are mismatches too.
      await sameFailure(['info', uri('img.qcow2', `${type}:${fp.slice(0, -2)}`)]);
      await sameFailure(['info', uri('img.qcow2', `${type}:${fp}00`)]);
    }
    await sameFailure(['info', uri('img.qcow2', 'bogus')]);
    await same(['info', uri('img.qcow2', 'no')]);
  });

  test('host_key_check=yes (the default): ~/.ssh/known_hosts with [127.0.0.1]:PORT and hashed entries; unknown and changed keys refused as qemu-img refuses them', async (ctx) => {
    if (namespaces) return ctx.skip(namespaces);
    const kh = join(home, '.ssh', 'known_hosts');
    const hostLine = (keyFile: string, name = `[127.0.0.1]:${port}`) => `${name} ${readFileSync(keyFile, 'utf8').split(' ').slice(0, 2).join(' ')}\n`;
    const ns = { privateHome: true };
    rmSync(kh, { force: true });
    assert.equal(await sameFailure(['info', uri('img.qcow2', null)], ns), `Could not open '${uri('img.qcow2', null)}': no host key was found in known_hosts`);
    writeFileSync(kh, `# a comment\nexample.org ${readFileSync(join(d, 'otherkey.pub'), 'utf8').split(' ').slice(0, 2).join(' ')}\n` + hostLine(join(d, 'hostkey.pub')));
    await same(['info', uri('img.qcow2', null)], ns);
    await same(['info', uri('img.qcow2', 'yes')], ns);
    // The same entry hashed by ssh-keygen -H.
    writeFileSync(kh, hostLine(join(d, 'hostkey.pub')));
    assert.equal(run('ssh-keygen', ['-q', '-H', '-f', kh]).status, 0);
    assert.match(readFileSync(kh, 'utf8'), /^\|1\|/);
    await same(['info', '--output=json', uri('img.qcow2', null)], ns);
    // A plain "127.0.0.1" entry does not name port PORT.
    writeFileSync(kh, hostLine(join(d, 'hostkey.pub'), '127.0.0.1'));
    await sameFailure(['info', uri('img.qcow2', null)], ns);
    // Another key of the same type: refused, naming the key seen.
    writeFileSync(kh, hostLine(join(d, 'otherkey.pub')));
    const seen = run('ssh-keygen', ['-l', '-f', join(d, 'hostkey.pub')]).stdout.split(' ')[1]!;
    const msg = await sameFailure(['info', uri('img.qcow2', null)], ns);
    assert.ok(msg.includes(`host key (ssh-ed25519 key with fingerprint ${seen}) does not match the one in known_hosts; this may be a possible attack`), msg);
    rmSync(kh, { force: true });
  });

  test('backing files of remote images: on the same server (info --backing-chain, convert equal qemu-img\'s); refused with host_key_check set; loops caught as qemu-img catches them', async (ctx) => {
    qemuImg('create', '-q', '-f', 'qcow2', remote('base.qcow2'), '8M');
    qemuIo('-c', 'write -P 0x77 1M 1M', remote('base.qcow2'));
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', remote('top.qcow2'));
    qemuIo('-c', 'write -P 0x11 0 64k', remote('top.qcow2'));
    // With host_key_check in the name there is no base directory (ssh_bdrv_dirname).
    await same(['info', uri('top.qcow2')]);
    await same(['info', '--output=json', uri('top.qcow2')]);
    assert.match(await sameFailure(['convert', '-O', 'raw', uri('top.qcow2'), join(d, 'never.raw')]), /Cannot generate a base directory with host_key_check set$/);
    assert.ok(!existsSync(join(d, 'never.raw')));
    if (namespaces) return ctx.skip(namespaces);
    const ns = { privateHome: true };
    writeFileSync(join(home, '.ssh', 'known_hosts'), `[127.0.0.1]:${port} ${readFileSync(join(d, 'hostkey.pub'), 'utf8').split(' ').slice(0, 2).join(' ')}\n`);
    await same(['info', '--backing-chain', uri('top.qcow2', null)], ns);
    await same(['info', '--backing-chain', '--output=json', uri('top.qcow2', null)], ns);
    const r = await platter(['convert', '-O', 'raw', uri('top.qcow2', null), join(d, 'flat.raw')], ns);
    assert.equal(r.status, 0, r.stderr);
    assert.match(qemuImg('compare', '-F', 'raw', remote('top.qcow2'), join(d, 'flat.raw')), /Images are identical/);
    qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'lb.qcow2', '-F', 'qcow2', remote('la.qcow2'), '1M');
    qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'la.qcow2', '-F', 'qcow2', remote('lb.qcow2'), '1M');
    assert.match(await sameFailure(['info', '--backing-chain', uri('la.qcow2', null)], ns), /lb\.qcow2' creates an infinite loop\.$/);
    rmSync(join(home, '.ssh', 'known_hosts'));
  });

  test('authentication: no usable identity fails as qemu-img; the default key ~/.ssh/id_ed25519 works without an agent', async (ctx) => {
    const msg = await sameFailure(['info', uri('img.qcow2')], { env: { SSH_AUTH_SOCK: emptyAgentSock } });
    assert.match(msg, /failed to authenticate using publickey authentication and the identities held by your ssh-agent$/);
    if (namespaces) return ctx.skip(namespaces);
    const idFile = join(home, '.ssh', 'id_ed25519');
    // Unencrypted copy of the client key as the default identity, no agent.
    writeFileSync(idFile, readFileSync(join(d, 'clientkey')), { mode: 0o600 });
    assert.equal(run('ssh-keygen', ['-q', '-p', '-P', passphrase, '-N', '', '-f', idFile]).status, 0);
    await same(['info', uri('img.qcow2')], { env: { SSH_AUTH_SOCK: '' }, privateHome: true });
    // Encrypted and no way to ask for the passphrase: skipped, as libssh skips it.
    writeFileSync(idFile, readFileSync(join(d, 'clientkey')), { mode: 0o600 });
    await sameFailure(['info', uri('img.qcow2')], { env: { SSH_AUTH_SOCK: '' }, privateHome: true });
    // With a passphrase source (the desktop app asks the user): the key is used, and the
    // passphrase shows in no output, error or not.
    const script = join(d, 'passphrase-open.mts');
    writeFileSync(
      script,
      `import { sshDriver } from ${JSON.stringify(join(REPO_ROOT, 'core/protocols/ssh/index.ts'))};\n` +
        `import { sshPassphrases } from ${JSON.stringify(join(REPO_ROOT, 'core/protocols/ssh/session.ts'))};\n` +
        `sshPassphrases.forKey = async (path) => (path.endsWith('/id_ed25519') ? process.env.TEST_PASSPHRASE : undefined);\n` +
        `const open = (path: string) => sshDriver.open({ filename: 'x', options: { server: { host: '127.0.0.1', port: '${port}' }, path, 'host-key-check': { mode: 'none' } }, readOnly: true, perm: 1, sharedPerm: 15, warn: console.error });\n` +
        `const node = await open(${JSON.stringify(remote('img.qcow2'))});\n` +
        `console.log('size', node.size);\n` +
        `await node.close();\n` +
        `await open(${JSON.stringify(remote('missing'))}).catch((e) => console.log(String(e), JSON.stringify(e)));\n`,
    );
    const r = run('unshare', ['-m', 'sh', '-c', 'mount --bind "$1" "$2" && shift 2 && exec "$@"', 'sh', home, realHome, process.execPath, '--import', 'tsx', script], {
      cwd: REPO_ROOT,
      env: { ...process.env, SSH_AUTH_SOCK: '', TEST_PASSPHRASE: passphrase },
    });
    platterOutputs.push(r.stdout, r.stderr);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^size ${statSync(remote('img.qcow2')).size}\n.*No such file`));
    rmSync(idFile);
  });

  test('missing remote file, a directory, connection refused, bad URIs: the same one-line errors as qemu-img', async () => {
    assert.match(await sameFailure(['info', uri('missing.qcow2')]), /failed to open remote file '.*missing\.qcow2': SFTP server: No such file \(libssh error code: 1, sftp error code: 2\)$/);
    assert.match(await sameFailure(['info', uri('dir')]), /Could not read image for determining its format: Input\/output error$/);
    await sameFailure(['create', '-f', 'qcow2', `ssh://127.0.0.1:${port}${remote('nodir/x.qcow2')}?host_key_check=no`, '1M']);
    await sameFailure(['create', '-f', 'raw', uri('dir'), '1M']);
    // The file protocol's create options are not ssh's (it takes only the size): refused before anything is written.
    for (const [fmt, opt] of [['raw', 'preallocation=off'], ['qcow2', 'nocow=on'], ['raw', 'extent_size_hint=1M']] as const) {
      assert.match(await sameFailure(['create', '-f', fmt, '-o', opt, uri(`opt.${fmt}`), '1M']), new RegExp(`Invalid parameter '${opt.split('=')[0]}'$`));
      assert.ok(!existsSync(remote(`opt.${fmt}`)));
    }
    const closed = await freePort();
    assert.match(await sameFailure(['info', `ssh://127.0.0.1:${closed}/x?host_key_check=no`]), /Failed to connect to '127\.0\.0\.1:\d+': Connection refused$/);
    await sameFailure(['info', `ssh://127.0.0.1:${port}`]);
    await sameFailure(['info', 'ssh:///x']);
    await sameFailure(['info', `json:${JSON.stringify({ file: { driver: 'ssh', server: { host: '127.0.0.1', port: String(port) }, path: remote('img.qcow2'), 'host-key-check': { mode: 'hash' } } })}`]);
    await sameFailure(['info', `json:${JSON.stringify({ file: { driver: 'ssh', server: { host: '127.0.0.1' }, path: remote('img.qcow2') } })}`]);
    await sameFailure(['info', `json:${JSON.stringify({ file: { driver: 'ssh', port: String(port), path: remote('img.qcow2') } })}`]);
  });

  test('the server going away mid-copy: one line naming the lost connection and the half-written remote file, no hang', async () => {
    const big = join(d, 'big.raw');
    writeFileSync(big, randomBytes(128 * MiB));
    const target = remote('gone.qcow2');
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/platter.mjs'), 'convert', '-f', 'raw', '-O', 'qcow2', big, uri('gone.qcow2')], { env: { ...process.env, SSH_AUTH_SOCK: agentSock }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const end = Date.now() + 60_000;
    while (!(existsSync(target) && statSync(target).size > 4 * MiB) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    for (const pid of childrenOf(server!.pid)) process.kill(pid, 'SIGTERM');
    const code = await exited;
    platterOutputs.push(stdout, stderr);
    assert.equal(code, 1, stderr);
    const lines = stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, stderr);
    assert.match(lines[0]!, new RegExp(`^platter: .*Input/output error \\(the ssh connection to 127\\.0\\.0\\.1:${port} was lost; the remote file '${target}' may be left half-written\\)$`));
  });

  test('works without ssh2\'s native crypto binding (as in Electron\'s main process): a bundle without .node files reads the image', async () => {
    const out = join(d, 'bundle');
    mkdirSync(out, { recursive: true });
    const entry = join(out, 'entry.ts');
    writeFileSync(
      entry,
      `import { sshDriver } from ${JSON.stringify(join(REPO_ROOT, 'core/protocols/ssh/index.ts'))};\n` +
        `import { createHash } from 'node:crypto';\n` +
        `void (async () => {\n` +
        `const node = await sshDriver.open({ filename: 'x', options: { server: { host: '127.0.0.1', port: '${port}' }, path: ${JSON.stringify(remote('img.qcow2'))}, 'host-key-check': { mode: 'none' } }, readOnly: true, perm: 1, sharedPerm: 15, warn: () => {} });\n` +
        `const crypto = require(${JSON.stringify(join(REPO_ROOT, 'node_modules/ssh2/lib/protocol/crypto.js'))});\n` +
        `const data = await node.read(0, node.size);\n` +
        `await node.close();\n` +
        `console.log(JSON.stringify({ native: crypto.bindingAvailable, md5: createHash('md5').update(data).digest('hex') }));\n` +
        `})();\n`,
    );
    // The build scripts' externals: native modules stay out of the bundle, so they cannot load.
    const b = run(join(REPO_ROOT, 'node_modules/.bin/esbuild'), [entry, '--bundle', '--platform=node', '--target=node20', '--format=cjs', `--outfile=${join(out, 'entry.cjs')}`, '--external:cpu-features', '--external:*.node', '--log-level=error']);
    assert.equal(b.status, 0, b.stderr);
    const r = run(process.execPath, [join(out, 'entry.cjs')], { cwd: out, env: { ...process.env, SSH_AUTH_SOCK: agentSock } });
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { native: boolean; md5: string };
    assert.equal(res.native, false, 'the native binding must not be in play');
    assert.equal(res.md5, createHash('md5').update(readFileSync(remote('img.qcow2'))).digest('hex'));
  });

  test('the key passphrase appears in no output', async () => {
    assert.ok(platterOutputs.length > 20);
    for (const o of platterOutputs) assert.ok(!o.includes(passphrase), 'passphrase printed');
  });
});

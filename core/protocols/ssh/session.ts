// One ssh connection with its sftp channel and one open remote file (QEMU block/ssh.c
// connect_to_ssh), over the pure-JS `ssh2` package: TCP connect, host key check (hostkey.ts),
// authentication as libssh's publickey_auto does for QEMU (the "none" method, then the keys held
// by ssh-agent at SSH_AUTH_SOCK, then the user's default keys ~/.ssh/id_ed25519, id_ecdsa,
// id_rsa), sftp, then the file opened and its attributes read. ssh2's optional native crypto
// binding is used when it loads and its pure-JS ciphers otherwise (Electron's main process).
// Errors are QEMU's words; key passphrases never appear in one.

import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import type { Client as SshClient, ConnectConfig, SFTPWrapper, AuthenticationType, Stats } from 'ssh2';
import { BlockError, invalidArgument } from '../../errors.ts';
import { checkHostKey, defaultKnownHostsFiles, knownHostEntries, knownHostsName, preferredHostKeyTypes } from './hostkey.ts';
import type { SshLocation } from './options.ts';

/** Where a passphrase for one of the user's default keys may come from (the desktop app asks the
 *  user). Without one, keys that need a passphrase are skipped, as QEMU skips them. */
export const sshPassphrases: { forKey?: (path: string) => Promise<string | undefined> } = {};

/** Identities the desktop app unlocked for one server (a key file the user chose; its passphrase
 *  was used once to parse it and is not kept): tried after the agent, before the default keys. */
export const sshIdentities: { forServer?: (host: string, port: number, user: string) => unknown } = {};

/** How long connecting and authenticating may take before the attempt is given up. */
const READY_TIMEOUT_MS = 30_000;

/** glibc's strerror texts for the socket errors a connect meets. */
const SOCKET_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'Connection refused',
  ETIMEDOUT: 'Connection timed out',
  EHOSTUNREACH: 'No route to host',
  ENETUNREACH: 'Network is unreachable',
  ECONNRESET: 'Connection reset by peer',
  EADDRNOTAVAIL: 'Cannot assign requested address',
};

/** An sftp status error as libssh words it after QEMU's text. */
export function sftpError(what: string, err: unknown): BlockError {
  const e = err as { code?: unknown; message?: string };
  const code = typeof e?.code === 'number' ? e.code : undefined;
  const msg = e?.message ?? String(err);
  const text = code !== undefined ? `${what}: SFTP server: ${msg} (libssh error code: 1, sftp error code: ${code})` : `${what}: ${msg}`;
  const kind = code === 2 ? 'NotFound' : code === 3 ? 'Permission' : 'Io';
  return new BlockError(kind, text, { op: 'sftp' }, { cause: err });
}

type Ssh2 = typeof import('ssh2');

/** The ssh2 module, loaded on first use (ESM sees a CommonJS module's exports as its default). */
async function loadSsh2(): Promise<Ssh2> {
  const mod = (await import('ssh2')) as Ssh2 & { default?: Ssh2 };
  return mod.default ?? mod;
}

/** The user's default identity files, in libssh's order. */
function defaultKeyFiles(): string[] {
  let home: string;
  try {
    home = userInfo().homedir;
  } catch {
    home = process.env.HOME ?? '';
  }
  return ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((n) => join(home, '.ssh', n));
}

/** A default key ssh2 can use: parsed, with its passphrase where one is needed and given. */
async function loadDefaultKey(path: string, ssh2: Ssh2): Promise<{ key: Buffer; passphrase?: string } | undefined> {
  let key: Buffer;
  try {
    key = readFileSync(path);
  } catch {
    return undefined;
  }
  const plain = ssh2.utils.parseKey(key);
  if (!(plain instanceof Error)) return { key };
  if (!/passphrase|encrypted/i.test(plain.message)) return undefined;
  const passphrase = await sshPassphrases.forKey?.(path).catch(() => undefined);
  if (passphrase === undefined) return undefined;
  const parsed = ssh2.utils.parseKey(key, passphrase);
  return parsed instanceof Error ? undefined : { key, passphrase };
}

export interface OpenRemote {
  /** The sftp open mode ('r', 'r+', or 'w+' to create or truncate). */
  flags: 'r' | 'r+' | 'w+';
  /** Unix mode of a new file (create: 0644). */
  mode?: number;
}

export interface SshSession {
  client: SshClient;
  sftp: SFTPWrapper;
  handle: Buffer;
  attrs: Stats;
  user: string;
  /** The server offers fsync@openssh.com, version 1. */
  fsync: boolean;
  /** Set when the connection has ended (the server went away). */
  closed(): boolean;
  /**
   * Run one sftp request: `start` gets the callback to hand ssh2. Settles with an error at once
   * when the connection is gone, and when it goes while the request is pending (ssh2 does not
   * always answer requests a dead channel dropped).
   */
  request<T>(start: (done: (err: unknown, value?: T) => void) => void): Promise<T>;
}

function portNumber(port: string): number {
  const n = /^\d+$/.test(port.trim()) ? Number(port.trim()) : NaN;
  if (!Number.isInteger(n) || n > 0xffffffff) throw invalidArgument('Use only numeric port value');
  return n;
}

/** Connect, check the host key, authenticate, start sftp and open the remote file. */
export async function connectSsh(loc: SshLocation, open: OpenRemote): Promise<SshSession> {
  const c = await connectSftp(loc);
  const { client, sftp, request } = c;
  try {
    const handle = await request<Buffer>((done) => sftp.open(loc.path, open.flags, open.mode !== undefined ? { mode: open.mode } : {}, done)).catch((err) => {
      throw sftpError(`failed to open remote file '${loc.path}'`, err);
    });
    const attrs = await request<Stats>((done) => sftp.fstat(handle, done)).catch((err) => {
      throw sftpError('failed to read file attributes', err);
    });
    const ext = (sftp as unknown as { _extensions?: Record<string, string> })._extensions ?? {};
    return { ...c, handle, attrs, fsync: ext['fsync@openssh.com'] === '1' };
  } catch (e) {
    client.end();
    throw e;
  }
}

/** An sftp session with no file open yet (connectSsh; the GUI's remote folder listing). */
export type SftpSession = Omit<SshSession, 'handle' | 'attrs' | 'fsync'>;

/** Connect, check the host key, authenticate and start sftp. */
export async function connectSftp(loc: SshLocation): Promise<SftpSession> {
  const user = loc.user ?? userInfo().username;
  const port = portNumber(loc.port);
  const ssh2 = await loadSsh2();
  const client = new ssh2.Client();
  let refusal: BlockError | undefined;
  const knownEntries = loc.hostKeyCheck.mode === 'known_hosts' ? knownHostEntries(defaultKnownHostsFiles(), knownHostsName(loc.host, port)) : [];
  const preferred = preferredHostKeyTypes(knownEntries);
  const defaultHostKeys = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];
  const serverHostKey = [...preferred.filter((t) => defaultHostKeys.includes(t)), ...defaultHostKeys.filter((t) => !preferred.includes(t))];

  // Authentication in libssh's publickey_auto order: none, the agent, the default keys.
  const agent = process.env.SSH_AUTH_SOCK;
  const keyFiles = defaultKeyFiles();
  const extra = sshIdentities.forServer?.(loc.host, port, user);
  let stage = extra !== undefined ? -1 : 0;
  const authHandler = (_methodsLeft: AuthenticationType[] | null, _partial: boolean | null, next: (a: unknown) => void): void => {
    void (async () => {
      for (;;) {
        if (stage > keyFiles.length + 1) return next(false);
        const s = stage++;
        if (s === -1) return next({ type: 'publickey', username: user, key: extra });
        if (s === 0) return next({ type: 'none', username: user });
        if (s === 1) {
          if (agent) return next({ type: 'agent', username: user, agent });
          continue;
        }
        const file = keyFiles[s - 2];
        if (file === undefined) return next(false);
        // Without an agent, as libssh: the default identities.
        if (agent) continue;
        const k = await loadDefaultKey(file, ssh2);
        if (k) return next({ type: 'publickey', username: user, key: k.key, ...(k.passphrase !== undefined ? { passphrase: k.passphrase } : {}) });
      }
    })().catch(() => next(false));
  };

  const config: ConnectConfig = {
    host: loc.host,
    port,
    username: user,
    readyTimeout: READY_TIMEOUT_MS,
    // A server that vanishes without closing the connection is noticed (and requests fail).
    keepaliveInterval: 15_000,
    keepaliveCountMax: 3,
    algorithms: { serverHostKey: serverHostKey as never, compress: ['none'] },
    hostVerifier: (key: Buffer) => {
      try {
        checkHostKey(key, loc.hostKeyCheck, { host: loc.host, port }, defaultKnownHostsFiles());
        return true;
      } catch (e) {
        refusal = e as BlockError;
        return false;
      }
    },
    authHandler: authHandler as never,
  };

  let ended = false;
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve());
      client.once('error', (err: Error & { code?: string; level?: string }) => {
        if (refusal) return reject(refusal);
        if (err.level === 'client-socket' || err.code !== undefined) {
          if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') return reject(new BlockError('Io', `address resolution failed for ${loc.host}:${loc.port}: Name or service not known`, { op: 'connect' }));
          const text = (err.code && SOCKET_ERRORS[err.code]) ?? err.message;
          return reject(new BlockError('Io', `Failed to connect to '${loc.host}:${loc.port}': ${text}`, { op: 'connect' }));
        }
        if (err.level === 'client-authentication') return reject(new BlockError('Permission', 'failed to authenticate using publickey authentication and the identities held by your ssh-agent', { op: 'authenticate' }));
        if (err.level === 'client-timeout') return reject(new BlockError('Io', `failed to establish SSH session: Timeout connecting to ${loc.host}`, { op: 'connect' }));
        reject(new BlockError('Io', `failed to establish SSH session: ${err.message}`, { op: 'connect' }));
      });
      client.once('close', () => {
        ended = true;
        reject(refusal ?? new BlockError('Io', `failed to establish SSH session: Connection closed by ${loc.host}`, { op: 'connect' }));
      });
      client.connect(config);
    });
  } catch (e) {
    client.end();
    throw e;
  }
  client.on('error', () => {}); // later errors surface through the requests that fail
  const pending = new Set<(err: unknown) => void>();
  const lost = () => {
    ended = true;
    const gone = new Error(`the ssh connection to ${loc.host}:${loc.port} was lost`);
    for (const fail of [...pending]) fail(gone);
  };
  client.on('close', lost);
  client.on('end', lost);
  const request = <T>(start: (done: (err: unknown, value?: T) => void) => void): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (ended) return reject(new Error(`the ssh connection to ${loc.host}:${loc.port} was lost`));
      let settled = false;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        pending.delete(fail);
        reject(err);
      };
      pending.add(fail);
      try {
        start((err, value) => {
          if (settled) return;
          settled = true;
          pending.delete(fail);
          if (err) reject(err);
          else resolve(value as T);
        });
      } catch (e) {
        fail(e);
      }
    });

  try {
    const sftp = await request<SFTPWrapper>((done) => client.sftp(done)).catch((err: Error) => {
      throw new BlockError('Io', `failed to initialize sftp handle: ${err.message}`, { op: 'sftp' });
    });
    return { client, sftp, user, closed: () => ended, request };
  } catch (e) {
    client.end();
    throw e;
  }
}

/** One entry of a remote folder (sftp READDIR). */
export interface RemoteDirEntry {
  name: string;
  size: number;
  isDirectory: boolean;
  isFile: boolean;
  /** Modification time, ms since the epoch. */
  modified: number;
}

/** The entries of the remote folder `loc.path` (sorted by name; dot files left out). */
export async function listSshDirectory(loc: SshLocation, max = 10_000): Promise<RemoteDirEntry[]> {
  const s = await connectSftp(loc);
  try {
    const list = await s.request<{ filename: string; attrs: Stats }[]>((done) => s.sftp.readdir(loc.path, done as never)).catch((err) => {
      throw sftpError(`failed to read remote folder '${loc.path}'`, err);
    });
    return list
      .filter((e) => !e.filename.startsWith('.'))
      .slice(0, max)
      .map((e) => ({ name: e.filename, size: e.attrs.size, isDirectory: e.attrs.isDirectory(), isFile: e.attrs.isFile(), modified: e.attrs.mtime * 1000 }))
      .sort((a, b) => a.name.localeCompare(b.name));
  } finally {
    s.client.end();
  }
}

/** Close the remote file and the connection (errors at close are of no use to anyone). */
export async function closeSsh(s: SshSession): Promise<void> {
  if (!s.closed()) await s.request((done) => s.sftp.close(s.handle, done)).catch(() => {});
  s.client.end();
}

// Checking an ssh server's host key as QEMU 7.2 does (block/ssh.c check_host_key, with libssh
// 0.10's known_hosts rules): host_key_check=no accepts any key; md5:/sha1:/sha256: compare the
// hash of the key blob (RFC 4253 section 6.6) with hex digits the user gives (colons anywhere
// between bytes); yes (the default) looks the server up in ~/.ssh/known_hosts (home from the
// password database, as libssh finds it) and /etc/ssh/ssh_known_hosts, with hashed names
// (|1|salt|hmac, sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT") and [host]:port names for other ports.

import { nodeCrypto } from '../../host/lazy-node-modules.ts';
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { BlockError } from '../../errors.ts';
import type { HashType, HostKeyCheck } from './options.ts';

/** The key type named at the start of a public key blob ("ssh-ed25519", "ssh-rsa", ...). */
export function keyType(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const n = blob.readUInt32BE(0);
  if (n > blob.length - 4 || n > 64) return 'unknown';
  return blob.subarray(4, 4 + n).toString('latin1');
}

export function keyHash(blob: Buffer, type: HashType): Buffer {
  return nodeCrypto().createHash(type).update(blob).digest();
}

/** OpenSSH's SHA256 fingerprint text ("SHA256:" and unpadded base64), as libssh prints it. */
export function sha256Fingerprint(blob: Buffer): string {
  return `SHA256:${keyHash(blob, 'sha256').toString('base64').replace(/=+$/, '')}`;
}

function hexDigit(c: string | undefined): number {
  if (c === undefined) return -1;
  const v = parseInt(c, 16);
  return /^[0-9a-fA-F]$/.test(c) ? v : -1;
}

/** Whether the user's hex text names exactly these bytes: each byte two hex digits, any number
 *  of ':' before each byte, nothing after the last (QEMU's compare_fingerprint). */
export function fingerprintMatches(hash: Buffer, text: string): boolean {
  let i = 0;
  for (const byte of hash) {
    while (text[i] === ':') i++;
    const hi = hexDigit(text[i]);
    const lo = hexDigit(text[i + 1]);
    if (hi < 0 || lo < 0 || hi * 16 + lo !== byte) return false;
    i += 2;
  }
  return i === text.length;
}

/** The names libssh looks a server up by: "host" on port 22, "[host]:port" elsewhere. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** A glob of known_hosts (sshd(8) PATTERNS: '*' and '?'), case-insensitive. */
function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return re.test(name);
}

/** Does a known_hosts host field (comma-separated patterns or one hashed name) name `name`? */
export function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, mac] = field.split('|');
    if (salt === undefined || mac === undefined) return false;
    const want = nodeCrypto().createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return want === mac;
  }
  let matched = false;
  for (const p of field.split(',')) {
    if (p.startsWith('!')) {
      if (globMatch(p.slice(1), name)) return false;
    } else if (globMatch(p, name)) matched = true;
  }
  return matched;
}

export interface KnownHostEntry {
  type: string;
  blob: Buffer;
}

/** The keys known_hosts files list for `name` (marker lines, @cert-authority and @revoked, are
 *  left out, as libssh 0.10 leaves them out). */
export function knownHostEntries(files: readonly string[], name: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue; // a missing file lists nothing
    }
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#') || line.startsWith('@')) continue;
      const [field, type, key] = line.split(/\s+/);
      if (field === undefined || type === undefined || key === undefined) continue;
      if (!hostFieldMatches(field, name)) continue;
      const blob = Buffer.from(key, 'base64');
      if (keyType(blob) !== type) continue;
      out.push({ type, blob });
    }
  }
  return out;
}

/** The files libssh reads: the user's known_hosts (home from the password database, as libssh's
 *  ssh_get_user_home_dir) and the system-wide one. */
export function defaultKnownHostsFiles(): string[] {
  let home: string;
  try {
    home = userInfo().homedir;
  } catch {
    home = process.env.HOME ?? '';
  }
  return [join(home, '.ssh', 'known_hosts'), '/etc/ssh/ssh_known_hosts'];
}

/** Host key types to offer first: those known_hosts lists for the server (libssh prefers them,
 *  so a server with several keys answers with one the user has). */
export function preferredHostKeyTypes(entries: readonly KnownHostEntry[]): string[] {
  const out: string[] = [];
  for (const e of entries) {
    const algs = e.type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [e.type];
    for (const a of algs) if (!out.includes(a)) out.push(a);
  }
  return out;
}

const refused = (message: string) => new BlockError('Permission', message, { op: 'host-key-check' });

/** Check the server's key blob; throws QEMU's words when it is refused. */
export function checkHostKey(blob: Buffer, check: HostKeyCheck, server: { host: string; port: number }, files: readonly string[] = defaultKnownHostsFiles()): void {
  const type = keyType(blob);
  if (check.mode === 'none') return;
  if (check.mode === 'hash') {
    const hash = keyHash(blob, check.type);
    if (!fingerprintMatches(hash, check.hash)) {
      throw refused(`remote host ${type} key fingerprint '${check.type}:${hash.toString('hex')}' does not match host_key_check '${check.type}:${check.hash}'`);
    }
    return;
  }
  const entries = knownHostEntries(files, knownHostsName(server.host, server.port));
  let state: 'unknown' | 'other' | 'changed' = 'unknown';
  for (const e of entries) {
    if (e.blob.equals(blob)) return;
    if (e.type === type) state = 'changed';
    else if (state !== 'changed') state = 'other';
  }
  if (state === 'changed') throw refused(`host key (${type} key with fingerprint ${sha256Fingerprint(blob)}) does not match the one in known_hosts; this may be a possible attack`);
  if (state === 'other') throw refused('host key for this server not found, another type exists');
  throw refused('no host key was found in known_hosts');
}

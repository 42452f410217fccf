// The ssh protocol's options (QEMU 7.2 block/ssh.c and qapi BlockdevOptionsSsh): the URI
// ssh://[USER@]SERVER[:PORT]/PATH[?host_key_check=...] (qemu-block-drivers(7) "Secure Shell (ssh)
// disk images"), the legacy properties host, port, path, user, host_key_check, and the QAPI form
// server.host, server.port, path, user, host-key-check.{mode,type,hash}. All three become one
// SshLocation; errors carry QEMU's words.

import { invalidArgument } from '../../errors.ts';
import type { OptionsTree } from '../../block/options-tree.ts';
import { splitHostPort } from '../../util/uri-authority.ts';

export type HashType = 'md5' | 'sha1' | 'sha256';

/** How the server's host key is checked (qapi SshHostKeyCheck). */
export type HostKeyCheck = { mode: 'none' } | { mode: 'known_hosts' } | { mode: 'hash'; type: HashType; hash: string };

/** Where an ssh image is (qapi BlockdevOptionsSsh). */
export interface SshLocation {
  host: string;
  /** As given (QEMU keeps the port a string and checks it is numeric when it connects). */
  port: string;
  path: string;
  user?: string;
  hostKeyCheck: HostKeyCheck;
  /** The legacy host_key_check text, as given: shown in the node's name (ssh_refresh_filename). */
  legacyHostKeyCheck?: string;
}

/** The options the driver itself reads; the generic layers strip theirs (cache, locking, aio). */
const RUNTIME = new Set(['filename', 'host', 'port', 'path', 'user', 'host_key_check', 'server', 'host-key-check', 'cache', 'locking', 'aio', 'read-only', 'auto-read-only', 'discard', 'detect-zeroes', 'node-name', 'force-share']);

/**
 * Parse an ssh:// URI into the options QEMU's parse_uri gives (user, server.host, server.port
 * defaulting to 22, path, host_key_check from the query; other query parameters ignored). A name
 * that is not a URI gives no options at all (QEMU then reports the missing 'server').
 */
export function parseSshUri(filename: string): OptionsTree {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?(?:#.*)?$/.exec(filename);
  if (!m) return {};
  const [, scheme, authority, rawPath, query] = m as unknown as [string, string, string, string, string | undefined];
  if (scheme !== 'ssh') throw invalidArgument("URI scheme must be 'ssh'");
  let user: string | undefined;
  let hostPort = authority;
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    user = decodeURIComponent(authority.slice(0, at));
    hostPort = authority.slice(at + 1);
  }
  const { host, port } = splitHostPort(hostPort, false);
  // A port that is not a number makes QEMU's URI parser give up on the whole name.
  if (port !== undefined && port !== '' && !/^\d+$/.test(port)) return {};
  if (host === '') throw invalidArgument('missing hostname in URI');
  if (rawPath === '') throw invalidArgument('missing remote path in URI');
  const out: OptionsTree = {};
  if (user !== undefined && user !== '') out.user = user;
  const portNumber = port === undefined || port === '' ? 0 : Number(port);
  out.server = { host: decodeURIComponent(host), port: String(portNumber || 22) };
  out.path = decodeURIComponent(rawPath);
  for (const pair of (query ?? '').split(/[&;]/)) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = decodeURIComponent(eq < 0 ? pair : pair.slice(0, eq));
    if (name === 'host_key_check') out.host_key_check = decodeURIComponent(eq < 0 ? '' : pair.slice(eq + 1));
  }
  return out;
}

function leaf(tree: OptionsTree, key: string, shown = key): string | undefined {
  const v = tree[key];
  if (v === undefined) return undefined;
  if (typeof v === 'object') throw invalidArgument(`Invalid parameter type for '${shown}', expected: string`);
  return String(v);
}

function group(tree: OptionsTree, key: string): OptionsTree | undefined {
  const v = tree[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw invalidArgument(`Invalid parameter type for '${key}', expected: object`);
  return v as OptionsTree;
}

/** The legacy host_key_check text as QEMU's ssh_process_legacy_options reads it. */
export function legacyHostKeyCheck(text: string): HostKeyCheck {
  if (text === 'no') return { mode: 'none' };
  if (text === 'yes') return { mode: 'known_hosts' };
  for (const type of ['md5', 'sha1', 'sha256'] as const) {
    if (text.startsWith(`${type}:`)) return { mode: 'hash', type, hash: text.slice(type.length + 1) };
  }
  throw invalidArgument(`unknown host_key_check setting (${text})`);
}

/** One location from the node's options, checked in QEMU's order (legacy options first, then
 *  the QAPI members server, path, user, host-key-check). */
export function sshLocation(options: OptionsTree): SshLocation {
  for (const k of Object.keys(options)) {
    if (!RUNTIME.has(k)) throw invalidArgument(`Parameter '${k}' is unexpected`);
  }
  const host = leaf(options, 'host');
  const port = leaf(options, 'port');
  if (port !== undefined && !/^\s*[+-]?\d+\s*$/.test(port)) throw invalidArgument("Parameter 'port' expects a number");
  if (host === undefined && port !== undefined) throw invalidArgument('port may not be used without host');
  const legacyCheck = leaf(options, 'host_key_check');
  let hostKeyCheck: HostKeyCheck | undefined = legacyCheck !== undefined ? legacyHostKeyCheck(legacyCheck) : undefined;

  let server: { host: string; port: string };
  if (host !== undefined) {
    server = { host, port: port !== undefined ? String(Number(port)) : '22' };
  } else {
    const s = group(options, 'server');
    if (s === undefined) throw invalidArgument("Parameter 'server' is missing");
    const h = leaf(s, 'host', 'server.host');
    if (h === undefined) throw invalidArgument("Parameter 'server.host' is missing");
    const p = leaf(s, 'port', 'server.port');
    if (p === undefined) throw invalidArgument("Parameter 'server.port' is missing");
    for (const k of Object.keys(s)) {
      if (!['host', 'port', 'numeric', 'to', 'ipv4', 'ipv6', 'keep-alive', 'mptcp'].includes(k)) throw invalidArgument(`Parameter 'server.${k}' is unexpected`);
    }
    server = { host: h, port: p };
  }
  const path = leaf(options, 'path');
  if (path === undefined) throw invalidArgument("Parameter 'path' is missing");
  const user = leaf(options, 'user');
  if (hostKeyCheck === undefined) {
    const hkc = group(options, 'host-key-check');
    if (hkc !== undefined) {
      const mode = leaf(hkc, 'mode', 'host-key-check.mode');
      if (mode === undefined) throw invalidArgument("Parameter 'host-key-check.mode' is missing");
      if (mode === 'none' || mode === 'known_hosts') hostKeyCheck = { mode };
      else if (mode === 'hash') {
        const type = leaf(hkc, 'type', 'host-key-check.type');
        if (type === undefined) throw invalidArgument("Parameter 'host-key-check.type' is missing");
        if (type !== 'md5' && type !== 'sha1' && type !== 'sha256') throw invalidArgument(`Parameter 'type' does not accept value '${type}'`);
        const hash = leaf(hkc, 'hash', 'host-key-check.hash');
        if (hash === undefined) throw invalidArgument("Parameter 'host-key-check.hash' is missing");
        hostKeyCheck = { mode: 'hash', type, hash };
      } else throw invalidArgument(`Parameter 'mode' does not accept value '${mode}'`);
    }
  }
  return {
    host: server.host,
    port: server.port,
    path,
    ...(user !== undefined ? { user } : {}),
    hostKeyCheck: hostKeyCheck ?? { mode: 'known_hosts' },
    ...(legacyCheck !== undefined ? { legacyHostKeyCheck: legacyCheck } : {}),
  };
}

/** The name QEMU gives an open ssh node (ssh_refresh_filename): always with the user and the
 *  port, and the legacy host_key_check as it was given. */
export function refreshedFilename(loc: SshLocation, user: string): string {
  const q = loc.legacyHostKeyCheck !== undefined ? `?host_key_check=${loc.legacyHostKeyCheck}` : '';
  return `ssh://${user}@${loc.host}:${loc.port}${loc.path}${q}`;
}

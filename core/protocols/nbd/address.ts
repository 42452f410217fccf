// Where an NBD export is: the filename forms of QEMU 7.2 (block/nbd.c nbd_parse_filename and
// nbd_parse_uri) turned into options, the options (server.*, legacy host/port/path, export)
// turned into one address, and the name QEMU shows for it (nbd_refresh_filename).
//
//   nbd://host[:port]/export          nbd+tcp://host[:port]/export
//   nbd+unix:///export?socket=PATH
//   nbd:host:port[:exportname=NAME]   nbd:unix:PATH[:exportname=NAME]

import { invalidArgument } from '../../errors.ts';
import { optString, optTree, type OptionsTree } from '../../block/options-tree.ts';
import { NBD_DEFAULT_PORT, NBD_MAX_STRING_SIZE } from './constants.ts';

export type NbdServerAddress = { type: 'unix'; path: string } | { type: 'inet'; host: string; port: string };

export interface NbdTarget {
  server: NbdServerAddress;
  /** undefined: no export given (the server's default, the empty name). */
  exportName: string | undefined;
  tlsCreds: string | undefined;
  tlsHostname: string | undefined;
  dirtyBitmap: string | undefined;
}

const EN_OPTSTR = ':exportname=';

/** RFC 3986 percent-decoding, as QEMU's uri_parse does for the path and query. */
function unescape(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** nbd_parse_uri: undefined when the URI is not one QEMU takes ("No valid URL specified"). */
function parseUri(filename: string): OptionsTree | undefined {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?(?:#.*)?$/.exec(filename);
  if (!m) return undefined;
  const scheme = m[1]!;
  const authority = m[2]!;
  const isUnix = scheme === 'nbd+unix';
  if (!isUnix && scheme !== 'nbd' && scheme !== 'nbd+tcp') return undefined;
  let path = unescape(m[3]!);
  if (path.startsWith('/')) path = path.slice(1);
  const out: OptionsTree = {};
  if (path !== '') out.export = path;
  const params = m[4] === undefined || m[4] === '' ? [] : m[4].split(/[&;]/).filter((p) => p !== '');
  if (params.length > 1 || (isUnix && params.length === 0) || (!isUnix && params.length > 0)) return undefined;
  // host[:port], with an optional user@ and a bracketed IPv6 literal.
  const hostPort = authority.replace(/^[^@]*@/, '');
  let host = '';
  let port: string | undefined;
  const v6 = /^\[([^\]]*)\](?::(\d*))?$/.exec(hostPort);
  if (v6) {
    host = v6[1]!;
    port = v6[2];
  } else {
    const hp = /^([^:]*)(?::(\d*))?$/.exec(hostPort);
    if (!hp) return undefined;
    host = hp[1]!;
    port = hp[2];
  }
  if (port !== undefined && port !== '' && (Number(port) > 65535)) return undefined;
  const portNum = port === undefined || port === '' ? 0 : Number(port);
  if (isUnix) {
    const p = params[0]!;
    const eq = p.indexOf('=');
    const name = eq < 0 ? p : p.slice(0, eq);
    if (host !== '' || portNum !== 0 || name !== 'socket') return undefined;
    out.server = { type: 'unix', path: unescape(eq < 0 ? '' : p.slice(eq + 1)) };
  } else {
    if (host === '') return undefined;
    out.server = { type: 'inet', host, port: String(portNum || NBD_DEFAULT_PORT) };
  }
  return out;
}

/** QEMU's inet_parse for "host:port" ("[v6]:port" too); the port may be a service name. */
function inetParse(spec: string): { host: string; port: string } {
  const v6 = /^\[([^\]]*)\]:([^,]+)$/.exec(spec);
  if (v6) return { host: v6[1]!, port: v6[2]! };
  const colon = spec.indexOf(':');
  if (colon < 0 || colon === spec.length - 1) throw invalidArgument(`error parsing address '${spec}'`);
  return { host: spec.slice(0, colon), port: spec.slice(colon + 1) };
}

/** nbd_parse_filename: a filename in any of QEMU's forms, as nbd driver options. */
export function parseNbdFilename(filename: string): OptionsTree {
  if (filename.includes('://')) {
    const t = parseUri(filename);
    if (!t) throw invalidArgument('No valid URL specified');
    return t;
  }
  let file = filename;
  const out: OptionsTree = {};
  const en = file.indexOf(EN_OPTSTR);
  if (en >= 0) {
    // QEMU: an empty export name stops the parse there (nothing else is taken from the name).
    if (en + EN_OPTSTR.length === file.length) return out;
    out.export = file.slice(en + EN_OPTSTR.length);
    file = file.slice(0, en);
  }
  if (!file.startsWith('nbd:')) throw invalidArgument("File name string for NBD must start with 'nbd:'");
  const hostSpec = file.slice(4);
  if (hostSpec === '') return out;
  if (hostSpec.startsWith('unix:')) {
    out.server = { type: 'unix', path: hostSpec.slice(5) };
  } else {
    const { host, port } = inetParse(hostSpec);
    out.server = { type: 'inet', host, port };
  }
  return out;
}

/** The options nbd takes (block/nbd.c nbd_runtime_opts, plus server.*). */
const KNOWN = new Set(['host', 'port', 'path', 'export', 'tls-creds', 'tls-hostname', 'x-dirty-bitmap', 'reconnect-delay', 'open-timeout', 'server', 'filename', 'cache', 'aio', 'locking', 'discard', 'detect-zeroes', 'read-only', 'auto-read-only', 'force-share', 'node-name']);

/** nbd_process_options: the options tree as one target, with QEMU's messages. */
export function nbdTarget(options: OptionsTree): NbdTarget {
  const filename = optString(options, 'filename');
  let opts = options;
  if (filename !== undefined) {
    for (const k of ['host', 'port', 'path', 'export']) if (options[k] !== undefined) throw invalidArgument(`Option '${k}' cannot be used with a file name`);
    if (options.server !== undefined) throw invalidArgument(`Option 'server.${Object.keys(optTree(options, 'server') ?? {})[0] ?? 'type'}' cannot be used with a file name`);
    const { filename: _f, ...rest } = options;
    opts = { ...rest, ...parseNbdFilename(filename) };
  }
  for (const k of Object.keys(opts)) if (!KNOWN.has(k)) throw invalidArgument(`Invalid parameter '${k}'`);
  const path = optString(opts, 'path');
  const host = optString(opts, 'host');
  const port = optString(opts, 'port');
  let server = optTree(opts, 'server');
  if (path !== undefined || host !== undefined || port !== undefined) {
    if (server !== undefined && Object.keys(server).length > 0) throw invalidArgument("Cannot use 'server' and path/host/port at the same time");
    if (path !== undefined && host !== undefined) throw invalidArgument('path and host may not be used at the same time');
    if (path !== undefined) {
      if (port !== undefined) throw invalidArgument('port may not be used without host');
      server = { type: 'unix', path };
    } else if (host !== undefined) server = { type: 'inet', host, port: port ?? String(NBD_DEFAULT_PORT) };
  }
  if (server === undefined || Object.keys(server).length === 0) throw invalidArgument('NBD server address missing');
  const type = optString(server, 'type');
  if (type === undefined) throw invalidArgument("Parameter 'type' is missing");
  let addr: NbdServerAddress;
  if (type === 'unix') {
    const p = optString(server, 'path');
    if (p === undefined) throw invalidArgument("Parameter 'path' is missing");
    for (const k of Object.keys(server)) if (!['type', 'path', 'abstract', 'tight'].includes(k)) throw invalidArgument(`Parameter '${k}' is unexpected`);
    addr = { type: 'unix', path: p };
  } else if (type === 'inet') {
    const h = optString(server, 'host');
    if (h === undefined) throw invalidArgument("Parameter 'host' is missing");
    const p = optString(server, 'port');
    if (p === undefined) throw invalidArgument("Parameter 'port' is missing");
    for (const k of Object.keys(server)) if (!['type', 'host', 'port', 'numeric', 'to', 'ipv4', 'ipv6', 'keep-alive'].includes(k)) throw invalidArgument(`Parameter '${k}' is unexpected`);
    addr = { type: 'inet', host: h, port: p };
  } else if (type === 'fd' || type === 'vsock') {
    throw invalidArgument(`NBD over '${type}' sockets is not supported by Platter`);
  } else {
    throw invalidArgument(`Parameter 'type' does not accept value '${type}'`);
  }
  const exportName = optString(opts, 'export');
  if (exportName !== undefined && Buffer.byteLength(exportName) > NBD_MAX_STRING_SIZE) throw invalidArgument('export name too long to send to server');
  const tlsCreds = optString(opts, 'tls-creds');
  let tlsHostname = optString(opts, 'tls-hostname');
  if (tlsCreds !== undefined && tlsHostname === undefined && addr.type === 'inet') tlsHostname = addr.host;
  const dirtyBitmap = optString(opts, 'x-dirty-bitmap');
  if (dirtyBitmap !== undefined && Buffer.byteLength(dirtyBitmap) > NBD_MAX_STRING_SIZE) throw invalidArgument('x-dirty-bitmap query too long to send to server');
  return { server: addr, exportName, tlsCreds, tlsHostname, dirtyBitmap };
}

/** The server as QEMU names it in "Failed to connect to '...'". */
export function serverLabel(s: NbdServerAddress): string {
  return s.type === 'unix' ? s.path : `${s.host}:${s.port}`;
}

/** nbd_refresh_filename: the pseudo-filename QEMU shows for an nbd node. */
export function nbdDisplayName(t: NbdTarget): string {
  const s = t.server;
  if (s.type === 'unix') return t.exportName !== undefined ? `nbd+unix:///${t.exportName}?socket=${s.path}` : `nbd+unix://?socket=${s.path}`;
  return t.exportName !== undefined ? `nbd://${s.host}:${s.port}/${t.exportName}` : `nbd://${s.host}:${s.port}`;
}

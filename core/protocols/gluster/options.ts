// The gluster protocol's names and options (QEMU 7.2 block/gluster.c; qemu-block-drivers(7)
// "GlusterFS disk images"): the URI gluster[+tcp|+unix|+rdma]://[HOST[:PORT]]/VOLUME/PATH
// [?socket=...], and the JSON form {volume, path, server: [{type: tcp|inet, host, port} |
// {type: unix, path|socket}], debug, logfile}. Both become one GlusterConfig; errors carry QEMU's
// words and hints.

import { BlockError, invalidArgument } from '../../errors.ts';
import { listItems, type OptionsTree } from '../../block/options-tree.ts';
import { qdictOrder, quote } from '../../util/qemu-json-print.ts';
import { splitHostPort } from '../../util/uri-authority.ts';

/** One volfile server (QAPI SocketAddress, inet or unix). */
export type GlusterServer = { type: 'tcp'; host: string; port: string } | { type: 'unix'; socket: string };

/** Where a gluster image is and how libgfapi logs (QAPI BlockdevOptionsGluster). */
export interface GlusterConfig {
  volume: string;
  path: string;
  servers: GlusterServer[];
  /** libgfapi's log level, 0..9 (QEMU clamps; default 4). */
  debug: number;
  /** libgfapi's log file; "-" is standard error (QEMU's default). */
  logfile: string;
}

export const GLUSTER_DEFAULT_PORT = 24007;
export const GLUSTER_DEBUG_DEFAULT = 4;
const GLUSTER_DEBUG_MAX = 9;
const GLUSTER_LOGFILE_DEFAULT = '-';

const URI_USAGE = 'Usage: file=gluster[+transport]://[host[:port]]volume/path[?socket=...][,file.debug=N][,file.logfile=/path/filename.log]\n';
const JSON_USAGE =
  'Usage: -drive driver=qcow2,file.driver=gluster,file.volume=testvol,file.path=/path/a.qcow2[,file.debug=9][,file.logfile=/path/filename.log],file.server.0.type=inet,file.server.0.host=1.2.3.4,file.server.0.port=24007,file.server.1.transport=unix,file.server.1.path=/var/run/glusterd.socket ...\n';

/** Options the generic layers read themselves (cache, locking, ...), which the driver ignores. */
const GENERIC = new Set(['cache', 'locking', 'aio', 'read-only', 'auto-read-only', 'discard', 'detect-zeroes', 'node-name', 'force-share', 'x-probed']);
/** QEMU's runtime_opts / runtime_json_opts of the driver. */
const OWN = new Set(['filename', 'debug', 'logfile', 'volume', 'path', 'server']);

function leaf(tree: OptionsTree, key: string): string | undefined {
  const v = tree[key];
  if (v === undefined) return undefined;
  if (typeof v === 'object') throw invalidArgument(`Invalid parameter type for '${key}', expected: string`);
  return String(v);
}

/** A failure of the URI form: QEMU's "invalid URI" with its usage line as the hint. */
function badUri(filename: string): BlockError {
  return new BlockError('InvalidArgument', `invalid URI ${filename}`, {}, { hint: URI_USAGE });
}

/** A failure of the JSON form, with the server index hint where QEMU gives one and its usage. */
function badJson(message: string, index?: number): BlockError {
  const hint = (index !== undefined ? `hint: check in 'server' array index '${index}'\n` : '') + JSON_USAGE;
  return new BlockError('InvalidArgument', message, {}, { hint });
}

/** QEMU's qemu_opt_get_number for debug: a number, clamped to 0..9. */
function debugLevel(tree: OptionsTree): number {
  const v = tree.debug;
  if (v === undefined) return GLUSTER_DEBUG_DEFAULT;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*[+-]?\d+\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n)) throw invalidArgument("Parameter 'debug' expects a number");
  return Math.min(Math.max(n, 0), GLUSTER_DEBUG_MAX);
}

/** RFC 3986 percent-decoding, as QEMU's uri_parse does. */
function unescape(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** QEMU's parse_volume_options: leading slashes skipped, VOLUME up to the next '/', then PATH
 *  after any further slashes; both must be non-empty. */
function volumeAndPath(path: string): { volume: string; path: string } | undefined {
  const rest = path.replace(/^\/+/, '');
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  const p = rest.slice(slash).replace(/^\/+/, '');
  if (p === '') return undefined;
  return { volume: rest.slice(0, slash), path: p };
}

/**
 * The location a gluster URI names (QEMU's qemu_gluster_parse_uri). `warn` hears rdma's fallback
 * to tcp. Throws QEMU's "invalid URI" for anything it refuses.
 */
export function parseGlusterUri(filename: string, warn?: (m: string) => void): { volume: string; path: string; servers: GlusterServer[] } {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?(?:#.*)?$/.exec(filename);
  if (!m) throw badUri(filename);
  const [, schemeRaw, authority, rawPath, query] = m as unknown as [string, string, string, string, string | undefined];
  const scheme = schemeRaw.toLowerCase();
  let type: 'tcp' | 'unix';
  if (scheme === 'gluster' || scheme === 'gluster+tcp') type = 'tcp';
  else if (scheme === 'gluster+unix') type = 'unix';
  else if (scheme === 'gluster+rdma') {
    type = 'tcp';
    warn?.('warning: rdma feature is not supported, falling back to tcp');
  } else throw badUri(filename);

  const vp = volumeAndPath(unescape(rawPath));
  if (!vp) throw badUri(filename);

  // The authority: [user@]host[:port] (QEMU's URI parser keeps a user part and ignores it here).
  const hostPort = authority.slice(authority.lastIndexOf('@') + 1);
  const { host, port } = splitHostPort(hostPort, true);
  if (port !== undefined && port !== '' && !/^\d+$/.test(port)) throw badUri(filename);
  const portNumber = port === undefined || port === '' ? 0 : Number(port);

  const params = (query ?? '').split(/[&;]/).filter((p) => p !== '');
  const isUnix = type === 'unix';
  if (params.length > 1 || (isUnix && params.length === 0) || (!isUnix && params.length > 0)) throw badUri(filename);
  if (isUnix) {
    if (host !== '' || portNumber !== 0) throw badUri(filename);
    const p = params[0]!;
    const eq = p.indexOf('=');
    if (unescape(eq < 0 ? p : p.slice(0, eq)) !== 'socket') throw badUri(filename);
    return { ...vp, servers: [{ type: 'unix', socket: eq < 0 ? '' : unescape(p.slice(eq + 1)) }] };
  }
  return { ...vp, servers: [{ type: 'tcp', host: host === '' ? 'localhost' : unescape(host), port: String(portNumber || GLUSTER_DEFAULT_PORT) }] };
}

/** The JSON form's servers and location (QEMU's qemu_gluster_parse_json), checked in its order. */
function parseJsonForm(options: OptionsTree): { volume: string; path: string; servers: GlusterServer[] } {
  const rawServers = options.server;
  const items = rawServers === undefined ? [] : listItems(rawServers);
  if (items === undefined || items.length < 1) throw badJson("Parameter 'server' is missing");
  const volume = leaf(options, 'volume');
  if (volume === undefined) throw badJson("Parameter 'volume' is missing");
  const path = leaf(options, 'path');
  if (path === undefined) throw badJson("Parameter 'path' is missing");
  const servers: GlusterServer[] = [];
  items.forEach((item, i) => {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) throw badJson(`Invalid parameter type for 'server.${i}', expected: object`, i);
    const s = item as OptionsTree;
    const type = leaf(s, 'type');
    if (type === undefined) throw badJson("Parameter 'type' is missing", i);
    if (type === 'tcp' || type === 'inet') {
      for (const k of Object.keys(s)) {
        if (!['type', 'host', 'port', 'to', 'ipv4', 'ipv6'].includes(k)) throw invalidArgument(`Block protocol 'gluster' doesn't support the option 'server.${i}.${k}'`);
      }
      const host = leaf(s, 'host');
      if (host === undefined) throw badJson("Parameter 'host' is missing", i);
      const port = leaf(s, 'port');
      if (port === undefined) throw badJson("Parameter 'port' is missing", i);
      if (s.to !== undefined) throw badJson("Parameter 'to' not supported");
      if (s.ipv4 !== undefined || s.ipv6 !== undefined) throw badJson("Parameters 'ipv4/ipv6' not supported");
      servers.push({ type: 'tcp', host, port });
    } else if (type === 'unix') {
      for (const k of Object.keys(s)) {
        if (!['type', 'path', 'socket'].includes(k)) throw invalidArgument(`Block protocol 'gluster' doesn't support the option 'server.${i}.${k}'`);
      }
      const p = leaf(s, 'path');
      const socket = leaf(s, 'socket');
      if (p !== undefined && socket !== undefined) throw badJson("Conflicting parameters 'path' and 'socket'", i);
      const where = p ?? socket;
      if (where === undefined) throw badJson("Parameter 'path' is missing", i);
      servers.push({ type: 'unix', socket: where });
    } else throw badJson("Parameter 'type' may be 'inet' or 'unix'", i);
  });
  return { volume, path, servers };
}

/**
 * One GlusterConfig from a node's options: the URI in `filename`, or the JSON form. Unknown
 * options are refused in QEMU's words.
 */
export function glusterConfig(options: OptionsTree, warn?: (m: string) => void): GlusterConfig {
  for (const k of Object.keys(options)) {
    if (!OWN.has(k) && !GENERIC.has(k) && k !== 'driver') throw invalidArgument(`Block protocol 'gluster' doesn't support the option '${k}'`);
  }
  const debug = debugLevel(options);
  const logfile = leaf(options, 'logfile') ?? GLUSTER_LOGFILE_DEFAULT;
  const filename = leaf(options, 'filename');
  const where = filename !== undefined ? parseGlusterUri(filename, warn) : parseJsonForm(options);
  return { ...where, debug, logfile };
}

/** The port of a tcp server as QEMU checks it before connecting (parse_uint_full, <= 65535). */
export function checkedPort(s: { port: string }): number {
  if (!/^\d+$/.test(s.port) || Number(s.port) > 65535) throw invalidArgument(`'${s.port}' is not a valid port number`);
  return Number(s.port);
}

/** The keys QEMU keeps in a node's json: name (gluster_strong_open_opts; "server." as a prefix). */
const STRONG = new Set(['volume', 'path', 'type', 'host', 'port', 'to', 'ipv4', 'ipv6', 'socket']);

/**
 * The json: name QEMU gives a node opened from the JSON form (bdrv_refresh_filename: the driver
 * and its strong options, flattened to dotted keys, in QDict order), or undefined for the URI form,
 * whose node keeps the URI as its name.
 */
export function glusterJsonName(options: OptionsTree): string | undefined {
  if (options.filename !== undefined) return undefined;
  const entries: [string, string][] = [['driver', quote('gluster')]];
  const add = (key: string, v: unknown): void => {
    if (v === undefined) return;
    if (typeof v === 'object' && v !== null) {
      const items = listItems(v);
      if (items) items.forEach((x, i) => add(`${key}.${i}`, x));
      else for (const [k, x] of Object.entries(v as OptionsTree)) add(`${key}.${k}`, x);
      return;
    }
    entries.push([key, typeof v === 'string' ? quote(v) : String(v)]);
  };
  for (const [k, v] of Object.entries(options)) {
    if (k === 'server') add('server', v);
    else if (STRONG.has(k)) add(k, v);
  }
  const map = new Map(entries);
  return `{${qdictOrder([...map.keys()]).map((k) => `${quote(k)}: ${map.get(k)!}`).join(', ')}}`;
}

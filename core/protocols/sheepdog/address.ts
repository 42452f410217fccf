// Where a sheepdog vdi is: QEMU 5.2's filename forms (block/sheepdog.c sd_parse_uri and
// parse_vdiname) turned into options, and the options (server.*, vdi, snap-id, tag) into one
// target.
//
//   sheepdog[+tcp]://[HOST[:PORT]]/VDI[#SNAPID|#TAG]
//   sheepdog+unix:///VDI[#SNAPID|#TAG]?socket=PATH
//   sheepdog:[HOST:PORT:]VDI[:SNAPID|:TAG]        (legacy form)
//   driver=sheepdog,server.type=inet,server.host=H,server.port=P,vdi=VDI[,snap-id=N|,tag=T]

import { invalidArgument } from '../../errors.ts';
import { optString, optTree, type OptionsTree } from '../../block/options-tree.ts';
import { SD_DEFAULT_PORT, SD_MAX_VDI_LEN, SD_MAX_VDI_TAG_LEN } from './proto.ts';

export type SheepdogServer = { type: 'unix'; path: string } | { type: 'inet'; host: string; port: number };

export interface SheepdogTarget {
  server: SheepdogServer;
  vdi: string;
  /** 0: the working vdi (QEMU's CURRENT_VDI_ID) unless a tag is named. */
  snapId: number;
  tag: string;
}

function unescape(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** sd_parse_snapid_or_tag: a positive 32-bit number is a snapshot id, other text a tag. */
function snapIdOrTag(s: string): { snapId: number; tag: string } | undefined {
  if (s === '') return undefined;
  if (/^[0-9]+$/.test(s)) {
    const n = Number(s);
    if (n === 0 || n > 0xffffffff) return undefined;
    return { snapId: n, tag: '' };
  }
  if (Buffer.byteLength(s) >= SD_MAX_VDI_TAG_LEN) return undefined;
  return { snapId: 0, tag: s };
}

/** sd_parse_uri: a sheepdog URI as driver options, in QEMU's words when it is not one. */
function parseUri(filename: string): OptionsTree {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?(?:#(.*))?$/s.exec(filename);
  if (!m) throw invalidArgument(`Invalid sheepdog URI '${filename}'`);
  const scheme = m[1]!.toLowerCase();
  let isUnix: boolean;
  if (scheme === 'sheepdog' || scheme === 'sheepdog+tcp') isUnix = false;
  else if (scheme === 'sheepdog+unix') isUnix = true;
  else throw invalidArgument("URI scheme must be 'sheepdog', 'sheepdog+tcp', or 'sheepdog+unix'");
  const path = unescape(m[3]!);
  if (path === '' || path === '/') throw invalidArgument('missing file path in URI');
  const vdi = path.slice(1);
  if (Buffer.byteLength(vdi) >= SD_MAX_VDI_LEN) throw invalidArgument('VDI name is too long');
  const params = m[4] === undefined || m[4] === '' ? [] : m[4].split('&').filter((p) => p !== '');
  const out: OptionsTree = { vdi };
  const authority = m[2]!.replace(/^[^@]*@/, '');
  if (isUnix) {
    if (authority !== '') throw invalidArgument(`URI scheme ${scheme} doesn't accept a server address`);
    if (params.length === 0) throw invalidArgument(`URI scheme ${scheme} requires query parameter 'socket'`);
    const eq = params[0]!.indexOf('=');
    if (params.length !== 1 || eq < 0 || params[0]!.slice(0, eq) !== 'socket') throw invalidArgument('unexpected query parameters');
    out.server = { type: 'unix', path: unescape(params[0]!.slice(eq + 1)) };
  } else {
    if (params.length > 0) throw invalidArgument('unexpected query parameters');
    if (authority !== '') {
      const v6 = /^\[([^\]]*)\](?::(\d*))?$/.exec(authority);
      const hp = v6 ?? /^([^:]*)(?::(\d*))?$/.exec(authority);
      if (!hp) throw invalidArgument(`Invalid sheepdog server address '${authority}'`);
      const server: OptionsTree = { type: 'inet', host: hp[1]! };
      if (hp[2] !== undefined && hp[2] !== '') server.port = hp[2];
      if (hp[1] !== '') out.server = server;
    }
  }
  if (m[5] !== undefined) {
    const frag = unescape(m[5]);
    const s = snapIdOrTag(frag);
    if (!s) throw invalidArgument(`'${frag}' is not a valid snapshot ID`);
    if (s.snapId) out['snap-id'] = String(s.snapId);
    else out.tag = s.tag;
  }
  return out;
}

/** parse_vdiname: the legacy "sheepdog:[HOST:PORT:]VDI[:SNAPSHOT]" form, through its URI. */
function parseLegacy(filename: string): OptionsTree {
  let rest = filename.replace(/^sheepdog:/i, '');
  let host = '';
  const seps = rest.split(':').length - 1;
  if (seps >= 2) {
    const a = rest.indexOf(':');
    const b = rest.indexOf(':', a + 1);
    host = rest.slice(0, b);
    rest = rest.slice(b + 1);
  }
  const c = rest.indexOf(':');
  const vdi = c < 0 ? rest : rest.slice(0, c);
  const snap = c < 0 ? undefined : rest.slice(c + 1);
  return parseUri(`sheepdog://${host}/${encodeURIComponent(vdi)}${snap !== undefined ? `#${encodeURIComponent(snap)}` : ''}`);
}

/** sd_parse_filename: a filename in any of QEMU 5.2's forms, as sheepdog driver options. */
export function parseSheepdogFilename(filename: string): OptionsTree {
  return filename.includes('://') ? parseUri(filename) : parseLegacy(filename);
}

const KNOWN = new Set(['server', 'vdi', 'snap-id', 'tag', 'filename', 'cache', 'aio', 'locking', 'discard', 'detect-zeroes', 'read-only', 'auto-read-only', 'force-share', 'node-name']);

/** sd_open's option processing: the options tree as one target, with QEMU's messages. */
export function sheepdogTarget(options: OptionsTree): SheepdogTarget {
  let opts = options;
  const filename = optString(options, 'filename');
  if (filename !== undefined) {
    for (const k of ['vdi', 'snap-id', 'tag', 'server']) if (options[k] !== undefined) throw invalidArgument(`Option '${k}' cannot be used with a file name`);
    const { filename: _f, ...rest } = options;
    opts = { ...rest, ...parseSheepdogFilename(filename) };
  }
  for (const k of Object.keys(opts)) if (!KNOWN.has(k)) throw invalidArgument(`Invalid parameter '${k}'`);
  const vdi = optString(opts, 'vdi');
  if (vdi === undefined || vdi === '') throw invalidArgument("Parameter 'vdi' is missing");
  if (Buffer.byteLength(vdi) >= SD_MAX_VDI_LEN) throw invalidArgument('VDI name is too long');
  const snapText = optString(opts, 'snap-id');
  const tag = optString(opts, 'tag') ?? '';
  let snapId = 0;
  if (snapText !== undefined) {
    if (!/^[0-9]+$/.test(snapText) || Number(snapText) > 0xffffffff) throw invalidArgument("Parameter 'snap-id' expects uint32");
    snapId = Number(snapText);
  }
  if (snapId !== 0 && tag !== '') throw invalidArgument("Parameters 'snap-id' and 'tag' cannot be used at the same time");
  if (Buffer.byteLength(tag) >= SD_MAX_VDI_TAG_LEN) throw invalidArgument("Parameter 'tag' may not exceed 255 bytes");
  const server = optTree(opts, 'server');
  let addr: SheepdogServer = { type: 'inet', host: 'localhost', port: SD_DEFAULT_PORT };
  if (server !== undefined && Object.keys(server).length > 0) {
    const type = optString(server, 'type') ?? 'inet';
    if (type === 'unix') {
      const p = optString(server, 'path');
      if (p === undefined) throw invalidArgument("Parameter 'server.path' is missing");
      for (const k of Object.keys(server)) if (!['type', 'path'].includes(k)) throw invalidArgument(`Parameter 'server.${k}' is unexpected`);
      addr = { type: 'unix', path: p };
    } else if (type === 'inet') {
      const h = optString(server, 'host');
      if (h === undefined) throw invalidArgument("Parameter 'server.host' is missing");
      for (const k of Object.keys(server)) if (!['type', 'host', 'port', 'numeric', 'to', 'ipv4', 'ipv6'].includes(k)) throw invalidArgument(`Parameter 'server.${k}' is unexpected`);
      const p = optString(server, 'port') ?? String(SD_DEFAULT_PORT);
      if (!/^[0-9]+$/.test(p) || Number(p) < 1 || Number(p) > 65535) throw invalidArgument(`Invalid sheepdog server port '${p}'`);
      addr = { type: 'inet', host: h, port: Number(p) };
    } else {
      throw invalidArgument(`Parameter 'server.type' does not accept value '${type}'`);
    }
  }
  return { server: addr, vdi, snapId, tag };
}

/** The server as messages name it. */
export function serverLabel(s: SheepdogServer): string {
  return s.type === 'unix' ? s.path : s.host.includes(':') ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
}

/** A URI naming the target (the name a node opened from options shows). */
export function sheepdogUri(t: SheepdogTarget): string {
  const snap = t.snapId ? `#${t.snapId}` : t.tag ? `#${t.tag}` : '';
  if (t.server.type === 'unix') return `sheepdog+unix:///${t.vdi}${snap}?socket=${t.server.path}`;
  return `sheepdog://${serverLabel(t.server)}/${t.vdi}${snap}`;
}

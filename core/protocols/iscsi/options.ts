// The iscsi driver's options, as QEMU 7.2 names them (block/iscsi.c runtime_opts): transport,
// portal, target, lun, user, password, password-secret, initiator-name, header-digest, timeout;
// the URL form iscsi://[USER[%PASSWORD]@]HOST[:PORT]/TARGET-IQN/LUN (libiscsi's parser:
// LIBISCSI_CHAP_USERNAME / LIBISCSI_CHAP_PASSWORD from the environment when the URL names no
// user, a query string ignored); and the json: name QEMU gives the node (its options, in QDict
// order), which Platter shows without the password.

import { BlockError, invalidArgument, redactSecrets } from '../../errors.ts';
import { optString, type OptionsTree } from '../../block/options-tree.ts';
import { qdictOrder, quote } from '../../util/qemu-json-print.ts';
import type { HeaderDigest } from './session.ts';
import { applyIscsiConfig, currentIscsiConfig, type IscsiConfigSection } from './config.ts';

/** QEMU's initiator name when none is given and the VM has neither UUID nor name (qemu-img). */
export const DEFAULT_INITIATOR_NAME = 'iqn.2008-11.org.linux-kvm';
export const DEFAULT_PORT = 3260;

/** Options the driver takes (plus generic ones the block layer handles). */
const KNOWN = new Set(['transport', 'portal', 'target', 'user', 'password', 'password-secret', 'lun', 'initiator-name', 'header-digest', 'timeout', 'filename']);
const GENERIC = new Set(['cache', 'locking', 'aio', 'discard', 'detect-zeroes', 'read-only', 'auto-read-only', 'force-share', 'node-name']);

/** QEMU's strong runtime options of iscsi, in its order: these make up the node's json: name. */
const NAME_KEYS = ['transport', 'portal', 'target', 'user', 'password', 'password-secret', 'lun', 'initiator-name', 'header-digest'] as const;

const urlError = (filename: string) => invalidArgument(`Failed to parse URL : ${redactUrl(filename)}`);

/** An iscsi:// (or iser://) URL as options (QEMU's iscsi_parse_filename over libiscsi's
 *  iscsi_parse_full_url). `env` supplies LIBISCSI_CHAP_USERNAME/PASSWORD. */
export function parseIscsiUrl(filename: string, env: NodeJS.ProcessEnv = process.env, config: IscsiConfigSection[] = currentIscsiConfig()): OptionsTree {
  const m = /^(iscsi|iser):\/\/(.*)$/i.exec(filename);
  if (!m) throw urlError(filename);
  let rest = m[2]!;
  const q = rest.indexOf('?');
  if (q >= 0) rest = rest.slice(0, q);
  let user = env['LIBISCSI_CHAP_USERNAME'] ?? '';
  let password = env['LIBISCSI_CHAP_PASSWORD'];
  const at = rest.indexOf('@');
  if (at >= 0) {
    const cred = rest.slice(0, at);
    rest = rest.slice(at + 1);
    let sep = cred.indexOf('%');
    if (sep < 0) sep = cred.indexOf(':');
    user = sep < 0 ? cred : cred.slice(0, sep);
    password = sep < 0 ? undefined : cred.slice(sep + 1);
  }
  const slash = rest.indexOf('/');
  if (slash <= 0) throw urlError(filename);
  const portal = rest.slice(0, slash);
  const targetAndLun = rest.slice(slash + 1);
  const slash2 = targetAndLun.indexOf('/');
  if (slash2 <= 0) throw urlError(filename);
  const target = targetAndLun.slice(0, slash2);
  const lunText = targetAndLun.slice(slash2 + 1);
  if (!/^\d+$/.test(lunText) || Number(lunText) > 0x3fff) throw urlError(filename);
  parsePortal(portal, () => urlError(filename));
  const tree: OptionsTree = { transport: m[1]!.toLowerCase() === 'iser' ? 'iser' : 'tcp', portal, target, lun: String(Number(lunText)) };
  // Configuration sections first: their user and password win over the URL's.
  applyIscsiConfig(tree, target, config);
  if (user !== '') {
    tree.user ??= user;
    tree.password ??= password ?? '';
  }
  return tree;
}

/** The URL with any password taken out ("iscsi://alice@host/..."), for messages. */
export function redactUrl(filename: string): string {
  return redactSecrets(filename);
}

/** "host", "host:port", "[v6]" or "[v6]:port". */
export function parsePortal(portal: string, bad: () => Error = () => invalidArgument(`Invalid portal '${portal}'`)): { host: string; port: number } {
  let host: string;
  let portText: string | undefined;
  if (portal.startsWith('[')) {
    const close = portal.indexOf(']');
    if (close < 0) throw bad();
    host = portal.slice(1, close);
    const after = portal.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) throw bad();
    portText = after ? after.slice(1) : undefined;
  } else {
    const colon = portal.lastIndexOf(':');
    host = colon >= 0 ? portal.slice(0, colon) : portal;
    portText = colon >= 0 ? portal.slice(colon + 1) : undefined;
  }
  if (host === '') throw bad();
  // A portal from SendTargets ends in ",TPGT".
  if (portText !== undefined) portText = portText.replace(/,\d+$/, '');
  const port = portText === undefined || portText === '' ? DEFAULT_PORT : Number(portText);
  if (!/^\d*$/.test(portText ?? '') || !Number.isInteger(port) || port < 1 || port > 65535) throw bad();
  return { host, port };
}

export interface IscsiSettings {
  host: string;
  port: number;
  portal: string;
  target: string;
  lun: number;
  user?: string;
  /** Where the password comes from: given in the options, or a secret's id. */
  password?: { value: string } | { secret: string };
  initiatorName: string;
  headerDigest: HeaderDigest;
  /** Seconds, 0 for none. */
  timeout: number;
}

function number(options: OptionsTree, key: string): number | undefined {
  const v = options[key];
  if (v === undefined) return undefined;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw invalidArgument(`Parameter '${key}' expects a number`);
  return n;
}

/** Check and read the options (QEMU's iscsi_open up to the connect, with its messages). */
export function readSettings(options: OptionsTree): IscsiSettings {
  for (const k of Object.keys(options)) {
    if (!KNOWN.has(k) && !GENERIC.has(k)) throw invalidArgument(`Block protocol 'iscsi' doesn't support the option '${k}'`);
  }
  const transport = optString(options, 'transport');
  const portal = optString(options, 'portal');
  const target = optString(options, 'target');
  const lun = number(options, 'lun') ?? 0;
  if (!transport || !portal || !target) throw invalidArgument('Need all of transport, portal and target options');
  if (transport === 'iser') throw new BlockError('Unsupported', 'iSCSI: the iser transport (RDMA) is not supported by Platter; use transport=tcp');
  if (transport !== 'tcp') throw invalidArgument(`Unknown transport: ${transport}`);
  if (lun > 0x3fff) throw invalidArgument(`iSCSI: LUN ${lun} is out of range (0 to 16383)`);
  const initiatorName = optString(options, 'initiator-name') ?? DEFAULT_INITIATOR_NAME;
  const digest = optString(options, 'header-digest');
  let headerDigest: HeaderDigest = 'none-crc32c';
  if (digest !== undefined) {
    if (digest !== 'crc32c' && digest !== 'none' && digest !== 'crc32c-none' && digest !== 'none-crc32c') throw invalidArgument(`Invalid header-digest setting : ${digest}`);
    headerDigest = digest;
  }
  const timeout = number(options, 'timeout') ?? 0;
  const { host, port } = parsePortal(portal);
  const s: IscsiSettings = { host, port, portal, target, lun, initiatorName, headerDigest, timeout };
  const user = optString(options, 'user');
  if (user !== undefined) {
    s.user = user;
    const secret = optString(options, 'password-secret');
    const password = optString(options, 'password');
    if (secret !== undefined && password !== undefined) throw invalidArgument("'password' and 'password-secret' properties are mutually exclusive");
    if (secret !== undefined) s.password = { secret };
    else if (password !== undefined) s.password = { value: password };
    else throw invalidArgument('CHAP username specified but no password was given');
  }
  return s;
}

/**
 * The node's options as QEMU's bdrv_refresh_filename prints them ({"lun": "1", "portal": ...}),
 * without "password": Platter never shows a password (QEMU 7.2 does).
 */
export function jsonName(options: OptionsTree): string {
  const entries: [string, string][] = [['driver', 'iscsi']];
  for (const k of NAME_KEYS) {
    if (k === 'password') continue;
    const v = options[k];
    if (v !== undefined && typeof v !== 'object') entries.push([k, String(v)]);
  }
  const map = new Map(entries);
  return `{${qdictOrder([...map.keys()]).map((k) => `${quote(k)}: ${quote(map.get(k)!)}`).join(', ')}}`;
}

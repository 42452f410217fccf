// The desktop app's remote sources (issues #18, #20, #21): serving an image over NBD from the app's
// own process (core/nbd-server used as a library; every server stops when the app quits), listing
// an NBD server's exports (NBD_OPT_LIST), listing a remote folder over sftp, browsing an iSCSI
// portal (SendTargets discovery, then REPORT LUNS / READ CAPACITY per target), and the library rows
// of remote sources. A library root that is a remote name (nbd:, fat:, ssh://, iscsi://) is scanned
// here: an ssh root whose path ends in "/" is a folder (its images become rows), any other is one
// image. Roots never carry a secret: key passphrases and CHAP passwords come with one call as
// secrets; an ssh key file unlocked with a passphrase is kept parsed in this process's memory
// (like ssh-agent) until the app quits, and the passphrase itself is dropped at once.

import { readFileSync, existsSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { query, type CallContext } from './router.ts';
import { entryFacts, type LibraryEntry } from './library.ts';
import type { ImageInfo } from './types.ts';
import type { PlatterService } from './service.ts';
import { BlockError, invalidArgument, serializeError } from '../errors.ts';
import { openImage } from '../drivers/open.ts';
import type { BlockNode } from '../block/node.ts';
import { NbdServer, type NbdConnectionInfo } from '../nbd-server/server.ts';
import { listNbdExports } from '../protocols/nbd/client.ts';
import { nbdTarget, parseNbdFilename, nbdDisplayName } from '../protocols/nbd/address.ts';
import { listSshDirectory, sshIdentities } from '../protocols/ssh/session.ts';
import { parseSshUri, sshLocation } from '../protocols/ssh/options.ts';
import { discoverTargets, listTargetLuns } from '../protocols/iscsi/discovery.ts';
import { currentIscsiConfig, setIscsiConfig } from '../protocols/iscsi/config.ts';

const secretsField = z.array(z.object({ id: z.string().min(1).max(128), data: z.string().max(65536), format: z.enum(['raw', 'base64']).optional() })).max(8).optional();

// ---------------------------------------------------------------------------------------------
// NBD server

interface Served {
  id: string;
  filename: string;
  uri: string;
  readOnly: boolean;
  started: number;
  server: NbdServer;
  node: BlockNode;
  socketPath?: string;
}

const served = new Map<string, Served>();

export const nbdServeInput = z.object({
  image: z.object({ filename: z.string().min(1).max(4096), format: z.string().max(64).optional() }),
  /** 'unix': a socket (a fresh path in the temp folder unless given); 'tcp': 127.0.0.1 only. */
  transport: z.enum(['unix', 'tcp']).default('unix'),
  socketPath: z.string().min(1).max(107).optional(),
  /** 0 or absent: a free port chosen by the system. */
  port: z.number().int().min(0).max(65535).optional(),
  /** Read-only unless asked (qemu-nbd -r is the safe choice for an image on disk). */
  writable: z.boolean().optional(),
  exportName: z.string().max(256).optional(),
  /** Clients served at once (qemu-nbd -e; 0: unlimited). */
  shared: z.number().int().min(0).max(64).default(8),
  secrets: secretsField,
});

/** What the GUI shows of one server. */
export interface NbdServedInfo {
  id: string;
  filename: string;
  uri: string;
  readOnly: boolean;
  started: number;
  connections: NbdConnectionInfo[];
}

const describeServed = (s: Served): NbdServedInfo => ({ id: s.id, filename: s.filename, uri: s.uri, readOnly: s.readOnly, started: s.started, connections: s.server.connections() });

async function serveNbd(i: z.output<typeof nbdServeInput>, ctx: CallContext): Promise<NbdServedInfo> {
  const readOnly = !i.writable;
  const node = await openImage(i.image.filename, { ...(i.image.format ? { format: i.image.format } : {}), readOnly, secrets: ctx.env.secrets, warn: ctx.env.warn });
  const id = `nbd-${randomBytes(6).toString('hex')}`;
  const name = i.exportName ?? '';
  const server = new NbdServer({
    export: { node, name, readOnly, allocationDepth: false, discard: 'ignore', detectZeroes: 'off' },
    shared: i.shared,
    persistent: true,
  });
  try {
    let uri: string;
    let socketPath: string | undefined;
    if (i.transport === 'unix') {
      socketPath = i.socketPath ?? join(tmpdir(), `platter-${id}.sock`);
      if (existsSync(socketPath)) throw invalidArgument(`Something already exists at '${socketPath}': choose another socket path`);
      await server.listen({ path: socketPath });
      uri = nbdDisplayName({ server: { type: 'unix', path: socketPath }, exportName: name, tlsCreds: undefined, tlsHostname: undefined, dirtyBitmap: undefined });
    } else {
      const port = await server.listen({ host: '127.0.0.1', port: i.port ?? 0 });
      uri = `nbd://127.0.0.1:${port}${name ? `/${encodeURIComponent(name)}` : ''}`;
    }
    const s: Served = { id, filename: i.image.filename, uri, readOnly, started: Date.now(), server, node, ...(socketPath ? { socketPath } : {}) };
    served.set(id, s);
    return describeServed(s);
  } catch (e) {
    await server.close().catch(() => {});
    await node.close().catch(() => {});
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new BlockError('Io', `The address is in use: choose another port`);
    throw e;
  }
}

async function stopServed(s: Served): Promise<void> {
  served.delete(s.id);
  await s.server.close().catch(() => {});
  await s.node.close().catch(() => {});
  if (s.socketPath) {
    try {
      unlinkSync(s.socketPath);
    } catch {
      // gone already
    }
  }
}

/** Stop every server the app started (the app quits). */
export async function stopAllNbdServers(): Promise<void> {
  await Promise.all([...served.values()].map(stopServed));
}

// ---------------------------------------------------------------------------------------------
// NBD export list

export const nbdListExportsInput = z.object({ uri: z.string().min(1).max(4096) });

export interface NbdExportRow {
  name: string;
  description: string;
  size: number;
  readOnly: boolean;
  /** The name to open this export by. */
  uri: string;
}

async function listExports(uri: string): Promise<NbdExportRow[]> {
  const target = nbdTarget(parseNbdFilename(uri.trim()));
  if (target.tlsCreds) throw invalidArgument('Listing exports over TLS is not offered here: open the export by its name');
  const list = await listNbdExports({ server: target.server, timeoutMs: 10_000, label: uri });
  return list.map((e) => ({
    name: e.name,
    description: e.description,
    size: e.info.size,
    readOnly: (e.info.flags & 2) !== 0,
    uri: nbdDisplayName({ ...target, exportName: e.name }),
  }));
}

// ---------------------------------------------------------------------------------------------
// ssh folders

/** File name endings listed from a remote folder (the library's, core/api/library.ts). */
const IMAGE_NAME = /\.(qcow2|qcow|img|raw|vmdk|vdi|vhd|vhdx|vpc|qed|iso|luks|dmg|bochs|cloop|hdd|parallels|bin|disk)$/i;
const VMDK_EXTENT_NAME = /-(flat|s\d{3}|f\d{3})\.vmdk$/i;

/** Parsed ssh keys the user unlocked, by "user@host:port" (memory only, never written). */
const unlockedKeys = new Map<string, unknown>();
const keyId = (host: string, port: number | string, user: string) => `${user}@${host}:${Number(port)}`;
sshIdentities.forServer = (host, port, user) => unlockedKeys.get(keyId(host, port, user));

type Ssh2Utils = { parseKey(data: Buffer, passphrase?: string): unknown };
async function parseKey(): Promise<Ssh2Utils['parseKey']> {
  const mod = (await import('ssh2')) as { utils: Ssh2Utils; default?: { utils: Ssh2Utils } };
  return (mod.default ?? mod).utils.parseKey;
}

/** Unlock a key file for one server; the passphrase (a Buffer from the call's secrets) is zeroed. */
async function unlockKey(keyFile: string, server: { host: string; port: number | string; user: string }, passphrase: Buffer | undefined): Promise<void> {
  let data: Buffer;
  try {
    data = readFileSync(keyFile);
  } catch (e) {
    throw new BlockError('NotFound', `Could not read the key file '${keyFile}': ${(e as Error).message}`);
  }
  const parse = await parseKey();
  const key = parse(data, passphrase ? passphrase.toString('utf8') : undefined);
  if (passphrase) passphrase.fill(0);
  if (key instanceof Error) {
    const needs = /passphrase|encrypted|decrypt/i.test(key.message);
    throw new BlockError('Permission', needs ? (passphrase ? `Wrong passphrase for the key file '${keyFile}'` : `The key file '${keyFile}' needs its passphrase`) : `The key file '${keyFile}' is not a private key ssh can use`, {}, needs ? { code: 'WrongPassphrase' } : undefined);
  }
  unlockedKeys.set(keyId(server.host, server.port, server.user), Array.isArray(key) ? key[0] : key);
}

export const sshFolderInput = z.object({
  host: z.string().min(1).max(255),
  port: z.number().int().min(1).max(65535).default(22),
  user: z.string().max(64).optional(),
  path: z.string().min(1).max(4096),
  /** QEMU's host_key_check: yes (known_hosts), no, md5:HEX, sha1:HEX, sha256:HEX. */
  hostKeyCheck: z.string().max(256).default('yes'),
  keyFile: z.string().max(4096).optional(),
  /** The id of the key file's passphrase in `secrets`. */
  passphraseSecret: z.string().max(128).optional(),
  secrets: secretsField,
});

/** The library root naming an ssh folder (no secret in it; the key file is a path). */
export function sshFolderRoot(i: { host: string; port: number; user?: string | undefined; path: string; hostKeyCheck: string; keyFile?: string | undefined }): string {
  const dir = i.path.startsWith('/') ? i.path : `/${i.path}`;
  const user = i.user ? `${encodeURIComponent(i.user)}@` : '';
  const host = i.host.includes(':') ? `[${i.host}]` : i.host;
  const q = [`host_key_check=${encodeURIComponent(i.hostKeyCheck)}`, ...(i.keyFile ? [`key_file=${encodeURIComponent(i.keyFile)}`] : [])].join('&');
  return `ssh://${user}${host}:${i.port}${dir.endsWith('/') ? dir : `${dir}/`}?${q}`;
}

interface SshRoot {
  root: string;
  host: string;
  port: number;
  user: string | undefined;
  dir: string;
  hostKeyCheck: string;
  keyFile: string | undefined;
}

function parseSshRoot(root: string): SshRoot {
  const tree = parseSshUri(root);
  const loc = sshLocation(tree);
  const q = root.includes('?') ? new URLSearchParams(root.slice(root.indexOf('?') + 1)) : new URLSearchParams();
  return { root, host: loc.host, port: Number(loc.port), user: loc.user, dir: loc.path, hostKeyCheck: q.get('host_key_check') ?? 'yes', keyFile: q.get('key_file') ?? undefined };
}

const sshImageUri = (r: SshRoot, name: string) => `ssh://${r.user ? `${encodeURIComponent(r.user)}@` : ''}${r.host.includes(':') ? `[${r.host}]` : r.host}:${r.port}${r.dir}${encodeURIComponent(name)}?host_key_check=${encodeURIComponent(r.hostKeyCheck)}`;

async function listSshImages(r: SshRoot): Promise<{ name: string; uri: string; modified: number; size: number }[]> {
  if (r.keyFile && r.user !== undefined && !unlockedKeys.has(keyId(r.host, r.port, r.user))) await unlockKey(r.keyFile, { host: r.host, port: r.port, user: r.user }, undefined);
  const entries = await listSshDirectory({ host: r.host, port: String(r.port), path: r.dir, ...(r.user !== undefined ? { user: r.user } : {}), hostKeyCheck: legacyCheck(r.hostKeyCheck) });
  return entries.filter((e) => e.isFile && IMAGE_NAME.test(e.name) && !VMDK_EXTENT_NAME.test(e.name)).map((e) => ({ name: e.name, uri: sshImageUri(r, e.name), modified: e.modified, size: e.size }));
}

function legacyCheck(text: string) {
  return sshLocation({ host: 'x', path: '/', host_key_check: text }).hostKeyCheck;
}

async function sshFolder(i: z.output<typeof sshFolderInput>, ctx: CallContext): Promise<{ root: string; images: string[] }> {
  const root = sshFolderRoot(i);
  const r = parseSshRoot(root);
  if (i.keyFile) {
    if (!r.user) throw invalidArgument('Give the user name the key file belongs to');
    const pass = i.passphraseSecret && ctx.env.secrets.has(i.passphraseSecret) ? Buffer.from(ctx.env.secrets.get(i.passphraseSecret)) : undefined;
    await unlockKey(i.keyFile, { host: r.host, port: r.port, user: r.user }, pass);
  }
  const images = await listSshImages(r);
  return { root, images: images.map((x) => x.name) };
}

// ---------------------------------------------------------------------------------------------
// iSCSI browse

export const iscsiBrowseInput = z.object({
  portal: z.string().min(1).max(300),
  user: z.string().max(256).optional(),
  /** The id of the CHAP password in `secrets`. */
  passwordSecret: z.string().max(128).optional(),
  initiatorName: z.string().max(224).optional(),
  secrets: secretsField,
});

export interface IscsiTargetRow {
  name: string;
  addresses: string[];
  luns: { lun: number; type: string; vendor: string; product: string; size?: number; blockSize?: number; uri: string }[];
  /** Why the target's LUNs could not be listed (login refused, ...). */
  error?: string;
}

/** CHAP credentials that logged in to a target, kept for this run of the app in the iSCSI
 *  driver's in-memory configuration (an [iscsi "IQN"] section), so its LUNs added to the library
 *  open without a password in their name. Never written anywhere; gone when the app quits. An
 *  empty [iscsi] section stays first: other targets get no one else's credentials. */
function rememberChap(target: string, user: string, password: Buffer): void {
  const sections = currentIscsiConfig().filter((s) => s.id !== target);
  if (sections[0]?.id !== undefined || sections.length === 0) sections.unshift({ values: new Map() });
  sections.push({ id: target, values: new Map([['user', user], ['password', password.toString('utf8')]]) });
  setIscsiConfig(sections);
}

async function iscsiBrowse(i: z.output<typeof iscsiBrowseInput>, ctx: CallContext): Promise<IscsiTargetRow[]> {
  const password = i.passwordSecret && ctx.env.secrets.has(i.passwordSecret) ? ctx.env.secrets.get(i.passwordSecret) : undefined;
  const opts = { ...(i.user ? { user: i.user } : {}), ...(password ? { password } : {}), ...(i.initiatorName ? { initiatorName: i.initiatorName } : {}), timeoutMs: 15_000 };
  const portal = i.portal.trim();
  const targets = await discoverTargets(portal, opts);
  const out: IscsiTargetRow[] = [];
  for (const t of targets) {
    try {
      const luns = await listTargetLuns(portal, t.name, opts);
      // The LUN's name never carries the user or password (the library keeps names).
      out.push({ name: t.name, addresses: t.addresses, luns: luns.map((l) => ({ ...l, uri: `iscsi://${portal}/${t.name}/${l.lun}` })) });
      if (i.user && password) rememberChap(t.name, i.user, password);
    } catch (e) {
      out.push({ name: t.name, addresses: t.addresses, luns: [], error: serializeError(e).message });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Library rows of remote roots

/** Is this library root a remote name (scanned here) rather than a local path? */
export function isRemoteRoot(root: string): boolean {
  return /^(nbd(\+unix|\+tcp)?:|fat:|ssh:\/\/|iscsi:\/\/)/.test(root);
}

const isSshFolder = (root: string) => root.startsWith('ssh://') && /\/$/.test(root.split('?')[0]!);

/** A row's short name for a remote image. */
function remoteName(uri: string): string {
  if (uri.startsWith('fat:')) {
    const dir = uri.split(':').filter((p) => p !== '').pop() ?? uri;
    return `${basename(dir.replace(/\/+$/, '')) || dir} (fat)`;
  }
  if (uri.startsWith('iscsi://')) {
    const parts = uri.replace(/^iscsi:\/\/[^/]*\//, '').split('/');
    return `${parts[0] ?? ''} LUN ${parts[1] ?? ''}`;
  }
  if (uri.startsWith('nbd')) {
    try {
      const t = nbdTarget(parseNbdFilename(uri));
      return t.exportName ? `${t.exportName} (nbd)` : `${t.server.type === 'unix' ? basename(t.server.path) : `${t.server.host}:${t.server.port}`} (nbd)`;
    } catch {
      return uri;
    }
  }
  return basename(uri.split('?')[0]!);
}

async function describeRemote(service: PlatterService, uri: string, root: string, facts: { name?: string; dir?: string; modified?: number } = {}): Promise<LibraryEntry> {
  const base: LibraryEntry = { path: uri, name: facts.name ?? remoteName(uri), dir: facts.dir ?? uri, root, snapshots: [], lock: 'unknown', modified: facts.modified ?? 0 };
  try {
    const info = (await service.info({ image: { filename: uri, ...(uri.startsWith('fat:') || uri.startsWith('nbd') ? {} : { forceShare: true }) } })) as ImageInfo;
    return entryFacts(base, info);
  } catch (e) {
    return { ...base, error: serializeError(e) };
  }
}

/** The rows of the remote roots among a library's (ssh folders listed, the rest one row each). */
export async function scanRemoteRoots(service: PlatterService, roots: string[]): Promise<LibraryEntry[]> {
  const out: LibraryEntry[] = [];
  for (const root of roots) {
    if (isSshFolder(root)) {
      let r: SshRoot;
      try {
        r = parseSshRoot(root);
        const images = await listSshImages(r);
        // A few at once (each is its own ssh connection), rows kept in the folder's order.
        const rows: LibraryEntry[] = new Array(images.length);
        let next = 0;
        const worker = async () => {
          while (next < images.length) {
            const k = next++;
            const img = images[k]!;
            rows[k] = await describeRemote(service, img.uri, root, { name: img.name, dir: root.split('?')[0]!, modified: img.modified });
          }
        };
        await Promise.all(Array.from({ length: Math.min(4, images.length) }, worker));
        out.push(...rows);
      } catch (e) {
        // The folder itself could not be read: one row that says why.
        out.push({ path: root, name: root.split('?')[0]!, dir: root.split('?')[0]!, root, snapshots: [], lock: 'unknown', modified: 0, error: serializeError(e) });
      }
    } else out.push(await describeRemote(service, root, root));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The router entries (spread into appRouter)

export const remoteRoutes = {
  /** Serve an image over NBD from the app (read-only unless asked); answers its URI. */
  nbdServe: query(nbdServeInput, serveNbd),
  /** The NBD servers the app runs, with who is connected. */
  nbdServers: query(z.object({}).optional(), (): NbdServedInfo[] => [...served.values()].map(describeServed)),
  /** Stop one NBD server (its clients are disconnected, the image closed). */
  nbdStop: query(z.object({ id: z.string().min(1).max(64) }), async (i) => {
    const s = served.get(i.id);
    if (!s) return false;
    await stopServed(s);
    return true;
  }),
  /** The exports of an NBD server (NBD_OPT_LIST), each with its size and URI. */
  nbdListExports: query(nbdListExportsInput, (i) => listExports(i.uri)),
  /** Check an ssh folder (unlocking its key file for this app run) and list its images. */
  sshFolder: query(sshFolderInput, sshFolder),
  /** SendTargets discovery at a portal, and each target's LUNs with their sizes. */
  iscsiBrowse: query(iscsiBrowseInput, iscsiBrowse),
};

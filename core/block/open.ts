// Opening and creating images: the one probe-and-dispatch entry point (cloud-hypervisor's
// open_disk; QEMU's bdrv_open). Builds the node graph: format node -> file (protocol) child, and
// the backing chain below it, with permissions/locks computed as QEMU does.

import { MAX_EXACT_SIZE } from '../util/checked.ts';
import { basename, dirname, isAbsolute, resolve, relative, sep } from 'node:path';
import { realpathSync, rmSync } from 'node:fs';
import { BlockError, invalidArgument, invalidImage, notFound, unsupported } from '../errors.ts';
import { BlockNode } from './node.ts';
import type { FormatDriver, NodeImpl, OpenContext, ProtocolDriver, CreateContext } from './types.ts';
import { PROBE_BYTES } from './types.ts';
import { parseDottedOptions, parseJsonFilename, optBool, optString, type OptionsTree } from './options-tree.ts';
import { pathCombine, protocolPrefix, protocolTreeForFilename, stripFilePrefix } from './filename.ts';
import { backingChildPerms, dataChildPerms, filterChildPerms, PROBE_PERMS, rootPerms, storageChildPerms, type PermPair } from './permissions.ts';
import { SecretStore } from './secrets.ts';
import { sharedWorkerPool, type WorkerPool } from '../workers/pool.ts';
import { findFormat, findProtocol, formatDrivers } from './registry.ts';
import { checkDeferred, parseOptions, withDefaults, type OptionValues } from './options-schema.ts';

export interface OpenImageOptions {
  /** Format name (-f); probed when absent. */
  format?: string;
  /** A format driver's error as it is, without "Could not open 'x': " in front (QEMU's bdrv_open
   *  errors before qemu-img adds that: the backing file of a new image). */
  bareDriverErrors?: boolean;
  /** Opening again an image that was open read-only, now to write (QEMU reopens the node): no
   *  open-time warnings a second time. */
  reopen?: boolean;
  /** The image qemu-img itself opens (img_open): every failure reads "Could not open 'x': "
   *  before the cause, even a cause that says the same (file-posix's own "Could not open 'x':
   *  No such file or directory"), as qemu-img prints it. */
  qemuImgPrefix?: boolean;
  readOnly?: boolean;
  /** -U / force-share: take no locks that stop other writers. Requires readOnly. */
  forceShare?: boolean;
  /** Do not open the backing chain (qemu-img info without --backing-chain). */
  noBacking?: boolean;
  /** Opened by qemu-img check (QEMU's BDRV_O_CHECK): the check repairs, not the open. */
  forCheck?: boolean;
  /** Open to describe only (OpenContext.noIo; qemu-img info). */
  noIo?: boolean;
  /** The spec is --image-opts dotted text. */
  imageOpts?: boolean;
  /** Extra permissions the caller needs (PERM_RESIZE for resize). */
  extraPerm?: number;
  /** QEMU's BDRV_O_NO_SHARE: let others only read (qemu-img convert's source). Default: on for
   *  read-write opens, off for read-only ones (see permissions.ts rootPerms). */
  noShare?: boolean;
  secrets?: SecretStore;
  workers?: WorkerPool;
  warn?: (message: string) => void;
  /** Options for the file child merged into the tree (e.g. {locking: 'off', cache: ...}). */
  fileOptions?: OptionsTree;
  /** Overrides the backing format recorded in the image (for probing a missing record). */
  backingFormat?: string;
  /** Internal: canonical paths already in the chain (loop detection). */
  chainSeen?: Set<string>;
  /** Internal: permissions this node must take (set for backing nodes). */
  perms?: PermPair;
}

/** How deep a backing chain may go before we call it a loop or an attack (QEMU has no fixed cap;
 *  1000 is far past any real chain and bounds recursion). */
export const MAX_BACKING_DEPTH = 1000;

function defaultWarn(message: string): void {
  process.stderr.write(`${message}\n`);
}

/**
 * A filter at the top of an image spec whose options change nothing its child would show (the
 * view qemu-img map and convert take through QEMU's bdrv_skip_filters): blkdebug with
 * request-limit options only opens as the image it filters. With rules (inject-error, config,
 * set-state) it stays a node of its own: the blkdebug protocol under the image's format.
 */
const SKIPPED_FILTERS: Record<string, { limits: readonly string[] }> = {
  blkdebug: {
    limits: ['align', 'max-transfer', 'opt-write-zero', 'max-write-zero', 'opt-discard', 'max-discard', 'take-child-perms', 'unshare-child-perms'],
  },
};

/** The child to open in place of a skipped filter (SKIPPED_FILTERS), or undefined. */
function skippedFilterChild(tree: OptionsTree): OptionsTree | string | undefined {
  const name = typeof tree.driver === 'string' ? tree.driver : undefined;
  const filter = name !== undefined ? SKIPPED_FILTERS[name] : undefined;
  if (!filter) return undefined;
  for (const k of Object.keys(tree)) {
    if (k === 'driver' || k === 'image' || k === 'x-image' || filter.limits.includes(k)) continue;
    return undefined;
  }
  const image = tree.image ?? tree['x-image'];
  if (typeof image === 'string' || (typeof image === 'object' && image !== null && !Array.isArray(image))) return image as OptionsTree | string;
  throw invalidArgument(`Parameter 'image' is required for ${name}`);
}

/** Build the options tree for a user's image spec. */
export function optionsTreeFor(spec: string | OptionsTree, opts: Pick<OpenImageOptions, 'format' | 'imageOpts' | 'fileOptions'>): OptionsTree {
  let tree: OptionsTree;
  if (typeof spec !== 'string') tree = structuredClone(spec);
  else if (opts.imageOpts) tree = parseDottedOptions(spec);
  else if (spec.startsWith('json:')) tree = parseJsonFilename(spec);
  else tree = { file: { filename: spec } };
  if (opts.format) {
    if (tree.driver && tree.driver !== opts.format) throw invalidArgument(`Cannot use format '${opts.format}' with driver '${String(tree.driver)}'`);
    tree.driver = opts.format;
  }
  // A tree whose top driver is a protocol (driver=file,filename=x / driver=nbd,...) gets a
  // format layer on top, as qemu-img does.
  if (typeof tree.driver === 'string' && findProtocol(tree.driver)) {
    const { driver, ...rest } = tree;
    tree = { file: { driver, ...rest } };
  }
  // "filename" at the top means the file child's filename.
  if (typeof tree.filename === 'string' && tree.file === undefined) {
    tree.file = { filename: tree.filename };
    delete tree.filename;
  }
  if (typeof tree.file === 'string') tree.file = { filename: tree.file };
  if (tree.file === undefined) throw invalidArgument('A filename or a file child is required');
  if (opts.fileOptions) Object.assign(tree.file as OptionsTree, opts.fileOptions);
  // cache=none / cache.direct=on given for the image applies to its file (QEMU passes the cache
  // options down to the protocol node, which is the one that opens with O_DIRECT).
  if (tree.cache !== undefined && typeof tree.file === 'object' && !Array.isArray(tree.file)) {
    const file = tree.file as OptionsTree;
    if (file.cache === undefined) file.cache = tree.cache;
    delete tree.cache;
  }
  return tree;
}

/** Open an image (format node over a protocol node, plus its backing chain). */
export async function openImage(spec: string | OptionsTree, opts: OpenImageOptions = {}): Promise<BlockNode> {
  const readOnly = opts.readOnly ?? false;
  const forceShare = opts.forceShare ?? false;
  if (forceShare && !readOnly) throw invalidArgument('force-share=on can only be used with read-only images');
  const warn = opts.warn ?? defaultWarn;
  const secrets = opts.secrets ?? new SecretStore();
  const workers = opts.workers ?? sharedWorkerPool();
  // A filter Platter skips: open what it filters instead.
  if (typeof spec !== 'string' || spec.startsWith('json:') || opts.imageOpts) {
    let raw: OptionsTree | undefined;
    try {
      raw = typeof spec !== 'string' ? spec : opts.imageOpts ? parseDottedOptions(spec) : parseJsonFilename(spec);
    } catch {
      raw = undefined; // the usual path below words the error
    }
    const child = raw ? skippedFilterChild(raw) : undefined;
    if (child !== undefined) {
      const { imageOpts: _i, ...rest } = opts;
      return openImage(child, rest);
    }
  }
  let tree: OptionsTree;
  try {
    tree = optionsTreeFor(spec, opts);
  } catch (e) {
    // A json: name that does not parse: "Could not open 'json:...': Could not parse ..." as QEMU.
    throw typeof spec === 'string' && spec.startsWith('json:') ? prefixOpenError(e, spec) : e;
  }
  const fileTree = resolveProtocolTree(tree.file as OptionsTree);
  const displayName = displayFilename(typeof spec === 'string' && !opts.imageOpts ? spec : undefined, fileTree, tree);
  // Failures name the image as typed (QEMU's bdrv_open), even where the node is shown under the
  // name its protocol gives it (nbd).
  // (--image-opts: the options as typed, as qemu-img prints them.)
  const openName = typeof spec === 'string' && opts.imageOpts ? spec : displayFilename(typeof spec === 'string' ? spec : undefined, fileTree, tree, false);
  /** An open failure as it leaves this function (qemu-img's prefix for the image it opens). */
  const failed = (e: unknown): unknown => (opts.qemuImgPrefix ? qemuImgOpenError(e, openName) : opts.bareDriverErrors ? e : prefixOpenError(e, openName));

  const perms = opts.perms ?? rootPerms(readOnly, forceShare, opts.extraPerm, opts.noShare ?? !readOnly);
  const childEnv: ChildEnv = { warn, secrets, workers, forceShare };
  let formatName = typeof tree.driver === 'string' ? tree.driver : undefined;
  let formatDriver: FormatDriver | undefined;
  if (formatName !== undefined) {
    formatDriver = findFormat(formatName);
    if (!formatDriver) throw failed(unsupported(`Unknown driver '${formatName}'`, { path: displayName }));
  }
  if (formatDriver?.readOnlyFormat && !readOnly) {
    throw failed(new BlockError('Permission', `Driver '${formatDriver.name}' can only be used for read-only devices`, { path: displayName }));
  }

  // The protocol node: perms for a filter (raw) or storage child, known once the format is.
  const childPerms = (fmt: FormatDriver | undefined): PermPair =>
    fmt?.name === 'raw' ? filterChildPerms(perms) : storageChildPerms(perms, !readOnly, forceShare);
  let file: BlockNode;
  try {
    file = await openProtocol(fileTree, displayName, readOnly, formatDriver ? childPerms(formatDriver) : PROBE_PERMS, childEnv);
  } catch (e) {
    // The protocol's own words ("Could not open 'x': No such file or directory"), then qemu-img's.
    throw failed(e instanceof BlockError && e.kind === 'Locked' ? e : prefixOpenError(e, displayName));
  }
  try {
    let probedRaw = false;
    if (!formatDriver) {
      const probed = await probeFormat(file, displayName);
      formatDriver = probed.driver;
      probedRaw = probed.raw;
      formatName = formatDriver.name;
      if (formatDriver.readOnlyFormat && !readOnly) {
        throw new BlockError('Permission', `Driver '${formatDriver.name}' can only be used for read-only devices`, { path: displayName });
      }
      // The guessed format decides the child's role; reopen with its permissions when they differ.
      const want = childPerms(formatDriver);
      const had = PROBE_PERMS;
      if (want.perm !== had.perm || want.shared !== had.shared) {
        await file.close();
        file = await openProtocol(fileTree, displayName, readOnly, want, childEnv);
      }
      // QEMU warns only when the guessed-raw image is writable (qemu-img info stays quiet).
      if (probedRaw && !readOnly && !opts.reopen) {
        warn(
          `WARNING: Image format was not specified for '${displayName}' and probing guessed raw.\n` +
            `         Automatically detecting the format is dangerous for raw images, write operations on block 0 will be restricted.\n` +
            `         Specify the 'raw' format explicitly to remove the restrictions.`,
        );
      }
    }
    const driver = formatDriver!;
    const formatOptions: OptionsTree = { ...tree };
    delete formatOptions.driver;
    delete formatOptions.file;
    delete formatOptions.backing;
    if (probedRaw) formatOptions['x-probed'] = true;

    let node: BlockNode | undefined;
    const siblings: BlockNode[] = [];
    const ctx: OpenContext = {
      filename: displayName,
      options: formatOptions,
      readOnly,
      secrets,
      workers,
      warn,
      noBacking: opts.noBacking ?? false,
      forCheck: opts.forCheck ?? false,
      ...(opts.noIo ? { noIo: true } : {}),
      readBacking: async (offset, length) => {
        const b = node?.backing;
        if (!b || offset >= b.size) return Buffer.alloc(length);
        if (offset + length <= b.size) return b.read(offset, length);
        const out = Buffer.alloc(length);
        (await b.read(offset, b.size - offset)).copy(out, 0);
        return out;
      },
      backing: () => node?.backing,
      openSibling: async (name, o) => {
        const siblingReadOnly = o?.readOnly ?? readOnly;
        const child = await openSiblingFile(displayName, fileTree, name, siblingReadOnly, dataChildPerms(perms, !siblingReadOnly, forceShare), warn);
        siblings.push(child);
        return child;
      },
    };
    let impl: NodeImpl;
    try {
      impl = await driver.open(file, ctx);
    } catch (e) {
      for (const s of siblings) await s.close().catch(() => {});
      throw e;
    }
    node = new BlockNode({ driver, impl, filename: displayName, readOnly, file, children: siblings, options: formatOptions, openedWith: tree });
    try {
      await openBackingChain(node, tree, fileTree, { ...opts, secrets, workers, warn }, perms);
    } catch (e) {
      await node.close().catch(() => {});
      throw e;
    }
    return node;
  } catch (e) {
    if (!file.closed) await file.close().catch(() => {});
    throw failed(e);
  }
}

/** "Could not open 'x': cause" always (qemu-img's own prefix over whatever the cause says). */
function qemuImgOpenError(e: unknown, name: string): unknown {
  if (!(e instanceof BlockError) || e.kind === 'Cancelled' || BARE_ERRORS.has(e)) return e;
  const err = new BlockError(e.kind, `Could not open '${name}': ${e.message}`, { ...e.context, path: e.context.path ?? name }, { cause: e.cause, ...(e.hint ? { hint: e.hint } : {}) });
  err.stack = e.stack;
  return err;
}

/** "Could not open 'x': cause", applied once (a node's own open failure). */
/** Errors qemu-img prints as they are, with no image named in front: a backing chain that loops
 *  (qemu-img's own chain walk reports it, collect_image_info_list). */
const BARE_ERRORS = new WeakSet<BlockError>();

/** Open failures of a protocol QEMU words without naming the file (ProtocolDriver.bareOpenErrors). */
const PROTOCOL_WORDED = new WeakSet<BlockError>();

/** qemu-img's "Could not open 'x': cause" shape, applied once. */
function prefixOpenError(e: unknown, name: string): unknown {
  if (!(e instanceof BlockError) || BARE_ERRORS.has(e)) return e;
  if (e.message.startsWith('Could not open') || e.kind === 'Cancelled' || PROTOCOL_WORDED.has(e)) return e;
  const err = new BlockError(e.kind, `Could not open '${name}': ${e.message}`, { ...e.context, path: e.context.path ?? name }, { cause: e.cause, ...(e.hint ? { hint: e.hint } : {}) });
  err.stack = e.stack;
  return err;
}

async function openBackingChain(node: BlockNode, tree: OptionsTree, fileTree: OptionsTree, opts: OpenImageOptions, perms: PermPair): Promise<void> {
  const backingSpec = tree.backing;
  if (backingSpec === null || (typeof backingSpec === 'string' && backingSpec === '')) return; // backing: null disables
  if (opts.noBacking) return;
  const seen = opts.chainSeen ?? new Set<string>();
  const self = canonicalPath(fileTree);
  if (self) seen.add(self);
  if (seen.size > MAX_BACKING_DEPTH) throw invalidImage(`Backing chain is deeper than ${MAX_BACKING_DEPTH} images`);
  const childPerms = backingChildPerms(perms);
  const childOpts: OpenImageOptions = {
    readOnly: true,
    forceShare: opts.forceShare ?? false,
    secrets: opts.secrets!,
    workers: opts.workers!,
    warn: opts.warn!,
    chainSeen: seen,
    perms: childPerms,
    ...(opts.noIo ? { noIo: true } : {}),
  };
  if (backingSpec !== undefined && typeof backingSpec === 'object') {
    node.backing = await openImage(backingSpec as OptionsTree, childOpts);
    return;
  }
  const meta = node.impl.backingFile;
  if (!meta) return;
  // Relative to the file at the bottom of the image's file chain (QEMU's bdrv_dirname), which a
  // filter such as blkdebug does not hide.
  const base = node.baseFile;
  const baseName = base?.filename ?? (typeof fileTree.filename === 'string' ? fileTree.filename : node.filename);
  const full = resolveBackingFilename(node.filename, { driver: 'file', filename: baseName }, meta.filename);
  // Named as QEMU names it (path_combine with the image's name as given: "b.qcow2", not an
  // absolute path) wherever that name cannot be mistaken for a protocol.
  const shown = isAbsolute(meta.filename) || full.startsWith('json:') ? full : pathCombine(baseName, meta.filename);
  const canonical = canonicalPath(full.startsWith('json:') ? jsonTree(full) : { driver: 'file', filename: full });
  if (canonical && seen.has(canonical)) {
    const loop = invalidImage(`Backing file '${shown}' creates an infinite loop.`, { path: node.filename });
    BARE_ERRORS.add(loop);
    throw loop;
  }
  const openAs = shown !== full && resolve(shown) === full && protocolPrefix(shown) === undefined && !shown.startsWith('json:') ? shown : full;
  try {
    node.backing = await openImage(openAs, { ...childOpts, format: opts.backingFormat ?? meta.format });
  } catch (e) {
    if (e instanceof BlockError && BARE_ERRORS.has(e)) throw e;
    const msg = e instanceof BlockError ? e.message : String(e);
    throw new BlockError(e instanceof BlockError ? e.kind : 'Io', `Could not open backing file: ${msg}`, { path: node.filename }, { cause: e });
  }
}

/**
 * Where a backing file named in image metadata lives: relative names are relative to the image's
 * directory (QEMU's bdrv_get_full_backing_filename); a json: name is used as it is. Metadata may
 * name only what checkMetadataBackingName allows (docs/security.md).
 */
export function resolveBackingFilename(imageName: string, fileTree: OptionsTree, backing: string): string {
  checkMetadataBackingName(imageName, backing);
  if (backing.startsWith('json:') || isAbsolute(backing)) return backing;
  const base = typeof fileTree.filename === 'string' ? fileTree.filename : imageName;
  return resolve(dirname(base), backing);
}

/** Drivers a json: backing name in image metadata may use: every format (each reads only its own
 *  children, which this rule checks too), local files, and blkdebug (error injection over them,
 *  as QEMU's iotests write into images). Nothing here reaches the network or a device. */
const METADATA_JSON_PROTOCOLS = new Set(['file', 'blkdebug']);
/** blkdebug options that would make Platter read a file the image names (its config file). */
const METADATA_JSON_REFUSED_KEYS = new Set(['config']);

/**
 * The rule for backing names read from image metadata (CVE-2024-4467 family; docs/security.md):
 * a plain path, or a json: name whose every node is a format, a local file or blkdebug, with no
 * filename that names a protocol (nbd://, ssh://, ...) and no blkdebug config file. Anything else
 * must come from the user (the command line, --image-opts), not from a file being opened.
 */
function checkMetadataBackingName(imageName: string, backing: string): void {
  const refuse = () =>
    unsupported(
      `Backing file '${backing}' names a protocol or json: options beyond formats over local files and blkdebug; Platter follows from image metadata only plain backing files and such json: names (pass it explicitly with --image-opts to use it)`,
      { path: imageName },
    );
  if (!backing.startsWith('json:')) {
    if (protocolPrefix(backing) !== undefined) throw refuse();
    return;
  }
  // One that does not parse opens nothing: opening it fails with QEMU's parse error.
  const tree = jsonTree(backing);
  const visit = (v: unknown, key: string): void => {
    if (typeof v === 'string') {
      // Every name in the tree must be a plain path: a string that looks like a URL or a nested
      // json: could name a protocol wherever a driver parses it as a filename.
      if (v.startsWith('json:') || (protocolPrefix(v) !== undefined && key !== 'driver')) throw refuse();
      return;
    }
    if (v === null || typeof v !== 'object') return;
    if (Array.isArray(v)) {
      for (const item of v) visit(item, key);
      return;
    }
    const obj = v as OptionsTree;
    const driver = obj.driver;
    if (driver !== undefined) {
      if (typeof driver !== 'string' || (!findFormat(driver) && !METADATA_JSON_PROTOCOLS.has(driver))) throw refuse();
      if (driver === 'blkdebug' && Object.keys(obj).some((k) => METADATA_JSON_REFUSED_KEYS.has(k))) throw refuse();
    }
    for (const [k, child] of Object.entries(obj)) visit(child, k);
  };
  visit(tree, '');
}

/** The real path of the file at the bottom of an options tree (through formats' `file` and
 *  filters' `image` children), for loop detection; undefined when there is none. */
function canonicalPath(tree: OptionsTree): string | undefined {
  let t: OptionsTree | undefined = tree;
  // Bounded: a json: name nests a few levels, never more than this.
  for (let depth = 0; t && depth < MAX_TREE_DEPTH; depth++) {
    const driver = t.driver;
    if ((driver === undefined || driver === 'file') && typeof t.filename === 'string') {
      if (driver === undefined && protocolPrefix(t.filename) !== undefined) return undefined;
      try {
        return realpathSync(t.filename);
      } catch {
        return resolve(t.filename);
      }
    }
    const next: unknown = t.image ?? t['x-image'] ?? t.file;
    t = typeof next === 'string' ? { filename: next } : next && typeof next === 'object' && !Array.isArray(next) ? (next as OptionsTree) : undefined;
  }
  return undefined;
}

/** A json: name's tree; an empty one when it does not parse (opening it reports why). */
function jsonTree(name: string): OptionsTree {
  try {
    return parseJsonFilename(name);
  } catch {
    return {};
  }
}

/** How deep canonicalPath follows nested children. */
const MAX_TREE_DEPTH = 16;

/** The real path (symlinks followed); for a path not created yet, its nearest existing parent's
 *  real path plus the rest (so a symlinked directory on the way still counts). */
function realOrSelf(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    const parent = dirname(path);
    return parent === path ? path : resolve(realOrSelf(parent), basename(path));
  }
}

function resolveProtocolTree(fileTree: OptionsTree): OptionsTree {
  if (typeof fileTree.driver === 'string') {
    if (!findProtocol(fileTree.driver)) {
      if (findFormat(fileTree.driver)) return fileTree; // a format over a format (e.g. luks over raw)
      throw unsupported(`Unknown protocol '${fileTree.driver}'`);
    }
    return fileTree;
  }
  const filename = optString(fileTree, 'filename');
  if (filename === undefined) throw invalidArgument('A filename is required');
  if (filename === '') throw invalidArgument("The 'file' block driver requires a file name");
  const base = protocolTreeForFilename(filename, (n) => findProtocol(n));
  return { ...fileTree, ...base };
}

function displayFilename(given: string | undefined, fileTree: OptionsTree, tree?: OptionsTree, refreshed = true): string {
  // A json: name that says no more than "this format on this file" is shown as the file's name
  // (QEMU's bdrv_refresh_filename reconstructs it so).
  // (The file's options as given: a filter skipped in its place, say, keeps the name a json: one.)
  const givenFile = tree && typeof tree.file === 'object' && tree.file !== null && !Array.isArray(tree.file) ? (tree.file as OptionsTree) : fileTree;
  if (given?.startsWith('json:') && tree && Object.keys(tree).every((k) => k === 'driver' || k === 'file') && fileTree.driver === 'file' && typeof fileTree.filename === 'string' && (givenFile.driver === undefined || givenFile.driver === 'file') && Object.keys(givenFile).every((k) => k === 'driver' || k === 'filename')) {
    return fileTree.filename;
  }
  // A protocol that names its nodes itself (nbd's URI) is shown so, whatever form was typed.
  const proto = typeof fileTree.driver === 'string' ? findProtocol(fileTree.driver) : undefined;
  if (refreshed && proto?.displayName && (given === undefined || !given.startsWith('json:') || Object.keys(tree ?? {}).every((k) => k === 'driver' || k === 'file'))) {
    try {
      const { driver: _d, ...o } = fileTree;
      const name = proto.displayName(o);
      if (name !== undefined) return name;
    } catch {
      // bad options: the open words the error
    }
  }
  // A "file:" name shows as the file it names (QEMU's refreshed filename of the file node).
  if (given !== undefined && fileTree.driver === 'file' && typeof fileTree.filename === 'string' && protocolPrefix(given) === 'file') return fileTree.filename;
  if (given !== undefined) return given;
  if (typeof fileTree.filename === 'string') return fileTree.filename;
  return `json:${JSON.stringify(fileTree)}`;
}

/** What a node opened below another inherits from the open that made it. */
interface ChildEnv {
  warn: (m: string) => void;
  secrets?: SecretStore;
  workers?: WorkerPool;
  forceShare?: boolean;
}

async function openProtocol(fileTree: OptionsTree, displayName: string, readOnly: boolean, perms: PermPair, env: ChildEnv, nodeName?: string): Promise<BlockNode> {
  const driverName = String(fileTree.driver);
  const proto = findProtocol(driverName);
  if (!proto) {
    const fmt = findFormat(driverName);
    if (fmt) {
      // Nested formats (json:{"driver":"luks","file":{"driver":"raw",...}}) open as images.
      return openImage(fileTree, { readOnly, perms, warn: env.warn, ...(env.forceShare && readOnly ? { forceShare: true } : {}), ...(env.secrets ? { secrets: env.secrets } : {}), ...(env.workers ? { workers: env.workers } : {}) });
    }
    throw unsupported(`Unknown protocol '${driverName}'`, { path: displayName });
  }
  const { driver: _d, ...options } = fileTree;
  // Children a filter or quorum opens (ProtocolOpenContext.openChild); closed with the node, or
  // here when its open fails.
  let file: BlockNode | undefined;
  const children: BlockNode[] = [];
  const openChild = async (spec: OptionsTree | string, role: 'file' | 'child', extra: { perm?: number; unshare?: number } = {}): Promise<BlockNode> => {
    if (role === 'file' && file) throw invalidArgument(`Driver '${driverName}' opened two primary children`, { path: displayName });
    const tree: OptionsTree = typeof spec === 'string' ? { filename: spec } : { ...spec };
    // Cache options reach every node below (QEMU's bdrv_inherited_options).
    if (tree.cache === undefined && options.cache !== undefined) tree.cache = options.cache;
    const base = filterChildPerms(perms);
    const childPerms: PermPair = { perm: base.perm | (extra.perm ?? 0), shared: env.forceShare ? base.shared : base.shared & ~(extra.unshare ?? 0) };
    const child = await openProtocol(resolveProtocolTree(tree), displayName, readOnly, childPerms, env);
    if (role === 'file') file = child;
    else children.push(child);
    return child;
  };
  let impl: NodeImpl;
  try {
    impl = await proto.open({ filename: String(fileTree.filename ?? displayName), options, readOnly, perm: perms.perm, sharedPerm: perms.shared, warn: env.warn, openChild });
  } catch (e) {
    for (const c of [...children, ...(file ? [file] : [])]) await c.close().catch(() => {});
    if (proto.bareOpenErrors && e instanceof BlockError) PROTOCOL_WORDED.add(e);
    throw e;
  }
  let shown: string | undefined;
  try {
    shown = proto.displayName?.(options);
  } catch {
    shown = undefined;
  }
  return new BlockNode({ driver: proto, impl, filename: nodeName ?? shown ?? String(fileTree.filename ?? displayName), readOnly, options, ...(file ? { file } : {}), children });
}

/** Probe the format from the first bytes (QEMU's find_image_format: best score wins, raw last). */
export async function probeFormat(file: BlockNode, displayName: string): Promise<{ driver: FormatDriver; raw: boolean }> {
  const n = Math.min(PROBE_BYTES, file.size);
  const head = n > 0 ? await file.read(0, n) : Buffer.alloc(0);
  if (file.size === 0) {
    // QEMU probes an empty file as raw, too.
  }
  let best: FormatDriver | undefined;
  let bestScore = 0;
  for (const d of formatDrivers()) {
    if (!d.probe || d.name === 'raw') continue;
    const score = d.probe(head, displayName);
    if (score > bestScore) {
      best = d;
      bestScore = score;
    }
  }
  if (best) return { driver: best, raw: false };
  const raw = findFormat('raw');
  if (!raw) throw unsupported('raw format driver missing');
  return { driver: raw, raw: true };
}

/**
 * Open a file named by image metadata (vmdk extent, data file). Rules (docs/security.md): a plain
 * relative or absolute path, no protocol prefix or json:, and it must stay inside the image's
 * directory tree (no "..", no absolute path elsewhere) unless it is the image's own directory.
 */
async function openSiblingFile(imageName: string, imageFileTree: OptionsTree, name: string, readOnly: boolean, perms: PermPair, warn: (m: string) => void): Promise<BlockNode> {
  if (name.startsWith('json:') || protocolPrefix(name) !== undefined) {
    throw unsupported(`'${name}' names a protocol or json: options; image metadata may only name plain files`, { path: imageName });
  }
  if (imageFileTree.driver !== 'file' || typeof imageFileTree.filename !== 'string') {
    // QEMU resolves a relative name against bdrv_dirname of the image's file, which only a plain
    // file has. (op 'dirname' lets a format word the error as QEMU does.)
    if (!isAbsolute(name)) throw unsupported(`Cannot generate a base directory for ${String(imageFileTree.driver)} nodes`, { path: imageName, op: 'dirname' });
    throw unsupported(`Cannot open '${name}' next to an image that is not a plain file`, { path: imageName });
  }
  const dir = dirname(resolve(imageFileTree.filename));
  const full = resolve(dir, name);
  const rel = relative(dir, full);
  if (rel === '' || rel.startsWith('..' + sep) || rel === '..' || isAbsolute(rel)) {
    throw new BlockError('Permission', `'${name}' is outside the image's directory; Platter opens only files next to the image that names them`, { path: imageName });
  }
  // A symlink inside the directory may lead anywhere (CVE-2022-47951): check where it really goes.
  const realRel = relative(realOrSelf(dir), realOrSelf(full));
  if (realRel === '' || realRel.startsWith('..' + sep) || realRel === '..' || isAbsolute(realRel)) {
    throw new BlockError('Permission', `'${name}' is a link that leads outside the image's directory; Platter opens only files next to the image that names them`, { path: imageName });
  }
  try {
    // Shown (map, info, errors) as QEMU names it: path_combine with the image's name as given.
    return await openProtocol({ driver: 'file', filename: full }, full, readOnly, perms, { warn }, pathCombine(imageFileTree.filename, name));
  } catch (e) {
    if (e instanceof BlockError && e.kind === 'NotFound') throw notFound(`Could not open '${full}': No such file or directory`, { path: full });
    throw e;
  }
}

export interface CreateImageOptions {
  format: string;
  filename: string;
  /** Virtual size in bytes; taken from the backing file when absent. */
  size?: number;
  /** -o text or values (validated against the driver's schema). */
  options?: string | OptionValues;
  secrets?: SecretStore;
  workers?: WorkerPool;
  warn?: (m: string) => void;
  signal?: AbortSignal;
  /** -u: do not open the backing file to check it (size must be given). */
  unsafeBacking?: boolean;
  /** Called once the options, the backing file and the size are checked, before anything is
   *  written (where qemu-img prints its "Formatting" line). */
  onValidated?: (size: number) => void;
  /** The name the image will carry when `filename` is a staging name (core/jobs/staging.ts):
   *  what the image records about itself and derives sibling names from (vmdk extents). */
  finalName?: string;
}

/** Create a new image (qemu-img create). Returns the parsed options actually used. */
export async function createImage(o: CreateImageOptions): Promise<OptionValues> {
  const driver = findFormat(o.format);
  if (!driver) throw unsupported(`Unknown file format '${o.format}'`);
  if (!driver.create) throw unsupported(`Format driver '${o.format}' does not support image creation`);
  const warn = o.warn ?? defaultWarn;
  const secrets = o.secrets ?? new SecretStore();
  const workers = o.workers ?? sharedWorkerPool();
  const values = withDefaults(driver.createOptions, parseOptions(driver.createOptions, typeof o.options === 'string' || o.options === undefined ? (o.options ?? '') : (o.options as Record<string, string | number | boolean>), '', { deferChecks: true }));

  let size = o.size;
  let backing: BlockNode | undefined;
  // The file protocol takes "file:" names without their prefix (raw_co_create_opts).
  const path = stripFilePrefix(o.filename);
  const backingFile = values['backing_file'];
  const backingFmt = typeof values['backing_fmt'] === 'string' ? (values['backing_fmt'] as string) : undefined;
  try {
    // As QEMU's bdrv_img_create: the backing file is opened (to check it, and for the size)
    // unless -u; either way its format must be named.
    if (typeof backingFile === 'string' && backingFile !== '') {
      if (!o.unsafeBacking) {
        const full = resolveBackingFilename(path, { driver: 'file', filename: path }, backingFile);
        backing = await openImage(full, { bareDriverErrors: true, readOnly: true, forceShare: true, secrets, workers, warn, ...(backingFmt ? { format: backingFmt } : {}) }).catch((e) => {
          if (!(e instanceof BlockError)) throw e;
          // Named as the user named it, relative to the new image (QEMU's path_combine).
          const shown = isAbsolute(backingFile) || backingFile.startsWith('json:') ? full : pathCombine(stripFilePrefix(o.finalName ?? o.filename), backingFile);
          throw new BlockError(e.kind, e.message.split(`'${full}'`).join(`'${shown}'`), { path: o.filename }, { cause: e, hint: 'Could not open backing image.\n' });
        });
        if (!backingFmt) throw new BlockError('InvalidArgument', 'Backing file specified without backing format', { path: o.filename }, { hint: `Detected format of ${backing.format}.` });
        size ??= backing.size;
      } else if (!backingFmt) {
        throw invalidArgument('Backing file specified without backing format', { path: o.filename });
      }
    }
    if (size === undefined) throw invalidArgument('Image creation needs a size parameter');
    if (!Number.isInteger(size) || size < 0 || size >= Number(MAX_EXACT_SIZE)) throw invalidArgument('Invalid image size specified.');
    o.onValidated?.(size);
    // What QEMU's driver checks once the "Formatting" line is out (OptionSpec.qapiName).
    checkDeferred(driver.createOptions, values);

    // A protocol that cannot make storage (an NBD export exists already): QEMU's
    // bdrv_co_create_opts_simple: the node must be large enough (it is never grown), its first
    // sector is zeroed, then the format writes its image onto it.
    let named: OptionsTree | undefined;
    try {
      named = protocolPrefix(path) !== undefined ? protocolTreeForFilename(path, (n) => findProtocol(n)) : undefined;
    } catch {
      named = undefined; // not a protocol Platter has: the file path below words the failure
    }
    if (named && named.driver !== 'file') {
      const np = findProtocol(String(named.driver))!;
      if (!np.displayName) throw unsupported(`Protocol driver '${np.name}' does not support image creation`);
      const pre = values['preallocation'];
      if (pre !== undefined && pre !== 'off') throw unsupported(`Unsupported preallocation mode '${String(pre)}'`);
      const file = await openProtocol(named, path, false, filterChildPerms(rootPerms(false, false, 0x8)), { warn });
      try {
        if (file.size < size) await file.truncate(size, {});
        if (Math.min(file.size, 512) > 0) await file.writeZeroes(0, Math.min(file.size, 512), { mayUnmap: true });
        await driver.create(file, { filename: o.filename, size, options: values, secrets, workers, warn, ...(o.signal ? { signal: o.signal } : {}), ...(backing ? { backing } : {}), createSibling: async () => { throw unsupported('Images of several files cannot be created on a protocol node'); } });
        await file.flush();
      } finally {
        await file.close();
      }
      return values;
    }
    const proto = findProtocol('file')!;
    const ctxBase = { warn, ...(o.signal ? { signal: o.signal } : {}) };
    const createdSiblings: BlockNode[] = [];
    const ctx: CreateContext = {
      filename: stripFilePrefix(o.finalName ?? o.filename),
      size,
      options: values,
      secrets,
      workers,
      warn,
      ...(o.signal ? { signal: o.signal } : {}),
      ...(backing ? { backing } : {}),
      createSibling: async (name: string) => {
        const full = resolve(dirname(resolve(path)), name);
        await proto.create!(full, 0, {}, ctxBase);
        const child = await openProtocol({ driver: 'file', filename: full }, full, false, storageChildPerms(rootPerms(false, false), true, false), { warn });
        createdSiblings.push(child);
        return child;
      },
    };
    const fileValues: OptionValues = {};
    if (values['nocow'] !== undefined) fileValues['nocow'] = values['nocow'];
    await proto.create!(path, 0, fileValues, ctxBase);
    const file = await openProtocol({ driver: 'file', filename: path }, path, false, driver.name === 'raw' ? filterChildPerms(rootPerms(false, false, 0x8)) : storageChildPerms(rootPerms(false, false), true, false), { warn });
    let failed = true;
    try {
      await driver.create(file, ctx);
      await file.flush();
      for (const s of createdSiblings) await s.flush();
      failed = false;
    } finally {
      await file.close();
      for (const s of createdSiblings) await s.close().catch(() => {});
      if (failed && driver.deleteFileOnCreateFailure) rmSync(path, { force: true });
    }
    return values;
  } finally {
    await backing?.close().catch(() => {});
  }
}

export { optBool };

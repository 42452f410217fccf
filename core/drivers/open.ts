// Opening images: the one probe-and-dispatch entry point (cloud-hypervisor's
// open_disk; QEMU's bdrv_open). Builds the node graph: format node -> file (protocol) child, and
// the backing chain below it, with permissions/locks computed as QEMU does.

import { MAX_EXACT_SIZE } from '../util/checked.ts';
import { basename, dirname, isAbsolute, resolve, relative, sep } from 'node:path';
import { realpathSync, rmSync } from 'node:fs';
import { BlockError, invalidArgument, invalidImage, notFound, unsupported } from '../errors.ts';
import { BlockNode } from '../block/node.ts';
import type { FormatDriver, NodeImpl, OpenContext, ProtocolDriver, CreateContext } from '../block/types.ts';
import { PROBE_BYTES } from '../block/types.ts';
import { parseDottedOptions, parseJsonFilename, optBool, optString, type OptionsTree } from '../block/options-tree.ts';
import { KNOWN_PROTOCOLS, pathCombine, protocolPrefix, protocolTreeForFilename, stripFilePrefix } from '../block/filename.ts';
import { backingChildPerms, dataChildPerms, filterChildPerms, PROBE_PERMS, rootPerms, storageChildPerms, type PermPair } from '../block/permissions.ts';
import { SecretStore } from '../block/secrets.ts';
import { trackReads } from '../block/unread-options.ts';
import { sharedWorkerPool, type WorkerPool } from '../workers/pool.ts';
import { findFormat, findProtocol, formatDrivers, probeDeviceDriver } from './registry.ts';
import { checkDeferred, parseOptions, withDefaults, type OptionValues } from '../block/options-schema.ts';

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

/** Protocols opened bare when an options tree built inside Platter names them at the top (a
 *  user's --image-opts / json: opens every protocol bare, as QEMU does). */
const BARE_TOP_PROTOCOLS = new Set(['host_device', 'host_cdrom']);

/** How deep a backing chain may go before we call it a loop or an attack (QEMU has no fixed cap;
 *  1000 is far past any real chain and bounds recursion). */
export const MAX_BACKING_DEPTH = 1000;

export function defaultWarn(message: string): void {
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
  let topDriver: unknown;
  if (typeof spec !== 'string' || spec.startsWith('json:') || opts.imageOpts) {
    let raw: OptionsTree | undefined;
    try {
      raw = typeof spec !== 'string' ? spec : opts.imageOpts ? parseDottedOptions(spec) : parseJsonFilename(spec);
    } catch {
      raw = undefined; // the usual path below words the error
    }
    topDriver = raw?.driver;
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
  let fileTree: OptionsTree;
  try {
    fileTree = resolveProtocolTree(tree.file as OptionsTree);
  } catch (e) {
    // A URI that does not parse ("missing hostname in URI"): named as given, as qemu-img names it.
    const given = typeof spec === 'string' ? spec : typeof (tree.file as OptionsTree).filename === 'string' ? String((tree.file as OptionsTree).filename) : undefined;
    throw given === undefined ? e : opts.qemuImgPrefix ? qemuImgOpenError(e, given) : prefixOpenError(e, given);
  }
  const displayName = displayFilename(typeof spec === 'string' && !opts.imageOpts ? spec : undefined, fileTree, tree);
  // Failures name the image as typed (QEMU's bdrv_open), even where the node is shown under the
  // name its protocol gives it (nbd).
  // (--image-opts: the options as typed, as qemu-img prints them.)
  const openName = typeof spec === 'string' && opts.imageOpts ? spec : displayFilename(typeof spec === 'string' ? spec : undefined, fileTree, tree, false);
  /** An open failure as it leaves this function (qemu-img's prefix for the image it opens). */
  const failed = (e: unknown): unknown => (opts.qemuImgPrefix ? qemuImgOpenError(e, openName) : opts.bareDriverErrors ? e : prefixOpenError(e, openName));

  const perms = opts.perms ?? rootPerms(readOnly, forceShare, opts.extraPerm, opts.noShare ?? !readOnly);
  const childEnv: ChildEnv = { warn, secrets, workers, forceShare };
  // A protocol named as the top driver (a user's --image-opts or json: options, driver=file /
  // vvfat / nbd / host_device ...) is the image itself: no format is probed above it, as in QEMU
  // (info shows "file format: file", the node's size is the protocol's). Options trees built
  // inside Platter keep a format layer over a file protocol, except for host devices.
  if (opts.format === undefined && typeof topDriver === 'string' && findProtocol(topDriver) !== undefined && findFormat(topDriver) === undefined && (typeof spec === 'string' || BARE_TOP_PROTOCOLS.has(topDriver))) {
    try {
      return await openProtocol(fileTree, displayName, readOnly, perms, childEnv);
    } catch (e) {
      const local = fileTree.driver === 'file' || fileTree.driver === 'host_device' || fileTree.driver === 'host_cdrom';
      throw failed(e instanceof BlockError && e.kind === 'Locked' ? e : local ? prefixOpenError(e, displayName) : e);
    }
  }
  let formatName = typeof tree.driver === 'string' ? tree.driver : undefined;
  let formatDriver: FormatDriver | undefined;
  if (formatName !== undefined) {
    formatDriver = findFormat(formatName);
    if (!formatDriver) throw failed(unsupported(`Unknown driver '${formatName}'`, { path: displayName }));
  }
  if (formatDriver?.readOnlyFormat && !readOnly) {
    throw failed(new BlockError('Permission', 'Image is read-only', { path: displayName }));
  }

  // The protocol node: perms for a filter (raw) or storage child, known once the format is.
  const childPerms = (fmt: FormatDriver | undefined): PermPair =>
    fmt?.name === 'raw' ? filterChildPerms(perms) : storageChildPerms(perms, !readOnly, forceShare);
  let file: BlockNode;
  try {
    file = await openProtocol(fileTree, displayName, readOnly, formatDriver ? childPerms(formatDriver) : PROBE_PERMS, childEnv);
  } catch (e) {
    // The protocol's own words ("Could not open 'x': No such file or directory"), then qemu-img's.
    // (Only file-posix words its own failures so; other protocols' errors get qemu-img's prefix alone.)
    const local = fileTree.driver === 'file' || fileTree.driver === 'host_device' || fileTree.driver === 'host_cdrom';
    throw failed(e instanceof BlockError && e.kind === 'Locked' ? e : local ? prefixOpenError(e, displayName) : e);
  }
  try {
    let probedRaw = false;
    if (!formatDriver) {
      const probed = await probeFormat(file, displayName);
      formatDriver = probed.driver;
      probedRaw = probed.raw;
      formatName = formatDriver.name;
      if (formatDriver.readOnlyFormat && !readOnly) {
        throw new BlockError('Permission', 'Image is read-only', { path: displayName });
      }
      // The guessed format decides the child's role; reopen with its permissions when they differ.
      const want = childPerms(formatDriver);
      const had = PROBE_PERMS;
      const permsMatter = file.driver.kind !== 'protocol' || !file.driver.takesNoLocks;
      if (permsMatter && (want.perm !== had.perm || want.shared !== had.shared)) {
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
    const reads = trackReads(formatOptions);
    const ctx: OpenContext = {
      filename: displayName,
      options: reads.view,
      readOnly,
      secrets,
      workers,
      warn,
      noBacking: opts.noBacking ?? false,
      probesAsOtherFormat: (head, name) => formatDrivers().some((d) => d.name !== 'raw' && d.probe !== undefined && d.probe(head, name) > 0),
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
    let impl: NodeImpl | undefined;
    try {
      impl = await driver.open(file, ctx);
      reads.refuseUnread('format', driver.name);
    } catch (e) {
      await impl?.close().catch(() => {});
      for (const s of siblings) await s.close().catch(() => {});
      throw e;
    }
    // A format directly over a protocol named by its options (iscsi) is named as QEMU names it; a
    // node that says only "this format on this file" is named as its file (bdrv_refresh_filename).
    const refreshed = (file.driver as ProtocolDriver).refreshFilename && file.filename.startsWith('json:') && Object.keys(formatOptions).every((k) => k === 'x-probed') ? `json:{"driver": "${driver.name}", "file": ${file.filename.slice(5)}}` : undefined;
    const shownName = refreshed ?? (file.impl.exactFilename !== undefined && Object.keys(tree).every((k) => k === 'driver' || k === 'file') ? file.impl.exactFilename : displayName);
    node = new BlockNode({ driver, impl, filename: shownName, readOnly, file, children: siblings, options: formatOptions, openedWith: tree });
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
  if (!(e instanceof BlockError) || e.kind === 'Cancelled' || e.code === 'BackingLoop') return e;
  const err = new BlockError(e.kind, `Could not open '${name}': ${e.message}`, { ...e.context, path: e.context.path ?? name }, { cause: e.cause, code: 'OpenFailed', ...(e.hint ? { hint: e.hint } : {}) });
  err.stack = e.stack;
  return err;
}

/** qemu-img's "Could not open 'x': cause" shape, applied once (a node's own open failure). A
 *  backing chain that loops is printed as it is, with no image named in front (qemu-img's own
 *  chain walk reports it, collect_image_info_list). */
function prefixOpenError(e: unknown, name: string): unknown {
  if (!(e instanceof BlockError) || e.code === 'BackingLoop') return e;
  // A protocol's failure QEMU words without the node's "Could not open" (file-posix on a folder)
  // gets only qemu-img's own prefix.
  if (e.code === 'OpenFailed' || e.code === 'ProtocolWorded' || e.kind === 'Cancelled') return e;
  const err = new BlockError(e.kind, `Could not open '${name}': ${e.message}`, { ...e.context, path: e.context.path ?? name }, { cause: e.cause, code: 'OpenFailed', ...(e.hint ? { hint: e.hint } : {}) });
  err.stack = e.stack;
  return err;
}

async function openBackingChain(node: BlockNode, tree: OptionsTree, fileTree: OptionsTree, opts: OpenImageOptions, perms: PermPair): Promise<void> {
  const backingSpec = tree.backing;
  if (backingSpec === null || (typeof backingSpec === 'string' && backingSpec === '')) return; // backing: null disables
  if (opts.noBacking) return;
  const seen = opts.chainSeen ?? new Set<string>();
  // (A remote node's own name stands for its path: a chain over ssh loops as a local one does.)
  // (Named as opened, as qemu-img's chain walk remembers names: typed at the top, refreshed below.)
  const remoteBase = node.baseFile?.impl.dirname ? node.baseFile : undefined;
  const self = canonicalPath(fileTree) ?? (remoteBase ? (typeof fileTree.filename === 'string' ? fileTree.filename : remoteBase.impl.exactFilename) : undefined);
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
  // A relative name in an image on a remote node is on the same server, named from the node's
  // own name (ssh://USER@HOST:PORT/DIR/NAME, as QEMU's bdrv_dirname): the metadata picks no server.
  const remoteDir = base?.remoteDirname && !isAbsolute(meta.filename) && !meta.filename.startsWith('json:') ? base.remoteDirname : undefined;
  let full: string;
  if (remoteDir) {
    resolveBackingFilename(node.filename, { driver: 'file', filename: baseName }, meta.filename); // the metadata rule still applies
    full = remoteDir() + meta.filename;
    if (seen.has(full)) {
      throw invalidImage(`Backing file '${full}' creates an infinite loop.`, { path: node.filename }, { code: 'BackingLoop' });
    }
    node.backing = await openImage(full, { ...childOpts, format: opts.backingFormat ?? meta.format }).catch((e: unknown) => {
      if (e instanceof BlockError && e.code === 'BackingLoop') throw e;
      throw new BlockError(e instanceof BlockError ? e.kind : 'Io', `Could not open backing file: ${e instanceof BlockError ? e.message : String(e)}`, { path: node.filename }, { cause: e, code: 'OpenFailed' });
    });
    return;
  }
  full = resolveBackingFilename(node.filename, { driver: 'file', filename: baseName }, meta.filename);
  // Named as QEMU names it (path_combine with the image's name as given: "b.qcow2", not an
  // absolute path) wherever that name cannot be mistaken for a protocol.
  const shown = isAbsolute(meta.filename) || full.startsWith('json:') ? full : pathCombine(baseName, meta.filename);
  const canonical = canonicalPath(full.startsWith('json:') ? jsonTree(full) : { driver: 'file', filename: full });
  if (canonical && seen.has(canonical)) {
    throw new BlockError('InvalidImage', `Backing file '${shown}' creates an infinite loop.`, { path: node.filename }, { code: 'BackingLoop' });
  }
  const openAs = shown !== full && resolve(shown) === full && protocolPrefix(shown) === undefined && !shown.startsWith('json:') ? shown : full;
  try {
    node.backing = await openImage(openAs, { ...childOpts, format: opts.backingFormat ?? meta.format });
  } catch (e) {
    if (e instanceof BlockError && e.code === 'BackingLoop') throw e;
    const msg = e instanceof BlockError ? e.message : String(e);
    throw new BlockError(e instanceof BlockError ? e.kind : 'Io', `Could not open backing file: ${msg}`, { path: node.filename }, { cause: e, code: 'OpenFailed' });
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

export function resolveProtocolTree(fileTree: OptionsTree): OptionsTree {
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
  const base = protocolTreeForFilename(filename, (n) => findProtocol(n), probeDeviceDriver);
  return { ...fileTree, ...base };
}

function displayFilename(given: string | undefined, fileTree: OptionsTree, tree?: OptionsTree, refreshed = true): string {
  // Protocols whose names may hold secrets (iscsi://user%password@...) show them redacted.
  const proto = typeof fileTree.driver === 'string' ? findProtocol(fileTree.driver) : undefined;
  const ownName = proto?.refreshFilename && given === undefined ? proto.refreshFilename(fileTree) : undefined;
  if (proto?.refreshFilename && (given !== undefined || ownName !== undefined)) return given !== undefined ? (proto.redactFilename?.(given) ?? given) : `json:${ownName}`;
  // A json: name that says no more than "this format on this file" is shown as the file's name
  // (QEMU's bdrv_refresh_filename reconstructs it so).
  // (The file's options as given: a filter skipped in its place, say, keeps the name a json: one.)
  const givenFile = tree && typeof tree.file === 'object' && tree.file !== null && !Array.isArray(tree.file) ? (tree.file as OptionsTree) : fileTree;
  if (given?.startsWith('json:') && tree && Object.keys(tree).every((k) => k === 'driver' || k === 'file') && fileTree.driver === 'file' && typeof fileTree.filename === 'string' && (givenFile.driver === undefined || givenFile.driver === 'file') && Object.keys(givenFile).every((k) => k === 'driver' || k === 'filename')) {
    return fileTree.filename;
  }
  // A protocol that names its nodes itself (nbd's URI) is shown so, whatever form was typed.
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
  if (refreshed && given !== undefined && typeof fileTree.filename === 'string' && ((fileTree.driver === 'file' && protocolPrefix(given) === 'file') || ((fileTree.driver === 'host_device' || fileTree.driver === 'host_cdrom') && protocolPrefix(given) === fileTree.driver))) return fileTree.filename;
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

export async function openProtocol(fileTree: OptionsTree, displayName: string, readOnly: boolean, perms: PermPair, env: ChildEnv, nodeName?: string): Promise<BlockNode> {
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
  let impl: NodeImpl | undefined;
  const reads = trackReads(options);
  try {
    impl = await proto.open({ filename: String(fileTree.filename ?? displayName), options: reads.view, readOnly, perm: perms.perm, sharedPerm: perms.shared, warn: env.warn, openChild, ...(env.secrets ? { secrets: env.secrets } : {}) });
    reads.refuseUnread('protocol', proto.name);
  } catch (e) {
    await impl?.close().catch(() => {});
    for (const c of [...children, ...(file ? [file] : [])]) await c.close().catch(() => {});
    throw e;
  }
  const ownName = proto.refreshFilename?.(options);
  const refreshed = ownName !== undefined ? `json:${ownName}` : undefined;
  let shown: string | undefined;
  try {
    shown = proto.displayName?.(options);
  } catch {
    shown = undefined;
  }
  return new BlockNode({ driver: proto, impl, filename: nodeName ?? refreshed ?? shown ?? impl.exactFilename ?? String(fileTree.filename ?? displayName), readOnly, options, ...(file ? { file } : {}), children });
}

/** Probe the format from the first bytes (QEMU's find_image_format: best score wins, raw last). */
export async function probeFormat(file: BlockNode, displayName: string): Promise<{ driver: FormatDriver; raw: boolean }> {
  const n = Math.min(PROBE_BYTES, file.size);
  const head = n > 0 ? await file.read(0, n).catch((e) => {
    throw e instanceof BlockError ? new BlockError(e.kind, `Could not read image for determining its format: ${e.message}`, e.context, { cause: e }) : e;
  }) : Buffer.alloc(0);
  // QEMU probes an empty file as raw without asking the drivers (find_image_format), so an
  // empty "x.dmg" is raw, not dmg.
  const raw = findFormat('raw');
  if (file.size === 0 && raw) return { driver: raw, raw: true };
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
    if (e instanceof BlockError && e.kind === 'NotFound') throw new BlockError('NotFound', `Could not open '${full}': No such file or directory`, { path: full }, { code: 'OpenFailed' });
    throw e;
  }
}

export { optBool };

// Creating images (qemu-img create; QEMU's bdrv_img_create): the driver's options checked, the
// backing file opened to check it and for the size, the file made by the file protocol, then the
// format driver writes its empty image into it.

import { dirname, isAbsolute, resolve } from 'node:path';
import { rmSync } from 'node:fs';
import { MAX_EXACT_SIZE } from '../util/checked.ts';
import { BlockError, invalidArgument, unsupported } from '../errors.ts';
import type { BlockNode } from '../block/node.ts';
import type { CreateContext, FormatDriver } from '../block/types.ts';
import { KNOWN_PROTOCOLS, pathCombine, protocolPrefix, stripFilePrefix } from '../block/filename.ts';
import { filterChildPerms, rootPerms, storageChildPerms } from '../block/permissions.ts';
import { SecretStore } from '../block/secrets.ts';
import { sharedWorkerPool, type WorkerPool } from '../workers/pool.ts';
import { checkDeferred, parseOptions, withDefaults, type OptionSpec, type OptionValues } from '../block/options-schema.ts';
import { findFormat, findProtocol } from './registry.ts';
import { defaultWarn, openImage, openProtocol, resolveBackingFilename, resolveProtocolTree } from './open.ts';

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

/** QEMU's refusal to create an image on a protocol without a create callback (fat:, null-co://):
 *  undefined for a plain file name or a protocol that creates. */
export function protocolCreateRefusal(filename: string): BlockError | undefined {
  if (protocolPrefix(filename) === undefined || protocolPrefix(filename) === 'file') return undefined;
  const name = KNOWN_PROTOCOLS[protocolPrefix(filename)!];
  const proto = name !== undefined ? findProtocol(name) : undefined;
  if (!proto || proto.name === 'file' || proto.create || proto.createSimple) return undefined;
  return unsupported(`Protocol driver '${proto.name}' does not support image creation`, { path: filename, op: 'create' });
}

/** The options a new image takes: its format's, then those of the remote protocol its name is
 *  in that the format lacks (qemu-img appends the protocol driver's create options to the
 *  format's: sheepdog's redundancy, object_size and backing_file). */
export function createSchema(driver: FormatDriver, filename: string): readonly OptionSpec[] {
  const p = protocolPrefix(filename);
  const name = p !== undefined && p !== 'file' ? KNOWN_PROTOCOLS[p] : undefined;
  const proto = name !== undefined ? findProtocol(name) : undefined;
  if (!proto || proto.createOptions.length === 0) return driver.createOptions;
  return [...driver.createOptions, ...proto.createOptions.filter((spec) => !driver.createOptions.some((f) => f.name === spec.name))];
}

/** Create a new image (qemu-img create). Returns the parsed options actually used. */
export async function createImage(o: CreateImageOptions): Promise<OptionValues> {
  const driver = findFormat(o.format);
  if (!driver) throw unsupported(`Unknown file format '${o.format}'`);
  if (!driver.create) throw unsupported(`Format driver '${o.format}' does not support image creation`);
  const refusal = protocolCreateRefusal(o.finalName ?? o.filename);
  if (refusal) throw refusal;
  const warn = o.warn ?? defaultWarn;
  const secrets = o.secrets ?? new SecretStore();
  const workers = o.workers ?? sharedWorkerPool();
  const schema = createSchema(driver, o.finalName ?? o.filename);
  const given = parseOptions(schema, typeof o.options === 'string' || o.options === undefined ? (o.options ?? '') : (o.options as Record<string, string | number | boolean>), '', { deferChecks: true });
  const values = withDefaults(driver.createOptions, given);
  // Options only the protocol takes go to its create (a sheepdog clone's backing_file).
  const protoOnly = schema.filter((spec) => !driver.createOptions.includes(spec));
  const protoValues: OptionValues = {};
  for (const spec of protoOnly) if (given[spec.name] !== undefined) protoValues[spec.name] = values[spec.name] = given[spec.name]!;

  let size = o.size;
  let backing: BlockNode | undefined;
  // The file protocol takes "file:" names without their prefix (raw_co_create_opts).
  const path = stripFilePrefix(o.filename);
  const backingFile = values['backing_file'];
  const backingFmt = typeof values['backing_fmt'] === 'string' ? (values['backing_fmt'] as string) : undefined;
  try {
    // As QEMU's bdrv_img_create: the backing file is opened (to check it, and for the size)
    // unless -u; either way its format must be named.
    if (typeof backingFile === 'string' && backingFile !== '' && protoValues['backing_file'] !== undefined) {
      // The protocol's own base (a sheepdog snapshot a clone starts from): a name the user typed,
      // opened as given (for its size); the protocol checks what it is.
      if (size === undefined) {
        const base = await openImage(backingFile, { bareDriverErrors: true, readOnly: true, forceShare: true, secrets, workers, warn });
        size = base.size;
        await base.close();
      }
    } else if (typeof backingFile === 'string' && backingFile !== '') {
      if (!o.unsafeBacking) {
        const full = resolveBackingFilename(path, { driver: 'file', filename: path }, backingFile);
        backing = await openImage(full, { bareDriverErrors: true, readOnly: true, forceShare: true, secrets, workers, warn, ...(backingFmt ? { format: backingFmt } : {}) }).catch((e) => {
          if (!(e instanceof BlockError)) throw e;
          // Named as the user named it, relative to the new image (QEMU's path_combine).
          const shown = isAbsolute(backingFile) || backingFile.startsWith('json:') ? full : pathCombine(stripFilePrefix(o.finalName ?? o.filename), backingFile);
          throw new BlockError(e.kind, e.message.split(`'${full}'`).join(`'${shown}'`), { path: o.filename }, { cause: e, ...e.extras, hint: 'Could not open backing image.\n' });
        });
        if (!backingFmt) throw new BlockError('InvalidArgument', 'Backing file specified without backing format', { path: o.filename }, { hint: `Detected format of ${backing.format}.` });
        size ??= backing.size;
      } else if (!backingFmt) {
        throw invalidArgument('Backing file specified without backing format', { path: o.filename });
      }
    }
    if (size === undefined) throw invalidArgument('Image creation needs a size parameter');
    if (!Number.isInteger(size) || size < 0 || size >= Number(MAX_EXACT_SIZE)) throw invalidArgument('Invalid image size specified.');
    // Options of the file protocol given for a name in another protocol (ssh takes only the
    // size): qemu-img parses -o against the format's and that protocol's options, and refuses.
    const target = protocolPrefix(path) !== undefined ? KNOWN_PROTOCOLS[protocolPrefix(path)!] : 'file';
    const targetProto = target !== undefined && target !== 'file' ? findProtocol(target) : undefined;
    if (targetProto) {
      const fileOnly = ['nocow', 'extent_size_hint', ...(driver.name === 'raw' ? ['preallocation'] : [])];
      for (const k of fileOnly) {
        if (given[k] !== undefined && !targetProto.createOptions.some((spec) => spec.name === k)) throw invalidArgument(`Invalid parameter '${k}'`, { path: o.filename });
      }
    }
    o.onValidated?.(size);
    // What QEMU's driver checks once the "Formatting" line is out (OptionSpec.qapiName).
    checkDeferred(driver.createOptions, values);

    // The protocol the name is in: a plain path is a file, an ssh:// name is created remotely.
    const protoTree = resolveProtocolTree({ filename: path });
    const proto = findProtocol(String(protoTree.driver));
    // Storage that exists already (an NBD export): QEMU's bdrv_co_create_opts_simple: the node must
    // be large enough (it is never grown), its first sector is zeroed, then the format writes its
    // image onto it.
    if (proto && !proto.create && proto.createSimple) {
      const pre = values['preallocation'];
      if (pre !== undefined && pre !== 'off') throw unsupported(`Unsupported preallocation mode '${String(pre)}'`);
      // QEMU's bdrv_co_create_opts_simple prefixes an open failure so.
      const file = await openProtocol(protoTree, path, false, filterChildPerms(rootPerms(false, false, 0x8)), { warn, secrets }).catch((e: unknown) => {
        if (!(e instanceof BlockError)) throw e;
        // file-posix names the device in its own OS-level failures ("Could not open 'x': ...").
        const posix = (proto.name === 'host_device' || proto.name === 'host_cdrom') && e.kind !== 'Locked' && e.code !== 'ProtocolWorded' && e.code !== 'OpenFailed';
        const inner = posix ? `Could not open '${path}': ${e.message}` : e.message;
        throw new BlockError(e.kind, `Protocol driver '${proto.name}' does not support image creation, and opening the image failed: ${inner}`, e.context, { cause: e, code: 'Worded', ...(e.hint ? { hint: e.hint } : {}) });
      });
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
    if (!proto?.create) throw unsupported(`Protocol driver '${String(protoTree.driver)}' does not support image creation`, { path });
    const local = proto.name === 'file';
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
        if (!local) throw unsupported(`Cannot create '${name}' next to an image that is not a plain file`, { path });
        const full = resolve(dirname(resolve(path)), name);
        await proto.create!(full, 0, {}, ctxBase);
        const child = await openProtocol({ driver: 'file', filename: full }, full, false, storageChildPerms(rootPerms(false, false), true, false), { warn });
        createdSiblings.push(child);
        return child;
      },
    };
    const fileValues: OptionValues = {};
    if (values['nocow'] !== undefined) fileValues['nocow'] = values['nocow'];
    // A remote protocol's create makes or checks the storage (iscsi: the LUN must be large
    // enough); only raw passes its size down (other formats' sizes stay theirs).
    // Fixed-size storage (a sheepdog vdi) gets the image's size, as QEMU's bdrv_create_file passes it.
    await proto.create!(path, local ? 0 : driver.name === 'raw' || proto.createsAtImageSize ? size : 0, local ? fileValues : { ...protoValues, ...(driver.name === 'raw' && values['preallocation'] !== undefined && proto.createOptions.some((spec) => spec.name === 'preallocation') ? { preallocation: values['preallocation'] } : {}) }, ctxBase);
    const file = await openProtocol(local ? { driver: 'file', filename: path } : protoTree, path, false, driver.name === 'raw' ? filterChildPerms(rootPerms(false, false, 0x8)) : storageChildPerms(rootPerms(false, false), true, false), { warn, secrets });
    let failed = true;
    try {
      await driver.create(file, ctx);
      await file.flush();
      for (const s of createdSiblings) await s.flush();
      failed = false;
    } finally {
      await file.close();
      for (const s of createdSiblings) await s.close().catch(() => {});
      if (failed && driver.deleteFileOnCreateFailure && local) rmSync(path, { force: true });
    }
    return values;
  } finally {
    await backing?.close().catch(() => {});
  }
}

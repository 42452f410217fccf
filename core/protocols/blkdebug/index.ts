// The `blkdebug` protocol (QEMU block/blkdebug.c; docs/devel/blkdebug.txt): a filter over one
// child node (`image`) that passes every request through, except those its rules fail with an
// errno. Rules fire on named events that format drivers raise on their file node as they work
// (l1_update, cluster_free, read_aio, ...: core/block/debug-events.ts) and on `none`, raised
// when the node opens; config.ts reads the rules, rules.ts matches them, node.ts is the node.
//
// Names: `blkdebug:CONFIG:IMAGE` (CONFIG may be empty: `blkdebug::IMAGE`), or options
// `driver=blkdebug` with `image` (a subtree: a file, or a format such as qcow2 over one),
// `config`, `inject-error`, `set-state`, `align`, `max-transfer`, `opt-write-zero`,
// `max-write-zero`, `opt-discard`, `max-discard`, `take-child-perms`, `unshare-child-perms`.
// Suspend/resume breakpoints (QEMU's monitor commands) have no equivalent here.

import { readFile } from 'node:fs/promises';
import { BlockError, fromSystemError, invalidArgument, unsupported } from '../../errors.ts';
import type { ProtocolDriver } from '../../block/types.ts';
import { PERM_CONSISTENT_READ, PERM_RESIZE, PERM_WRITE, PERM_WRITE_UNCHANGED } from '../../block/types.ts';
import { listItems, optString, type OptionsTree } from '../../block/options-tree.ts';
import { parseRuleSpecs } from './config.ts';
import { BlkdebugRules } from './rules.ts';
import { BlkdebugNode, readLimits } from './node.ts';

/** Options blkdebug itself reads (anything else is an error, as QEMU's leftover-option check). */
const OWN_OPTIONS = new Set(['filename', 'config', 'image', 'x-image', 'inject-error', 'set-state', 'align', 'max-transfer', 'opt-write-zero', 'max-write-zero', 'opt-discard', 'max-discard', 'take-child-perms', 'unshare-child-perms', 'cache']);
/** BlockPermission names (qapi) as permission bits. */
const PERMISSION_BITS: Record<string, number> = { 'consistent-read': PERM_CONSISTENT_READ, write: PERM_WRITE, 'write-unchanged': PERM_WRITE_UNCHANGED, resize: PERM_RESIZE };

/** take-child-perms / unshare-child-perms: a list of BlockPermission names. */
function permList(options: OptionsTree, key: string): number {
  const v = options[key];
  if (v === undefined) return 0;
  const items = listItems(v);
  if (!items) throw invalidArgument(`Parameter '${key}' expects a list of permissions (consistent-read, write, write-unchanged, resize)`);
  let bits = 0;
  for (const item of items) {
    const b = typeof item === 'string' ? PERMISSION_BITS[item] : undefined;
    if (b === undefined) throw invalidArgument(`Parameter '${key}' expects a list of permissions (consistent-read, write, write-unchanged, resize)`);
    bits |= b;
  }
  return bits;
}

/** `blkdebug:CONFIG:IMAGE` as options (QEMU's blkdebug_parse_filename). */
function parseFilename(filename: string): OptionsTree {
  const rest = filename.slice('blkdebug:'.length);
  const colon = rest.indexOf(':');
  if (colon < 0) throw invalidArgument('blkdebug requires both config file and image path');
  return { ...(colon > 0 ? { config: rest.slice(0, colon) } : {}), 'x-image': rest.slice(colon + 1) };
}

async function readConfigFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'latin1');
  } catch (e) {
    const err = fromSystemError(e, { path, op: 'open' });
    throw new BlockError(err.kind, `Could not read blkdebug config file: ${err.message}`, { path, op: 'open' }, { cause: e, code: 'Worded' });
  }
}

export const blkdebugDriver: ProtocolDriver = {
  kind: 'protocol',
  name: 'blkdebug',
  description: 'Error injection over another node, for testing (QEMU blkdebug)',
  prefixes: ['blkdebug'],
  parseFilename,
  createOptions: [],
  async open(ctx) {
    const options = ctx.options;
    for (const k of Object.keys(options)) {
      if (!OWN_OPTIONS.has(k)) throw invalidArgument(`Block protocol 'blkdebug' doesn't support the option '${k}'`);
    }
    if (!ctx.openChild) throw unsupported('blkdebug needs the generic layer to open its image');
    const config = optString(options, 'config');
    const specs = parseRuleSpecs(config !== undefined ? await readConfigFile(config) : undefined, options);
    const take = permList(options, 'take-child-perms');
    const unshare = permList(options, 'unshare-child-perms');
    const image = options['image'];
    const xImage = optString(options, 'x-image');
    let spec: OptionsTree | string;
    if (image !== undefined && typeof image === 'object' && !Array.isArray(image)) spec = image as OptionsTree;
    else if (typeof image === 'string') throw unsupported(`blkdebug: 'image' names a node ('${image}'); Platter takes the image as options (image.driver=..., image.filename=...)`);
    else if (xImage !== undefined) spec = xImage;
    else throw invalidArgument("A block device must be specified for \"image\"");
    const child = await ctx.openChild(spec, 'file', { perm: take, unshare });
    const limits = readLimits(options, child.alignment);
    const rules = new BlkdebugRules(specs);
    const node = new BlkdebugNode(child, rules, limits, ctx.filename);
    // QEMU's blkdebug_open ends with bdrv_debug_event(bs, BLKDBG_NONE): rules on "none" are in
    // force from the start.
    rules.event('none');
    return node;
  },
};

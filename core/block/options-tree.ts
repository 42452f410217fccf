// Image specifications in every form QEMU accepts, turned into one options tree:
//   a plain filename ("disk.qcow2"), a URI ("nbd://host:10809/export", "ssh://user@h/path"),
//   a prefix form ("fat:rw:/dir", "nbd:host:port:exportname=x"), a host device ("/dev/sda",
//   "\\.\PhysicalDrive0"), a "json:{...}" pseudo-filename, and --image-opts dotted options
//   ("driver=qcow2,file.driver=file,file.filename=x,file.locking=off").
// The tree is QEMU's QDict after qdict_crumple: nested objects, leaves as strings/numbers/bools.

import { parseQemuJson } from '../util/qemu-json.ts';
import { invalidArgument } from '../errors.ts';

export type OptionLeaf = string | number | boolean;
export interface OptionsTree {
  [key: string]: OptionLeaf | OptionsTree | OptionLeaf[] | OptionsTree[] | undefined;
}

/** Split "a=1,b=x,,y" the way QEMU's QemuOpts does: ",," is a literal comma. */
export function splitKeyValueList(text: string): [string, string | undefined][] {
  const out: [string, string | undefined][] = [];
  let cur = '';
  const parts: string[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === ',') {
      if (text[i + 1] === ',') {
        cur += ',';
        i++;
        continue;
      }
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  for (const p of parts) {
    if (p === '') continue;
    const eq = p.indexOf('=');
    if (eq < 0) out.push([p, undefined]);
    else out.push([p.slice(0, eq), p.slice(eq + 1)]);
  }
  return out;
}

/** Set a dotted key ("file.filename") in a nested tree; conflicting shapes are an error. */
export function setDotted(tree: OptionsTree, key: string, value: OptionLeaf | OptionsTree): void {
  const parts = key.split('.');
  let node: OptionsTree = tree;
  for (let i = 0; i < parts.length - 1; i++) {
    const k = parts[i]!;
    const next = node[k];
    if (next === undefined) {
      const child: OptionsTree = {};
      node[k] = child;
      node = child;
    } else if (typeof next === 'object' && !Array.isArray(next)) {
      node = next as OptionsTree;
    } else {
      throw invalidArgument(`Parameter '${parts.slice(0, i + 1).join('.')}' cannot be both a value and a group of options`);
    }
  }
  const last = parts[parts.length - 1]!;
  if (node[last] !== undefined && typeof node[last] === 'object' && typeof value !== 'object') {
    throw invalidArgument(`Parameter '${key}' cannot be both a value and a group of options`);
  }
  node[last] = value;
}

/** Flatten a tree back to dotted keys (for messages and for json: round trips). */
export function flatten(tree: OptionsTree, prefix = ''): Record<string, OptionLeaf> {
  const out: Record<string, OptionLeaf> = {};
  for (const [k, v] of Object.entries(tree)) {
    if (v === undefined) continue;
    const key = prefix ? `${prefix}.${k}` : k;
    if (typeof v === 'object' && !Array.isArray(v)) Object.assign(out, flatten(v as OptionsTree, key));
    else if (Array.isArray(v)) v.forEach((item, i) => {
      if (typeof item === 'object') Object.assign(out, flatten(item as OptionsTree, `${key}.${i}`));
      else out[`${key}.${i}`] = item;
    });
    else out[key] = v;
  }
  return out;
}

/** Parse --image-opts text: "driver=qcow2,file.filename=a.qcow2". */
export function parseDottedOptions(text: string): OptionsTree {
  const tree: OptionsTree = {};
  for (const [k, v] of splitKeyValueList(text)) {
    if (v === undefined) throw invalidArgument(`Invalid parameter '${k}': expected key=value`);
    setDotted(tree, k, v);
  }
  return tree;
}

/** Parse "json:{...}" (QEMU's JSON: single-quoted strings too): nested objects and dotted keys
 *  may be mixed, as QEMU allows. */
export function parseJsonFilename(filename: string): OptionsTree {
  const text = filename.slice('json:'.length);
  let parsed: unknown;
  try {
    parsed = parseQemuJson(text);
  } catch (e) {
    throw invalidArgument(`Could not parse the JSON options: ${(e as Error).message}`, {}, { code: 'Worded' });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw invalidArgument('Invalid JSON object given');
  }
  const tree: OptionsTree = {};
  const walk = (obj: Record<string, unknown>, prefix: string) => {
    for (const [k, v] of Object.entries(obj)) {
      const key = prefix ? `${prefix}.${k}` : k;
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) walk(v as Record<string, unknown>, key);
      else if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') setDotted(tree, key, v);
      else if (Array.isArray(v)) setDotted(tree, key, v as unknown as OptionsTree);
      else throw invalidArgument(`Invalid value for option '${key}'`);
    }
  };
  walk(parsed as Record<string, unknown>, '');
  return tree;
}

/** Read a string leaf (numbers and booleans are accepted as their text, like QEMU's QDict). */
export function optString(tree: OptionsTree | undefined, key: string): string | undefined {
  const v = tree?.[key];
  if (v === undefined) return undefined;
  if (typeof v === 'object') throw invalidArgument(`Parameter '${key}' expects a value, not a group of options`);
  return String(v);
}

/** Read an on/off leaf ("on", "off", "true", "false", true, false). */
export function optBool(tree: OptionsTree | undefined, key: string): boolean | undefined {
  const v = tree?.[key];
  if (v === undefined) return undefined;
  if (typeof v === 'boolean') return v;
  if (v === 'on' || v === 'true' || v === 'yes') return true;
  if (v === 'off' || v === 'false' || v === 'no') return false;
  throw invalidArgument(`Parameter '${key}' expects 'on' or 'off'`);
}

export function optTree(tree: OptionsTree | undefined, key: string): OptionsTree | undefined {
  const v = tree?.[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw invalidArgument(`Parameter '${key}' expects a group of options`);
  return v as OptionsTree;
}

/**
 * A list option as it arrives: a json: array as it is, or, from dotted options
 * (children.0.driver=..., children.1.driver=...), an object whose keys are exactly 0..n-1, as
 * its values in index order. Undefined for anything else.
 */
export function listItems(v: unknown): unknown[] | undefined {
  if (Array.isArray(v)) return v;
  if (v === null || typeof v !== 'object') return undefined;
  const tree = v as OptionsTree;
  const items: unknown[] = [];
  for (let i = 0; i in tree; i++) items.push(tree[i]);
  return Object.keys(tree).length === items.length ? items : undefined;
}

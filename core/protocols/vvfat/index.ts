// The `vvfat` protocol (QEMU 7.2 block/vvfat.c): a host directory tree seen as a FAT disk.
// Filename form `fat:[floppy:][rw:][12:|16:|32:]DIR` (QEMU's vvfat_parse_filename: each flag is
// found anywhere in the name as ":flag:", the directory is what follows the last ':'; QEMU 7.2
// takes no label in this form) and options dir, fat-type, floppy, label, rw.
// Disks: a 504 MiB hard disk with an MBR and one FAT16 partition (FAT12: 31.5 MiB), or a floppy
// of 2.88 MiB (FAT12 default, FAT16/32 named) or 1.44 MiB (FAT12 named). Read-only unless `rw`:
// opening it to write fails with QEMU's "Image is read-only"; with `rw`, writes go to an overlay
// and are committed into the directory at flush and close (rw.ts).

import { BlockError, invalidArgument } from '../../errors.ts';
import type { ProtocolDriver } from '../../block/types.ts';
import { optBool, optString, type OptionsTree } from '../../block/options-tree.ts';
import { qdictOrder } from '../../util/qemu-json-print.ts';
import { geometryFor, layoutFor } from './layout.ts';
import { scanTree } from './tree.ts';
import { VvfatNode } from './node.ts';

/** The driver's own options (QEMU's runtime_opts). */
const OWN = new Set(['dir', 'fat-type', 'floppy', 'label', 'rw']);
/** Generic node options the layers above may pass down; not the driver's to judge. */
const GENERIC = new Set(['filename', 'cache', 'locking', 'aio', 'read-only', 'auto-read-only', 'force-share', 'discard', 'detect-zeroes', 'node-name']);

/** QEMU's vvfat_parse_filename. */
export function parseFatFilename(filename: string): OptionsTree {
  if (!filename.startsWith('fat:')) throw invalidArgument("File name string must start with 'fat:'");
  const fatType = filename.includes(':32:') ? 32 : filename.includes(':16:') ? 16 : filename.includes(':12:') ? 12 : 0;
  const floppy = filename.includes(':floppy:');
  const rw = filename.includes(':rw:');
  const i = filename.lastIndexOf(':');
  // A DOS drive letter ("fat:rw:c:\dir") stays part of the directory.
  const dir = filename[i - 2] === ':' && /[A-Za-z]/.test(filename[i - 1] ?? '') ? filename.slice(i - 1) : filename.slice(i + 1);
  return { dir, 'fat-type': fatType, floppy, rw };
}

/** QEMU_OPT_NUMBER parsing (strtoull with base 0): decimal, 0x hex, 0 octal. */
function numberOption(tree: OptionsTree, key: string): number | undefined {
  const v = tree[key];
  if (v === undefined) return undefined;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
  if (typeof v === 'string') {
    const s = v.trim();
    if (/^0x[0-9a-f]+$/i.test(s)) return parseInt(s.slice(2), 16);
    if (/^0[0-7]*$/.test(s)) return parseInt(s, 8);
    if (/^[1-9][0-9]*$/.test(s)) return Number(s);
  }
  throw invalidArgument(`Parameter '${key}' expects a number`);
}

/** A value as QEMU's compact JSON writes it in a json: filename. */
function compactJson(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  const o = v as Record<string, unknown>;
  return `{${qdictOrder(Object.keys(o)).map((k) => `${JSON.stringify(k)}: ${compactJson(o[k])}`).join(', ')}}`;
}

/** The json: name of a vvfat node opened with `options` (QEMU's bdrv_refresh_filename: vvfat has
 *  no plain name, so the options are the name; a raw node over it wraps it, core/jobs/info.ts). */
export function vvfatJsonName(options: Record<string, unknown>): string {
  return `json:${compactJson({ driver: 'vvfat', ...options })}`;
}

export const vvfatDriver: ProtocolDriver = {
  kind: 'protocol',
  name: 'vvfat',
  description: 'A host directory seen as a FAT disk',
  prefixes: ['fat'],
  takesNoLocks: true,
  parseFilename: parseFatFilename,
  createOptions: [],
  async open(ctx) {
    const o = ctx.options;
    for (const k of Object.keys(o)) {
      if (!OWN.has(k) && !GENERIC.has(k)) throw invalidArgument(`Block protocol 'vvfat' doesn't support the option '${k}'`);
    }
    const given: Record<string, unknown> = {};
    for (const k of Object.keys(o)) if (OWN.has(k) && o[k] !== undefined) given[k] = o[k];
    const dir = optString(o, 'dir');
    const fatType = numberOption(o, 'fat-type') ?? 0;
    const floppy = optBool(o, 'floppy') ?? false;
    const rw = optBool(o, 'rw') ?? false;
    if (dir === undefined) throw invalidArgument("vvfat block driver requires a 'dir' option");
    const label = optString(o, 'label');
    const label11 = Buffer.alloc(11, 0x20);
    if (label !== undefined) {
      const bytes = Buffer.from(label, 'utf8');
      if (bytes.length > 11) throw invalidArgument('vvfat label cannot be longer than 11 bytes');
      bytes.copy(label11);
    } else label11.write('QEMU VVFAT', 'latin1');
    const geometry = geometryFor(fatType, floppy);
    if (rw && ctx.readOnly) throw new BlockError('Permission', "Unable to set VVFAT to 'rw' when drive is read-only");
    if (!rw && !ctx.readOnly) throw new BlockError('Permission', 'Image is read-only');
    const volume = await scanTree(dir, layoutFor(geometry), label11, { warn: ctx.warn });
    const node = new VvfatNode(volume, label11, vvfatJsonName(given));
    if (rw) await node.enableWrites(dir.length > 1 && dir.endsWith('/') ? dir.slice(0, -1) : dir);
    return node;
  },
};

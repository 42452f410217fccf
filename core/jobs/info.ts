// The info job (qemu-img info; qapi ImageInfo, block/qapi.c bdrv_query_image_info): the facts of
// an image as qemu-img's --output=json shows them, the backing chain as an array, and the human
// text of bdrv_image_info_dump.

import { qdictOrder } from '../util/qemu-json-print.ts';
import { strongOptions } from '../block/unread-options.ts';
import { isAbsolute } from 'node:path';
import { pathCombine, protocolPrefix } from '../block/filename.ts';
import type { BlockNode } from '../block/node.ts';
import { parseDottedOptions, type OptionsTree } from '../block/options-tree.ts';
import type { ImageInfo, SnapshotInfoJson } from '../api/types.ts';
import type { SnapshotInfo } from '../block/types.ts';
import { allocatedBytes, hostFiles, openSpec, type ImageSpec, type JobControl, type JobEnv } from './common.ts';
import { dumpObject, sizeToStr, snapshotTable } from './human.ts';

export interface InfoOptions {
  image: ImageSpec;
  backingChain?: boolean;
}

/** The backing file's name as QEMU opens it (path_combine with the image's name). */
export const fullBackingFilename = pathCombine;

/**
 * The name a backing file recorded in `node` opens as (QEMU's bdrv_make_absolute_filename): an
 * absolute or protocol/json: name as it is, a relative one in the directory of the file under
 * the node (bdrv_dirname, through filters); undefined where there is no such directory (a
 * quorum's children): qemu-img info then says "cannot determine actual path".
 */
export function absoluteBackingFilename(node: BlockNode, backing: string): string | undefined {
  if (isAbsolute(backing) || backing.startsWith('json:') || protocolPrefix(backing) !== undefined) return backing;
  const base = node.baseFile;
  const remoteDir = base?.remoteDirname;
  if (remoteDir) {
    try {
      return remoteDir() + backing;
    } catch {
      return undefined; // e.g. ssh with host_key_check: "cannot determine actual path"
    }
  }
  return base ? pathCombine(base.filename, backing) : undefined;
}

export function snapshotToJson(s: SnapshotInfo): SnapshotInfoJson {
  const out: SnapshotInfoJson = {
    id: s.id,
    name: s.name,
    'vm-state-size': s.vmStateSize,
    'date-sec': s.dateSec,
    'date-nsec': s.dateNsec,
    'vm-clock-sec': Math.floor(s.vmClockNsec / 1e9),
    'vm-clock-nsec': s.vmClockNsec % 1e9,
  };
  if (s.icount !== undefined) out.icount = s.icount;
  return out;
}

/** ImageInfo for one open node (its own layer only). */
export async function nodeInfo(node: BlockNode): Promise<ImageInfo> {
  const d = await node.info();
  // A protocol node at the top (--image-opts driver=file / vvfat / nbd) is described as itself:
  // its QEMU name, and its length in whole sectors (QEMU's bdrv_getlength).
  const isProtocol = node.driver.kind === 'protocol';
  const fileName = node.format === 'raw' ? node.file?.qemuFilename : undefined;
  const refreshed = fileName !== undefined ? `json:{"driver": "raw", "file": ${fileName.slice('json:'.length)}}` : isProtocol ? node.qemuFilename : undefined;
  const size = node.qemuLength;
  const out: ImageInfo = { 'virtual-size': size, filename: refreshed ?? node.filename, format: node.format };
  const cluster = d.clusterSize ?? node.clusterSize;
  // Drivers QEMU gives no get_info (bochs, cloop, dmg, parallels) show no cluster size or dirty flag.
  const noGetInfo = node.driver.kind === 'format' && node.driver.qemuNoGetInfo === true;
  if (cluster !== undefined && !noGetInfo) out['cluster-size'] = cluster;
  let actual = 0;
  let known = false;
  for (const f of hostFiles(node)) {
    const a = await allocatedBytes(f);
    if (a !== undefined) {
      actual += a;
      known = true;
    }
  }
  if (d.extraActualSize !== undefined && node.children.length === 0) {
    actual += d.extraActualSize;
    known = true;
  }
  // Storage a remote protocol counts itself (sheepdog: its vdi's objects, sd_get_allocated_file_size).
  // (A protocol node named at the top counts its own: gluster's fstat st_blocks.)
  const counted = node.file?.driver.kind === 'protocol' ? node.file : isProtocol ? node : undefined;
  const remote = !known && counted ? await counted.allocatedSize() : undefined;
  if (remote !== undefined) [actual, known] = [remote, true];
  if (known) out['actual-size'] = actual;
  if (d.encrypted) out.encrypted = true;
  if (d.formatSpecific) out['format-specific'] = d.formatSpecific;
  const backing = node.backingFile;
  if (backing) {
    out['backing-filename'] = backing.filename;
    const full = absoluteBackingFilename(node, backing.filename);
    if (full !== undefined) out['full-backing-filename'] = full;
    if (backing.format) out['backing-filename-format'] = backing.format;
  }
  if (node.snapshots) {
    const list = await node.snapshots.list();
    if (list.length > 0) out.snapshots = list.map(snapshotToJson);
  }
  // QEMU shows no dirty flag where bdrv_get_info fails: drivers without it (bochs, cloop, dmg,
  // parallels), and a protocol that cannot answer it (vvfat, nbd), at the top or under raw.
  const infoless = isProtocol ? node : node.format === 'raw' ? node.file : undefined;
  const noDriverInfo = infoless?.driver.kind === 'protocol' && infoless.driver.noDriverInfo === true;
  if (!noGetInfo && refreshed === undefined && !noDriverInfo) out['dirty-flag'] = d.dirtyFlag ?? false;
  if (d.children && d.children.length > 0) {
    out.children = [];
    for (const c of d.children) out.children.push({ name: c.name, info: await nodeInfo(c.node) });
  }
  return out;
}

/**
 * The name qemu-img shows for an --image-opts image: the plain file name when the options say no
 * more than "this format on this file", else a json: pseudo-filename of the options (QEMU's
 * bdrv_refresh_filename: driver, then the file child, then the format's other options).
 */
export function imageOptsDisplayName(spec: string, fallback: string): string {
  let tree: OptionsTree;
  try {
    tree = parseDottedOptions(spec);
  } catch {
    return fallback;
  }
  const { driver, file, ...all } = tree;
  // Only a driver's "strong" options name an image (raw's offset and size, an encryption
  // secret); the block layer's (detect-zeroes, node-name) and tuning ones (cache sizes) do not.
  const strong = typeof driver === 'string' ? strongOptions(driver) : [];
  const rest = Object.fromEntries(Object.entries(all).filter(([k]) => strong.includes(k)));
  const fileTree = typeof file === 'object' && file !== null && !Array.isArray(file) ? (file as OptionsTree) : undefined;
  // The file protocol's other options (locking, cache, aio) are run-time choices, not part of the name.
  const { driver: fileDriver, filename } = fileTree ?? {};
  if (Object.keys(rest).length === 0 && typeof filename === 'string') return filename;
  if (typeof driver !== 'string' || typeof filename !== 'string') return fallback;
  // A QDict: keys in QEMU's hash order (the options were added first, then "driver", then "file").
  const json: Record<string, unknown> = { ...rest, driver, file: { driver: fileDriver ?? 'file', filename } };
  const ordered = Object.fromEntries(qdictOrder(Object.keys(json)).map((k) => [k, json[k]]));
  return `json:${JSON.stringify(ordered).replace(/":/g, '": ').replace(/,"/g, ', "')}`;
}

/** qemu-img info: one ImageInfo, or the whole chain (top first) with backingChain. */
export async function info(opts: InfoOptions, env: JobEnv, ctl: JobControl = {}): Promise<ImageInfo | ImageInfo[]> {
  void ctl;
  const node = await openSpec(opts.image, env, { readOnly: true, noBacking: !opts.backingChain, noIo: true });
  try {
    const top = await nodeInfo(node);
    if (opts.image.imageOpts) top.filename = imageOptsDisplayName(opts.image.filename, top.filename);
    if (!opts.backingChain) return top;
    const out: ImageInfo[] = [top];
    for (const n of node.chain()) if (n !== node) out.push(await nodeInfo(n));
    return out;
  } finally {
    await node.close();
  }
}

/** The human text of one ImageInfo (qemu-img info without --output=json). */
export function humanInfo(i: ImageInfo): string {
  const lines = [
    `image: ${i.filename}`,
    `file format: ${i.format}`,
    `virtual size: ${sizeToStr(i['virtual-size'])} (${i['virtual-size']} bytes)`,
    `disk size: ${i['actual-size'] !== undefined ? sizeToStr(i['actual-size']) : 'unavailable'}`,
  ];
  if (i['cluster-size'] !== undefined) lines.push(`cluster_size: ${i['cluster-size']}`);
  if (i.encrypted) lines.push('encrypted: yes');
  if (i['dirty-flag']) lines.push('cleanly shut down: no');
  if (i['backing-filename'] !== undefined) {
    const full = i['full-backing-filename'];
    const where = full === undefined ? ' (cannot determine actual path)' : full !== i['backing-filename'] ? ` (actual path: ${full})` : '';
    lines.push(`backing file: ${i['backing-filename']}${where}`);
    if (i['backing-filename-format'] !== undefined) lines.push(`backing file format: ${i['backing-filename-format']}`);
  }
  if (i.snapshots && i.snapshots.length > 0) lines.push(snapshotTable(i.snapshots));
  if (i['format-specific']) {
    lines.push('Format specific information:');
    lines.push(...dumpObject(i['format-specific'].data, 4));
  }
  return lines.join('\n') + '\n';
}

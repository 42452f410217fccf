// The map job (qemu-img map; qemu-img.c img_map / get_block_status / entry_mergeable, 7.2): the
// image's extents through its backing chain, with the layer each comes from, merged exactly as
// qemu-img merges them, and the human "Offset Length Mapped to File" table.

import { blockStatusAbove, type BlockNode } from '../block/node.ts';
import type { MapEntry } from '../api/types.ts';
import { cancelled, invalidArgument } from '../errors.ts';
import { fullBackingFilename } from './info.ts';
import { openSpec, progressReporter, type ImageSpec, type JobControl, type JobEnv } from './common.ts';

export interface MapOptions {
  image: ImageSpec;
  start?: number;
  length?: number;
}

/** qemu-img map asks block status for at most 1 GiB at a time. */
const MAX_QUERY = 1 << 30;

/** Internal entry: MapEntry plus the host file name (for the human table and merging). */
export interface MapExtent extends MapEntry {
  filename?: string;
}

/** qemu-img's entry_mergeable: same flags and depth, same file, and contiguous host offsets. */
export function mergeable(cur: MapExtent, next: MapExtent): boolean {
  if (cur.length === 0) return false;
  // 7.2 neither prints nor compares "compressed" (newer QEMU does): a merged entry is marked
  // compressed in the API data when any part of it is.
  if (cur.zero !== next.zero || cur.data !== next.data || cur.depth !== next.depth || cur.present !== next.present) return false;
  if ((cur.filename === undefined) !== (next.filename === undefined) || cur.filename !== next.filename) return false;
  if ((cur.offset === undefined) !== (next.offset === undefined)) return false;
  if (cur.offset !== undefined && cur.offset + cur.length !== next.offset) return false;
  return true;
}

/**
 * The file name qemu-img shows for each layer of the chain: the top's file as given, and each
 * backing file as QEMU names it when it opens it (path_combine of the layer above's name and the
 * recorded backing name), rather than the absolute path Platter opened.
 */
function layerFileNames(top: BlockNode): string[] {
  const names: string[] = [];
  let prevImageName = top.filename;
  for (const n of top.chain()) {
    if (names.length === 0) names.push((n.file ?? n).filename);
    else {
      const parent = [...top.chain()][names.length - 1]!;
      const rec = parent.backingFile?.filename;
      const name = rec !== undefined ? fullBackingFilename(prevImageName, rec) : (n.file ?? n).filename;
      names.push(name);
      prevImageName = name;
    }
  }
  return names;
}

export async function map(o: MapOptions, env: JobEnv, ctl: JobControl = {}): Promise<MapExtent[]> {
  return mapNodeWith(o, env, ctl);
}

async function mapNodeWith(o: MapOptions, env: JobEnv, ctl: JobControl): Promise<MapExtent[]> {
  const node = await openSpec(o.image, env, { readOnly: true });
  try {
    return await mapNode(node, o.start ?? 0, o.length, ctl);
  } finally {
    await node.close();
  }
}

/** Merged map entries of an open node for [start, start+length). */
export async function mapNode(node: BlockNode, start: number, length: number | undefined, ctl: JobControl = {}): Promise<MapExtent[]> {
  if (start < 0) throw invalidArgument('Invalid start offset specified: it is negative');
  const total = node.qemuLength;
  const end = Math.min(total, length === undefined ? total : start + length);
  const out: MapExtent[] = [];
  let cur: MapExtent | undefined;
  const progress = progressReporter(ctl, Math.max(0, end - start), 'mapping');
  const names = layerFileNames(node);
  for (let off = start; off < end; ) {
    if (ctl.signal?.aborted) throw cancelled();
    // Past a protocol node's last byte, up to its whole sector: zeros where the file ends, as
    // file-posix answers there.
    const st = off >= node.size ? { length: end - off, depth: 0, allocated: true, zero: true, data: false, hostOffset: off, node, hostFile: undefined, compressed: undefined } : await blockStatusAbove(node, off, Math.min(MAX_QUERY, end - off));
    const e: MapExtent = { start: off, length: st.length, depth: st.depth, present: st.allocated, zero: st.zero, data: st.data };
    if (st.compressed) e.compressed = true;
    if (st.hostOffset !== undefined && st.node) {
      e.offset = st.hostOffset;
      const f = st.hostFile ?? names[st.depth];
      if (f !== undefined) e.filename = f;
    }
    if (cur && mergeable(cur, e)) {
      cur.length += e.length;
      if (e.compressed) cur.compressed = true;
    }
    else {
      if (cur) out.push(cur);
      cur = e;
    }
    off += st.length;
    progress.add(st.length);
  }
  // Nothing to map (an empty image, --max-length 0): qemu-img prints its blank first entry.
  out.push(cur ?? { start, length: 0, depth: 0, present: false, zero: false, data: false });
  progress.finish();
  return out;
}

/** The JSON text of qemu-img 7.2 map --output=json (one entry per line, its spacing; 7.2 has no
 *  "compressed" key). */
export function jsonMap(entries: readonly MapExtent[]): string {
  const line = (e: MapExtent) => {
    let s = `{ "start": ${e.start}, "length": ${e.length}, "depth": ${e.depth}, "present": ${e.present}, "zero": ${e.zero}, "data": ${e.data}`;
    if (e.offset !== undefined) s += `, "offset": ${e.offset}`;
    return s + '}';
  };
  return '[' + entries.map(line).join(',\n') + ']\n';
}

/** printf("%#-16"PRIx64): "0x..." left-justified in 16 columns, and plain "0" for zero. */
function hex16(v: number): string {
  return (v === 0 ? '0' : `0x${v.toString(16)}`).padEnd(16);
}

/** The human table of qemu-img map: data extents only; external/compressed data cannot be shown.
 *  Written as qemu-img writes it: the heading and the rows before such data, then the error. */
export function humanMap(entries: readonly MapExtent[], write: (text: string) => void): void {
  let s = `${'Offset'.padEnd(16)}${'Length'.padEnd(16)}${'Mapped to'.padEnd(16)}File\n`;
  for (const e of entries) {
    if (e.data && e.offset === undefined) {
      write(s);
      throw invalidArgument('File contains external, encrypted or compressed clusters.');
    }
    if (e.data && !e.zero) s += `${hex16(e.start)}${hex16(e.length)}${hex16(e.offset ?? 0)}${e.filename ?? ''}\n`;
  }
  write(s);
}

/** The API's MapEntry list (host file names kept: the GUI and the human table show them). */
export function toApiEntries(entries: readonly MapExtent[]): MapEntry[] {
  return [...entries];
}

// Building the virtual FAT volume from a host directory tree, as QEMU 7.2's vvfat does at open
// (block/vvfat.c read_directory, init_directories): every directory is read in the host's own
// order (readdir), each entry gets VFAT long-name entries and an 8.3 short name, and clusters are
// handed out breadth first (the root, then each directory's files and subdirectories in turn, a
// file's clusters in one run). Only metadata is built here; file data stays on the host and is
// read when the guest reads its clusters (node.ts).
//
// Host entries are followed as stat(2) sees them, as QEMU does: a symbolic link shows as what it
// points to, a dangling link is left out, a device, FIFO or socket is an empty file. A directory
// that contains itself through a link would make QEMU recurse until the volume is full; Platter
// stops at once with the same message.

import { lstat, opendir, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { BlockError } from '../../errors.ts';
import { DIRENT_SIZE, longNameEntries, shortName, shortNameChecksum } from './names.ts';
import { FatTable, fatDateTime, type VolumeLayout } from './layout.ts';

/** Attribute bytes (FAT spec DIR_Attr). */
const ATTR_DIRECTORY = 0x10;
const ATTR_ARCHIVE = 0x20;
const ATTR_VOLUME_LABEL = 0x28; // archive | volume id, as QEMU writes it
/** Largest file QEMU maps (st_size above 0x7fffffff is refused). */
const MAX_FILE_SIZE = 0x7fffffff;

/** A run of clusters: a directory's entries or a host file's bytes. */
export interface Mapping {
  kind: 'dir' | 'file';
  /** First cluster and one past the last. */
  begin: number;
  end: number;
  /** Host path (raw bytes, as the host names it). */
  path: Buffer;
  /** dir: its entries, a whole number of clusters. */
  entries?: Buffer;
  /** file: its size when scanned. */
  size?: number;
  /** Path below the root, '/'-separated ('' for the root). */
  rel: string;
  /** rw: every cluster of this file is now in the overlay (its host file may be gone). */
  materialised?: boolean;
}

/** What the host held at a path when the tree was read (what `rw` commits compare against). */
export interface HostEntry {
  kind: 'dir' | 'file' | 'other';
  /** A symbolic link on the host (followed for the view; never written through by rw). */
  link: boolean;
  size: number;
  mtimeMs: number;
  ino: number;
  /** The name was valid UTF-8 (else the volume shows it without a long name). */
  utf8: boolean;
  /** No write permission bit set (QEMU's read_only mapping: its clusters may not be written). */
  readOnly?: boolean;
}

export interface Volume {
  layout: VolumeLayout;
  fat: FatTable;
  /** In cluster order (breadth first, as QEMU assigns them). */
  mappings: Mapping[];
  /** Clusters used, including the root directory. */
  usedClusters: number;
  /** The next cluster after the last used one. */
  nextFreeCluster: number;
  /** Every host entry shown, by path below the root (the root itself is ''). */
  host: Map<string, HostEntry>;
}

interface Pending {
  kind: 'dir' | 'file';
  path: Buffer;
  size: number;
  /** Where this entry's short entry is, to write its first cluster into. */
  entryOf?: { entries: Buffer; offset: number };
  /** dir: begin of the parent directory's clusters (for ".."), and the ancestors' inodes. */
  parentBegin?: number;
  ancestors?: readonly string[];
  ino?: string;
  rel: string;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function joinPath(dir: Buffer, name: Buffer): Buffer {
  return Buffer.concat([dir, Buffer.from('/'), name]);
}

function text(path: Buffer): string {
  return path.toString('utf8');
}

function setBegin(entries: Buffer, offset: number, cluster: number): void {
  entries.writeUInt16LE(cluster & 0xffff, offset + 26);
  entries.writeUInt16LE((cluster >>> 16) & 0xffff, offset + 20);
}

/** The times and attributes of a short entry from the host's stat (QEMU's read_directory). */
function fillFromStat(e: Buffer, st: Stats, size: number): void {
  e[11] = st.isDirectory() ? ATTR_DIRECTORY : ATTR_ARCHIVE;
  e[12] = 0;
  e[13] = 0;
  const c = fatDateTime(st.ctimeMs);
  const a = fatDateTime(st.atimeMs);
  const m = fatDateTime(st.mtimeMs);
  e.writeUInt16LE(c.time, 14);
  e.writeUInt16LE(c.date, 16);
  e.writeUInt16LE(a.date, 18);
  e.writeUInt16LE(0, 20);
  e.writeUInt16LE(m.time, 22);
  e.writeUInt16LE(m.date, 24);
  e.writeUInt16LE(0, 26);
  e.writeUInt32LE(size, 28);
}

export interface ScanOptions {
  /** Called with QEMU's stderr lines (too many root entries, file too large, bad UTF-8). */
  warn(message: string): void;
  signal?: AbortSignal;
}

/**
 * Read the tree under `root` into a volume of layout `l` with volume label `label11`.
 * Errors are QEMU's: "Could not read directory X", "Directory does not fit in FATn (capacity
 * x.xx MB)".
 */
export async function scanTree(root: string, l: VolumeLayout, label11: Buffer, o: ScanOptions): Promise<Volume> {
  const fat = new FatTable(l.fatType, l.sectorsPerFat);
  const cb = l.clusterBytes;
  const entriesPerCluster = cb / DIRENT_SIZE;
  const rootPath = Buffer.from(root.length > 1 && root.endsWith('/') ? root.slice(0, -1) : root);
  const fail = (path: Buffer) => new BlockError('Io', `Could not read directory ${text(path)}`, { path: text(path) });
  const tooBig = () => new BlockError('InvalidArgument', `Directory does not fit in FAT${l.fatType} (capacity ${l.capacityMb} MB)`);

  /** Read one directory: its entries (padded to whole clusters) and the children to map. */
  const readDirectory = async (p: Pending, begin: number): Promise<{ entries: Buffer; children: Pending[] }> => {
    const isRoot = p.entryOf === undefined;
    const list: Buffer[] = [];
    const taken = new Set<string>();
    const children: Pending[] = [];
    const add = (e: Buffer) => {
      list.push(e);
      if (e[11] !== 0x0f) taken.add(e.subarray(0, 11).toString('latin1'));
    };
    if (isRoot) {
      const label = Buffer.alloc(DIRENT_SIZE);
      label11.copy(label, 0, 0, 11);
      label[11] = ATTR_VOLUME_LABEL;
      add(label);
    } else {
      // "." and ".." first, with the times of the directory and of its parent.
      for (const [dotName, target, cluster] of [
        ['.', p.path, begin],
        ['..', joinPath(p.path, Buffer.from('..')), l.fatType === 32 && p.parentBegin === l.rootCluster ? 0 : p.parentBegin!],
      ] as const) {
        const e = Buffer.alloc(DIRENT_SIZE, 0);
        e.fill(0x20, 0, 11);
        e.write(dotName, 0, 'latin1');
        const st = await stat(dotName === '.' ? joinPath(p.path, Buffer.from('.')) : target).catch(() => undefined);
        if (st) {
          fillFromStat(e, st, 0);
          setBegin(e, 0, cluster);
        }
        add(e);
      }
    }
    let dir;
    try {
      dir = await opendir(p.path as unknown as string, { encoding: 'buffer' as BufferEncoding });
    } catch {
      throw fail(p.path);
    }
    try {
      for await (const d of dir) {
        if (o.signal?.aborted) throw new BlockError('Cancelled', 'Operation cancelled');
        if (isRoot && l.fatType !== 32 && list.length >= l.rootEntries - 1) {
          o.warn('Too many entries in root directory');
          throw fail(p.path);
        }
        const rawName = d.name as unknown as Buffer;
        const full = joinPath(p.path, rawName);
        const rel = p.rel ? `${p.rel}/${rawName.toString('utf8')}` : rawName.toString('utf8');
        let st: Stats;
        try {
          st = await stat(full);
        } catch {
          continue; // dangling link or vanished entry: QEMU leaves it out
        }
        let name: string;
        let validUtf8 = true;
        try {
          name = decoder.decode(rawName);
        } catch {
          validUtf8 = false;
          name = rawName.toString('utf8');
          o.warn(`vvfat: invalid UTF-8 name: ${name}`);
        }
        const short = shortName(name, taken);
        if (!short) throw fail(p.path);
        if (validUtf8) {
          const lfn = longNameEntries(name, shortNameChecksum(short));
          for (let k = 0; k < lfn.length; k += DIRENT_SIZE) add(lfn.subarray(k, k + DIRENT_SIZE));
        }
        const e = Buffer.alloc(DIRENT_SIZE);
        short.copy(e, 0);
        const isDir = st.isDirectory();
        const size = isDir ? 0 : st.isFile() ? st.size : 0;
        if (size > MAX_FILE_SIZE) {
          o.warn(`File ${text(full)} is larger than 2GB`);
          throw fail(p.path);
        }
        fillFromStat(e, st, size);
        const lst = await lstat(full).catch(() => undefined);
        const link = lst?.isSymbolicLink() ?? false;
        host.set(rel, { kind: isDir ? 'dir' : st.isFile() ? 'file' : 'other', link, size, mtimeMs: st.mtimeMs, ino: link ? lst!.ino : st.ino, utf8: validUtf8, readOnly: (st.mode & 0o222) === 0 });
        const at = list.length * DIRENT_SIZE;
        add(e);
        if (isDir) {
          const ino = `${st.dev}:${st.ino}`;
          const ancestors = [...(p.ancestors ?? []), p.ino ?? ''];
          if (ancestors.includes(ino)) throw tooBig(); // a link loop: QEMU would fill the volume
          children.push({ kind: 'dir', path: full, size: 0, entryOf: { entries: Buffer.alloc(0), offset: at }, ancestors, ino, rel });
        } else if (size > 0) {
          children.push({ kind: 'file', path: full, size, entryOf: { entries: Buffer.alloc(0), offset: at }, rel });
        }
      }
    } finally {
      await dir.close().catch(() => {});
    }
    // Pad with free entries to whole clusters; a FAT12/16 root fills its fixed area.
    let count = list.length;
    if (isRoot && l.fatType !== 32) {
      if (count > l.rootEntries) {
        o.warn('Too many entries in root directory');
        throw fail(p.path);
      }
      count = l.rootEntries;
    } else count = Math.max(entriesPerCluster, Math.ceil(count / entriesPerCluster) * entriesPerCluster);
    const entries = Buffer.alloc(count * DIRENT_SIZE);
    list.forEach((e, i) => e.copy(entries, i * DIRENT_SIZE));
    for (const c of children) c.entryOf!.entries = entries;
    return { entries, children };
  };

  const rootStat = await stat(rootPath).catch(() => undefined);
  if (!rootStat?.isDirectory()) throw fail(rootPath);
  const host = new Map<string, HostEntry>();
  host.set('', { kind: 'dir', link: false, size: 0, mtimeMs: rootStat.mtimeMs, ino: rootStat.ino, utf8: true });
  const queue: Pending[] = [{ kind: 'dir', path: rootPath, size: 0, ino: `${rootStat.dev}:${rootStat.ino}`, rel: '' }];
  const mappings: Mapping[] = [];
  let cluster = l.rootCluster;
  for (let i = 0; i < queue.length; i++) {
    const p = queue[i]!;
    const begin = cluster;
    let m: Mapping;
    if (p.kind === 'dir') {
      const { entries, children } = await readDirectory(p, begin);
      for (const c of children) if (c.kind === 'dir') c.parentBegin = begin;
      queue.push(...children);
      m = { kind: 'dir', begin, end: begin + entries.length / cb, path: p.path, entries, rel: p.rel };
    } else {
      m = { kind: 'file', begin, end: begin + Math.ceil(p.size / cb), path: p.path, size: p.size, rel: p.rel };
    }
    if (p.entryOf) setBegin(p.entryOf.entries, p.entryOf.offset, begin);
    mappings.push(m);
    cluster = m.end;
    if (cluster > l.clusterLimit) throw tooBig();
    // Chain the run; the FAT12/16 root area is not in the FAT (QEMU leaves entries 0 and 1 to
    // the media signature).
    if (i !== 0 || l.fatType === 32) {
      for (let c = m.begin; c < m.end - 1; c++) fat.set(c, c + 1);
      fat.set(m.end - 1, l.maxFatValue);
    }
  }
  // The FAT signature: the media byte in entry 0, entry 1 all ones (clean).
  fat.set(0, l.maxFatValue);
  fat.set(1, l.maxFatValue);
  fat.bytes[0] = l.geometry.bootSector > 0 ? 0xf8 : 0xf0;
  return { layout: l, fat, mappings, usedClusters: cluster - l.firstDataCluster, nextFreeCluster: cluster, host };
}

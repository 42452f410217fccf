// The desktop app's image library (virt-manager's storage pool view): turns the folders and files a
// user added into one row per disk image, with what `qemu-img info` says about it plus file facts
// (modified time, lock state). Built only on the service's `info`, so it sees exactly what the CLI
// sees. Plain data out, so rows cross IPC as they are.

import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { z } from 'zod';
import type { PlatterService } from './service.ts';
import type { ImageInfo, SerializedError } from './types.ts';
import { serializeError } from '../errors.ts';
import { isRemoteRoot, scanRemoteRoots } from './routes-remote.ts';

/** File name endings the library lists from a folder (any file can still be added by path). */
export const IMAGE_EXTENSIONS = new Set([
  '.qcow2', '.qcow', '.img', '.raw', '.vmdk', '.vdi', '.vhd', '.vhdx', '.vpc', '.qed', '.iso', '.luks',
  '.dmg', '.bochs', '.cloop', '.hdd', '.hds', '.parallels', '.bin', '.disk',
]);

/** VMDK extent files (x-flat.vmdk, x-s001.vmdk, x-f001.vmdk) belong to their descriptor: not rows. */
const VMDK_EXTENT_NAME = /-(flat|s\d{3}|f\d{3})\.vmdk$/i;

/** The most files one scan lists (bounds memory and time on a huge folder). */
export const MAX_SCAN_FILES = 20_000;
/** How deep a recursive folder scan goes. */
const MAX_SCAN_DEPTH = 4;
/** Images probed at once (each probe is a few small reads). */
const SCAN_CONCURRENCY = 4;

export const libraryScanInput = z.object({
  /** Folders (their images are listed) and image files. */
  paths: z.array(z.string().min(1)).max(1000),
  /** Also list sub-folders. */
  recursive: z.boolean().optional(),
});
export type LibraryScanInput = z.input<typeof libraryScanInput>;

export type LockState = 'free' | 'in-use' | 'unknown';

/** One library row. */
export interface LibraryEntry {
  path: string;
  name: string;
  dir: string;
  /** The folder (or file) the user added that brought this row in. */
  root: string;
  format?: string;
  virtualSize?: number;
  actualSize?: number;
  encrypted?: boolean;
  dirty?: boolean;
  clusterSize?: number;
  /** The backing file as recorded in the image, and resolved to a path. */
  backingFile?: string;
  fullBackingFile?: string;
  backingFormat?: string;
  snapshots: NonNullable<ImageInfo['snapshots']>;
  /** Persistent dirty bitmaps (qcow2: qemu-img info's format-specific "bitmaps"). */
  bitmaps?: { name: string; granularity: number; flags: string[] }[];
  /** 'in-use': another process holds the write lock (qemu-img would say "Is another process using the image?"). */
  lock: LockState;
  /** File modification time, ms since the epoch. */
  modified: number;
  /** Why the image could not be read (the row still shows, with the error in words). */
  error?: SerializedError;
}

const serialize = serializeError;

/** The image files under `dir` (sorted, bounded). */
async function listImages(dir: string, recursive: boolean, depth: number, out: string[]): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    if (out.length >= MAX_SCAN_FILES) return;
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (recursive && depth < MAX_SCAN_DEPTH) await listImages(p, recursive, depth + 1, out);
    } else if (e.isFile() && IMAGE_EXTENSIONS.has(extname(e.name).toLowerCase()) && !VMDK_EXTENT_NAME.test(e.name)) {
      out.push(p);
    }
  }
}

async function describe(service: PlatterService, path: string, root: string): Promise<LibraryEntry> {
  const base: LibraryEntry = { path, name: basename(path), dir: dirname(path), root, snapshots: [], lock: 'unknown', modified: 0 };
  try {
    base.modified = (await stat(path)).mtimeMs;
  } catch (e) {
    return { ...base, error: serialize(e) };
  }
  let info: ImageInfo | undefined;
  // First as qemu-img info does (it refuses an image another process writes), then with -U.
  try {
    info = (await service.info({ image: { filename: path } })) as ImageInfo;
    base.lock = 'free';
  } catch (e) {
    if ((e as { kind?: string }).kind !== 'Locked') return { ...base, error: serialize(e) };
    base.lock = 'in-use';
    try {
      info = (await service.info({ image: { filename: path, forceShare: true } })) as ImageInfo;
    } catch (e2) {
      return { ...base, error: serialize(e2) };
    }
  }
  return {
    ...entryFacts(base, info),
    ...(info['full-backing-filename'] !== undefined ? { fullBackingFile: resolve(dirname(path), info['full-backing-filename']) } : {}),
  };
}

/** A row's facts from `qemu-img info` of its image (local or remote). */
export function entryFacts(base: LibraryEntry, info: ImageInfo): LibraryEntry {
  return {
    ...base,
    format: info.format,
    virtualSize: info['virtual-size'],
    ...(info['actual-size'] !== undefined ? { actualSize: info['actual-size'] } : {}),
    encrypted: info.encrypted ?? false,
    ...(info['dirty-flag'] !== undefined ? { dirty: info['dirty-flag'] } : {}),
    ...(info['cluster-size'] !== undefined ? { clusterSize: info['cluster-size'] } : {}),
    ...(info['backing-filename'] !== undefined ? { backingFile: info['backing-filename'] } : {}),
    ...(info['backing-filename-format'] !== undefined ? { backingFormat: info['backing-filename-format'] } : {}),
    snapshots: info.snapshots ?? [],
    ...(Array.isArray(info['format-specific']?.data['bitmaps']) ? { bitmaps: info['format-specific']!.data['bitmaps'] as NonNullable<LibraryEntry['bitmaps']> } : {}),
  };
}

/** One row per image in the given folders and files (duplicates once; order: as given, then by name). */
export async function scanLibrary(service: PlatterService, input: LibraryScanInput): Promise<LibraryEntry[]> {
  const files: { path: string; root: string }[] = [];
  const seen = new Set<string>();
  for (const given of input.paths) {
    if (isRemoteRoot(given)) continue; // nbd:, fat:, ssh://, iscsi:// (routes-remote.ts)
    const root = resolve(given);
    let st;
    try {
      st = await stat(root);
    } catch {
      continue; // a folder removed since it was added: nothing to list
    }
    const found: string[] = [];
    if (st.isDirectory()) await listImages(root, input.recursive ?? false, 0, found);
    else if (st.isFile()) found.push(root);
    for (const p of found) {
      if (seen.has(p) || files.length >= MAX_SCAN_FILES) continue;
      seen.add(p);
      files.push({ path: p, root });
    }
  }
  const rows: LibraryEntry[] = new Array(files.length);
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const i = next++;
      rows[i] = await describe(service, files[i]!.path, files[i]!.root);
    }
  };
  await Promise.all(Array.from({ length: Math.min(SCAN_CONCURRENCY, files.length) }, worker));
  return [...rows, ...(await scanRemoteRoots(service, input.paths.filter(isRemoteRoot)))];
}

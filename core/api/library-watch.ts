// The library's file watcher (desktop app, main process): watches the folders in the library with
// node:fs.watch and reports, debounced, which folders changed (an image created, deleted, renamed
// or written by Platter or by another program such as qemu-img), so the renderer re-scans them
// without a Refresh click. Where fs.watch fails (network file systems, inotify limits) the folder is
// polled instead: a cheap listing of names, sizes and modification times compared between ticks.
// The number of watched folders is bounded.

import { watch, type FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';

/** The most folders watched at once (each costs an inotify watch or a poll timer). */
export const MAX_WATCHED_FOLDERS = 64;
/** Changes within this window are reported once (a convert writes thousands of times). */
export const WATCH_DEBOUNCE_MS = 300;
/** How often a folder fs.watch cannot watch is listed again. */
export const POLL_INTERVAL_MS = 2000;
/** The most directory entries one poll compares (bounds memory on a huge folder). */
const MAX_POLL_ENTRIES = 20_000;

export const libraryWatchInput = z.object({
  /** The library's folders and files (a file's folder is watched). Replaces the previous set. */
  paths: z.array(z.string().min(1).max(4096)).max(1000),
});
export type LibraryWatchInput = z.input<typeof libraryWatchInput>;

interface Watched {
  /** The folder the user added (or the added file's folder). */
  folder: string;
  /** The library paths this folder stands for (reported back as the changed roots). */
  roots: Set<string>;
  watcher?: FSWatcher;
  poll?: ReturnType<typeof setInterval>;
  signature?: string;
}

export interface LibraryWatcher {
  /** Watch exactly these library paths (folders, or files whose folder is watched). */
  set(paths: string[]): Promise<{ watching: number; polling: number; dropped: number }>;
  close(): void;
}

/** Names, sizes and times of a folder's entries: equal signatures mean nothing changed. */
async function folderSignature(folder: string): Promise<string> {
  let names: string[];
  try {
    names = (await readdir(folder)).slice(0, MAX_POLL_ENTRIES).sort();
  } catch {
    return 'missing';
  }
  const parts: string[] = [];
  for (const name of names) {
    try {
      const st = await stat(join(folder, name));
      parts.push(`${name}\0${st.size}\0${st.mtimeMs}`);
    } catch {
      parts.push(`${name}\0gone`);
    }
  }
  return parts.join('\n');
}

export interface LibraryWatcherOptions {
  /** Poll every folder instead of fs.watch (tests of the fallback; file systems without events). */
  poll?: boolean;
  pollIntervalMs?: number;
  debounceMs?: number;
}

/** A watcher that calls `onChange(roots)` with the library paths whose folder changed. */
export function createLibraryWatcher(onChange: (roots: string[]) => void, options: LibraryWatcherOptions = {}): LibraryWatcher {
  const debounceMs = options.debounceMs ?? WATCH_DEBOUNCE_MS;
  const pollMs = options.pollIntervalMs ?? POLL_INTERVAL_MS;
  const watched = new Map<string, Watched>();
  const pending = new Set<string>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;

  const flush = () => {
    timer = undefined;
    if (closed || pending.size === 0) return;
    const roots = [...pending];
    pending.clear();
    onChange(roots);
  };
  const changed = (w: Watched) => {
    for (const r of w.roots) pending.add(r);
    timer ??= setTimeout(flush, debounceMs);
  };

  const stop = (w: Watched) => {
    w.watcher?.close();
    if (w.poll) clearInterval(w.poll);
  };

  const startPolling = async (w: Watched) => {
    w.signature = await folderSignature(w.folder);
    if (closed || watched.get(w.folder) !== w) return;
    w.poll = setInterval(() => {
      void folderSignature(w.folder).then((sig) => {
        if (sig !== w.signature) {
          w.signature = sig;
          changed(w);
        }
      });
    }, pollMs);
    w.poll.unref?.();
  };

  const start = async (w: Watched) => {
    if (options.poll) return startPolling(w);
    try {
      w.watcher = watch(w.folder, { persistent: false }, () => changed(w));
      // A watcher that dies later (folder removed, limits) hands over to polling.
      w.watcher.on('error', () => {
        w.watcher?.close();
        delete w.watcher;
        if (!closed && watched.get(w.folder) === w) void startPolling(w);
      });
    } catch {
      delete w.watcher;
      await startPolling(w);
    }
  };

  return {
    async set(paths) {
      if (closed) return { watching: 0, polling: 0, dropped: 0 };
      // Which folder stands for each path: a folder itself, or a file's folder.
      const wanted = new Map<string, Set<string>>();
      let dropped = 0;
      for (const p of paths) {
        if (/^(nbd(\+unix|\+tcp)?:|fat:|ssh:\/\/|iscsi:\/\/)/.test(p)) continue; // remote sources: nothing to watch
        const root = resolve(p);
        let folder = root;
        try {
          if (!(await stat(root)).isDirectory()) folder = dirname(root);
        } catch {
          folder = dirname(root); // gone: its folder shows when it comes back
        }
        const roots = wanted.get(folder);
        if (roots) roots.add(p);
        else if (wanted.size < MAX_WATCHED_FOLDERS) wanted.set(folder, new Set([p]));
        else dropped++;
      }
      for (const [folder, w] of watched) {
        if (!wanted.has(folder)) {
          stop(w);
          watched.delete(folder);
        }
      }
      for (const [folder, roots] of wanted) {
        const have = watched.get(folder);
        if (have) {
          have.roots = roots;
          continue;
        }
        const w: Watched = { folder, roots };
        watched.set(folder, w);
        await start(w);
      }
      let polling = 0;
      for (const w of watched.values()) if (!w.watcher) polling++;
      return { watching: watched.size - polling, polling, dropped };
    },
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      for (const w of watched.values()) stop(w);
      watched.clear();
      pending.clear();
    },
  };
}

// The library store (zustand): the folders/files the user added (persisted: paths only, never
// secrets), the rows a scan found, the selection and the table filter. The main process watches the
// library folders (libraryWatch) and says which changed ('library-changed'): refreshRoots re-scans
// only those and keeps the other rows.

import { create } from 'zustand';
import { persist, createJSONStorage } from 'zustand/middleware';
import type { LibraryEntry } from '../../core/api/library.ts';
import { api } from '../api-client.ts';

export interface LibraryState {
  roots: string[];
  entries: LibraryEntry[];
  scanning: boolean;
  scanError?: string;
  selected?: string;
  filter: string;
  addRoots(paths: string[]): void;
  removeRoot(path: string): void;
  refresh(): Promise<void>;
  /** Re-scan only these library paths (their folder changed on disk). */
  refreshRoots(roots: string[]): Promise<void>;
  select(path: string | undefined): void;
  setFilter(text: string): void;
}

let scanSeq = 0;
/** Roots reported changed whose re-scan has not landed yet (a newer scan was started meanwhile). */
const dirtyRoots = new Set<string>();

/** Does a row's root (resolved by the scan) belong to this library path? */
const sameRoot = (rowRoot: string, root: string) => rowRoot === root || rowRoot === root.replace(/\/+$/, '');

/** Tell the main process which folders to watch (best effort: Refresh still works without). */
async function watchRoots(roots: string[]): Promise<void> {
  await api.libraryWatch({ paths: roots }).catch(() => {});
}

function keepSelection(entries: LibraryEntry[], selected: string | undefined): string | undefined {
  return entries.some((e) => e.path === selected) ? selected : undefined;
}

export const useLibrary = create<LibraryState>()(
  persist(
    (set, get) => ({
      roots: [],
      entries: [],
      scanning: false,
      filter: '',
      addRoots(paths) {
        const cleaned = paths.map((p) => p.trim()).filter(Boolean);
        const roots = [...get().roots];
        for (const p of cleaned) if (!roots.includes(p)) roots.push(p);
        set({ roots });
        void get().refresh();
      },
      removeRoot(path) {
        set({ roots: get().roots.filter((r) => r !== path) });
        void get().refresh();
      },
      async refresh() {
        const seq = ++scanSeq;
        set({ scanning: true, scanError: undefined });
        try {
          const roots = get().roots;
          const entries = await api.libraryScan({ paths: roots });
          // Watched before the rows show: a change made after the rows appear is always seen.
          await watchRoots(roots);
          if (seq !== scanSeq) return;
          set({ entries, scanning: false, selected: keepSelection(entries, get().selected) });
          // Folders that changed while this scan ran may have changed after it read them.
          if (dirtyRoots.size) void get().refreshRoots([]);
        } catch (e) {
          if (seq === scanSeq) set({ scanning: false, scanError: (e as Error).message });
        }
      },
      async refreshRoots(changed) {
        for (const r of get().roots) if (changed.includes(r)) dirtyRoots.add(r);
        // A full scan in flight re-scans these when it lands (see refresh).
        if (dirtyRoots.size === 0 || get().scanning) return;
        const seq = ++scanSeq;
        const scanned = [...dirtyRoots];
        try {
          const fresh = await api.libraryScan({ paths: scanned });
          if (seq !== scanSeq) return; // a newer scan is in flight; dirtyRoots keeps these for it
          for (const r of scanned) dirtyRoots.delete(r);
          const old = get().entries;
          const seen = new Set<string>();
          const entries: LibraryEntry[] = [];
          for (const r of get().roots) {
            const rows = scanned.includes(r) ? fresh.filter((e) => sameRoot(e.root, r)) : old.filter((e) => sameRoot(e.root, r));
            for (const e of rows) {
              if (seen.has(e.path)) continue;
              seen.add(e.path);
              entries.push(e);
            }
          }
          set({ entries, selected: keepSelection(entries, get().selected) });
          // Reported again while this scan ran: once more.
          if (dirtyRoots.size) void get().refreshRoots([]);
        } catch {
          // the next change or a Refresh tries again
        }
      },
      select(path) {
        set({ selected: path });
      },
      setFilter(filter) {
        set({ filter });
      },
    }),
    {
      name: 'platter.library',
      storage: createJSONStorage(() => localStorage),
      // Only the folder list survives a restart: rows are re-read from disk.
      partialize: (s) => ({ roots: s.roots }),
    },
  ),
);

export const selectedEntry = (s: LibraryState) => s.entries.find((e) => e.path === s.selected);

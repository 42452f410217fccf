// The library store (zustand): the folders/files the user added (persisted: paths only, never
// secrets), the rows a scan found, the selection and the table filter.

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
  select(path: string | undefined): void;
  setFilter(text: string): void;
}

let scanSeq = 0;

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
          const entries = await api.libraryScan({ paths: get().roots });
          if (seq !== scanSeq) return;
          const selected = get().selected;
          set({ entries, scanning: false, selected: entries.some((e) => e.path === selected) ? selected : undefined });
        } catch (e) {
          if (seq === scanSeq) set({ scanning: false, scanError: (e as Error).message });
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

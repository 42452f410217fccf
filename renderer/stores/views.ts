// The store of issue #16's views (allocation map, compare, amend, rebase, bench dialogs) and the
// interrupted converts found in the library's folders (resumable from the jobs panel).

import { create } from 'zustand';
type InterruptedConvert = Awaited<ReturnType<typeof api.interruptedConverts>>[number];
import { api } from '../api-client.ts';

export type ViewsDialog = 'map' | 'compare' | 'amend' | 'rebase' | 'bench' | null;

export interface ViewsState {
  dialog: ViewsDialog;
  target?: string;
  interrupted: InterruptedConvert[];
  open(dialog: Exclude<ViewsDialog, null>, target: string): void;
  close(): void;
  /** Look for interrupted converts in these folders. */
  scanInterrupted(paths: string[]): Promise<void>;
}

export const useViews = create<ViewsState>()((set) => ({
  dialog: null,
  interrupted: [],
  open: (dialog, target) => set({ dialog, target }),
  close: () => set({ dialog: null, target: undefined }),
  async scanInterrupted(paths) {
    if (!paths.length) return set({ interrupted: [] });
    const interrupted = await api.interruptedConverts({ paths }).catch(() => []);
    set({ interrupted });
  },
}));

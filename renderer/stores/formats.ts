// The formats store: every registered driver with its create/amend option schemas (listFormats),
// loaded once; the Create and Convert dialogs generate their forms from it.

import { create } from 'zustand';
import type { FormatDescription } from '../../core/api/types.ts';
import { api } from '../api-client.ts';

export interface FormatsState {
  formats: FormatDescription[];
  loaded: boolean;
  error?: string;
  load(): Promise<void>;
}

export const useFormats = create<FormatsState>()((set, get) => ({
  formats: [],
  loaded: false,
  async load() {
    if (get().loaded) return;
    try {
      const formats = await api.listFormats();
      formats.sort((a, b) => a.name.localeCompare(b.name));
      set({ formats, loaded: true, error: undefined });
    } catch (e) {
      set({ error: (e as Error).message });
    }
  },
}));

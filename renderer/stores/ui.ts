// The UI store: which view and which dialog is open, and short notices ("Snapshot applied").
// Dialog contents (form values, passphrases) live in the dialogs' own component state.

import { create } from 'zustand';

export type View = 'images' | 'tree';
export type DialogKind = 'create' | 'convert' | 'check' | 'resize' | 'add-path' | null;

export interface Notice {
  id: number;
  text: string;
  tone: 'info' | 'error';
}

export interface UiState {
  view: View;
  dialog: DialogKind;
  /** The image the open dialog acts on. */
  dialogTarget?: string;
  notices: Notice[];
  setView(view: View): void;
  open(dialog: Exclude<DialogKind, null>, target?: string): void;
  close(): void;
  notify(text: string, tone?: Notice['tone']): void;
  dismiss(id: number): void;
}

let noticeId = 0;
/** How long a notice stays (ms). */
const NOTICE_MS = 6000;

export const useUi = create<UiState>()((set, get) => ({
  view: 'images',
  dialog: null,
  notices: [],
  setView: (view) => set({ view }),
  open: (dialog, target) => set({ dialog, dialogTarget: target }),
  close: () => set({ dialog: null, dialogTarget: undefined }),
  notify(text, tone = 'info') {
    const id = ++noticeId;
    set({ notices: [...get().notices, { id, text, tone }] });
    setTimeout(() => get().dismiss(id), NOTICE_MS);
  },
  dismiss: (id) => set({ notices: get().notices.filter((n) => n.id !== id) }),
}));

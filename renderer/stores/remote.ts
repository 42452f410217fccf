// The remote sources' UI store (issues #18, #20, #21): which remote dialog is open and the NBD
// servers the app runs (polled while any is shown). Secrets never live here: passwords and key
// passphrases stay in their dialog's component state for one call.

import { create } from 'zustand';
import type { NbdServedInfo } from '../../core/api/routes-remote.ts';
import { api } from '../api-client.ts';

export type RemoteDialog = 'nbd-serve' | 'nbd-open' | 'fat-new' | 'fat-add' | 'ssh-add' | 'iscsi-browse' | null;

export interface RemoteState {
  dialog: RemoteDialog;
  /** The image the open dialog acts on (Serve over NBD). */
  target?: string;
  servers: NbdServedInfo[];
  open(dialog: Exclude<RemoteDialog, null>, target?: string): void;
  close(): void;
  refreshServers(): Promise<void>;
}

export const useRemote = create<RemoteState>()((set) => ({
  dialog: null,
  servers: [],
  open: (dialog, target) => set({ dialog, target }),
  close: () => set({ dialog: null, target: undefined }),
  async refreshServers() {
    try {
      set({ servers: await api.nbdServers({}) });
    } catch {
      // the next poll tries again
    }
  },
}));

/** A library root that names a remote source rather than a local path (routes-remote.ts). */
export const isRemoteRootName = (root: string) => /^(nbd(\+unix|\+tcp)?:|fat:|ssh:\/\/|iscsi:\/\/)/.test(root);

/** A library root's short label in the sidebar: a local path's last part, a remote source named
 *  by its server and path (never its query: host_key_check, key_file). */
export function rootLabel(root: string): string {
  if (!isRemoteRootName(root)) return root.replace(/\/+$/, '').split('/').pop() || root;
  const noQuery = root.split('?')[0]!;
  if (root.startsWith('ssh://')) return noQuery.replace(/^ssh:\/\/([^@/]*@)?/, '');
  if (root.startsWith('iscsi://')) return noQuery.replace(/^iscsi:\/\/[^/]*\//, '').replace(/\/(\d+)$/, ' LUN $1');
  if (root.startsWith('fat:')) return `fat: ${root.split(':').pop()!.replace(/\/+$/, '').split('/').pop() ?? ''}`;
  const sock = /[?&]socket=([^&]*)/.exec(root)?.[1];
  const exp = noQuery.replace(/^nbd(\+unix|\+tcp)?:(\/\/[^/]*)?\/?/, '');
  return `NBD ${exp || (sock ? sock.split('/').pop() : noQuery.replace(/^nbd(\+tcp)?:\/\//, ''))}`;
}

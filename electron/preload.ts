// Sandboxed preload (contextIsolation): exposes window.platter through contextBridge only, as
// electron-trpc does: call(method, input) over the one 'platter:call' channel, onEvent(cb) for
// 'platter:event', and pathForFile(file) so a dropped file can be added by its path. Nothing else
// from Electron or Node reaches the page. Bundled to dist/electron/preload.cjs.

import { contextBridge, ipcRenderer, webUtils, type IpcRendererEvent } from 'electron';
import type { AppEvent, CallResult } from '../core/api/app-protocol.ts';

// The channel names are repeated here (not imported) so this bundle needs nothing but 'electron'.
const CALL = 'platter:call';
const EVENT = 'platter:event';

contextBridge.exposeInMainWorld('platter', {
  call: (method: string, input: unknown): Promise<CallResult> => ipcRenderer.invoke(CALL, { method, input }),
  onEvent: (cb: (event: AppEvent) => void): (() => void) => {
    const listener = (_e: IpcRendererEvent, event: AppEvent) => cb(event);
    ipcRenderer.on(EVENT, listener);
    return () => {
      ipcRenderer.removeListener(EVENT, listener);
    };
  },
  pathForFile: (file: File): string => webUtils.getPathForFile(file),
});

// Electron main process (docs/architecture.md "electron/"): one locked-down window showing the renderer
// from the app's own platter:// scheme, and ONE IPC channel (electron-trpc style): 'platter:call'
// carries {method, input}, checked for its sender and validated once by electron/dispatch.ts (the
// router's zod schemas), and
// job events are pushed on 'platter:event'. Bundled to dist/electron/main.cjs by scripts/build-app.mjs.

import { app, BrowserWindow, dialog, ipcMain, protocol, session, shell, type IpcMainInvokeEvent } from 'electron';
import { readFile } from 'node:fs/promises';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createPlatterService } from '../core/api/service.ts';
import { IPC_CALL_CHANNEL, IPC_EVENT_CHANNEL } from '../core/api/app-protocol.ts';
import { createDispatcher, ipcCallHandler } from './dispatch.ts';
import { contentSecurityPolicy } from './csp.ts';
import { RENDERER_MIME } from './mime.ts';
import { elevatedStart, runElevatedDriveJob } from './elevate.ts';

/** The renderer's own scheme and origin: the only sender the IPC handler answers. */
const APP_SCHEME = 'platter';
const APP_ORIGIN = `${APP_SCHEME}://app`;
const HERE = dirname(fileURLToPath(import.meta.url));
const RENDERER_DIR = normalize(join(HERE, '../renderer') + sep);

// Must run before 'ready': platter:// behaves like https (standard, secure, fetch allowed).
protocol.registerSchemesAsPrivileged([{ scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true } }]);

/** Serve dist/renderer on platter://app/, with the CSP as a header; nothing outside that folder. */
async function serveRenderer(request: Request): Promise<Response> {
  const url = new URL(request.url);
  if (url.host !== 'app') return new Response('Forbidden', { status: 403 });
  const path = url.pathname === '/' ? '/index.html' : decodeURIComponent(url.pathname);
  const file = normalize(join(RENDERER_DIR, path));
  const type = RENDERER_MIME[extname(file)];
  if (!file.startsWith(RENDERER_DIR) || !type) return new Response('Not Found', { status: 404 });
  try {
    const body = await readFile(file);
    return new Response(body, { headers: { 'Content-Type': type, 'Content-Security-Policy': contentSecurityPolicy(), 'X-Content-Type-Options': 'nosniff' } });
  } catch {
    return new Response('Not Found', { status: 404 });
  }
}

/** True when the IPC message comes from our own page's main frame. */
function trustedSender(event: IpcMainInvokeEvent): boolean {
  const frame = event.senderFrame;
  if (!frame || frame.parent !== null) return false;
  try {
    return new URL(frame.url).origin === APP_ORIGIN;
  } catch {
    return false;
  }
}

function lockDown(): void {
  // No permission (camera, notifications, geolocation, ...) is ever granted.
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));
  session.defaultSession.setPermissionCheckHandler(() => false);
  app.on('web-contents-created', (_e, contents) => {
    contents.on('will-navigate', (event) => event.preventDefault());
    contents.on('will-redirect', (event) => event.preventDefault());
    contents.on('will-attach-webview', (event) => event.preventDefault());
    contents.setWindowOpenHandler(({ url }) => {
      // Links to documentation open in the user's browser, never inside the app.
      if (/^https:\/\//.test(url)) void shell.openExternal(url);
      return { action: 'deny' };
    });
  });
}

async function main(): Promise<void> {
  await app.whenReady();
  lockDown();
  protocol.handle(APP_SCHEME, serveRenderer);

  const service = createPlatterService({ warn: () => {} });
  const dispatcher = createDispatcher({
    service,
    config: { mode: 'electron', roots: [], version: app.getVersion(), platform: process.platform },
    // Native file/folder pickers exist only here (browser mode types a path instead).
    pickPaths: async ({ kind, title }) => {
      const win = BrowserWindow.getFocusedWindow();
      const options: Electron.OpenDialogOptions = {
        title: title ?? (kind === 'folder' ? 'Add folder to library' : 'Add disk image'),
        properties: kind === 'folder' ? ['openDirectory', 'multiSelections'] : ['openFile', 'multiSelections'],
      };
      const r = win ? await dialog.showOpenDialog(win, options) : await dialog.showOpenDialog(options);
      return r.canceled ? [] : r.filePaths;
    },
    // Drives this user may not open: the job runs in the helper, elevated the OS's way.
    elevate: (job, ctl) =>
      runElevatedDriveJob(job, ctl, {
        helper: { exe: process.execPath, args: [join(HERE.replace(/app\.asar(?=[\\/])/, 'app.asar.unpacked'), 'elevated-worker.cjs')], env: { ELECTRON_RUN_AS_NODE: '1' } },
        start: elevatedStart(process.platform, 'Platter needs administrator rights to read or write a disk drive.'),
      }),
  });

  ipcMain.handle(IPC_CALL_CHANNEL, ipcCallHandler(dispatcher, trustedSender));
  const win = new BrowserWindow({
    width: 1360,
    height: 860,
    minWidth: 960,
    minHeight: 600,
    title: 'Platter',
    backgroundColor: '#f5f6f8',
    show: false,
    webPreferences: {
      preload: join(HERE, 'preload.cjs'),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      spellcheck: false,
    },
  });
  win.once('ready-to-show', () => win.show());
  const stopEvents = dispatcher.onEvent((event) => {
    if (!win.isDestroyed()) win.webContents.send(IPC_EVENT_CHANNEL, event);
  });
  win.on('closed', stopEvents);
  await win.loadURL(`${APP_ORIGIN}/index.html`);

  app.on('window-all-closed', () => {
    void dispatcher.close().finally(() => app.quit());
  });
}

main().catch((e) => {
  console.error(`platter: ${(e as Error).message}`);
  app.exit(1);
});

// The renderer as it runs in the desktop app, without Electron (its binary cannot run here): the
// page gets a `window.platter` bridge (what electron/preload.ts exposes: call, onEvent) wired by
// playwright to a dispatcher in 'electron' mode, so isElectron() is true and the app's own paths
// (Authorize… for drives) are taken. The dispatcher is electron/main.ts's, with `elevate` given by
// the test (runElevatedDriveJob with the helper spawned plainly). The built renderer is served by
// the browser-mode server only as static files; every call goes through the bridge.

import { rmSync } from 'node:fs';
import { createPlatterService } from '../../core/api/service.ts';
import { createDispatcher } from '../../electron/dispatch.ts';
import { startBrowserServer } from '../../electron/browser-server.ts';
import type { DriveElevator } from '../../core/api/routes-drives.ts';
import { launchChromium, prepareWork, screenshotter, watchPageErrors, type E2E } from './harness.ts';

/** The browser-mode page without its URL (every call goes through the bridge). */
export type ElectronModePage = Omit<E2E, 'url'>;

export async function startElectronMode(opts: { elevate: DriveElevator }): Promise<ElectronModePage> {
  const { work, library, renderer } = await prepareWork('platter-e2e-electron-');
  const service = createPlatterService({ warn: () => {} });
  const dispatcher = createDispatcher({ service, config: { mode: 'electron', roots: [library], version: 'test', platform: process.platform }, elevate: opts.elevate });
  const server = await startBrowserServer({ dispatcher, rendererDir: renderer });
  const context = await launchChromium(work);
  await context.exposeBinding('__platterCall', (_source, method: string, input: unknown) => dispatcher.call({ method, input }));
  // A string, not a function: tsx's compiled functions may call helpers the page does not have.
  await context.addInitScript(`(() => {
    const listeners = new Set();
    window.__platterEmit = (e) => listeners.forEach((l) => l(e));
    window.platter = {
      call: (method, input) => window.__platterCall(method, input),
      onEvent: (cb) => { listeners.add(cb); return () => listeners.delete(cb); },
      pathForFile: () => undefined,
    };
  })();`);
  const page = context.pages()[0] ?? (await context.newPage());
  const stopEvents = dispatcher.onEvent((event) => {
    void page.evaluate(`window.__platterEmit(${JSON.stringify(event)})`).catch(() => {});
  });
  const errors = watchPageErrors(page);
  await page.goto(server.url);
  return {
    page,
    context,
    library,
    errors,
    screenshot: screenshotter(page),
    async close() {
      stopEvents();
      await context.close().catch(() => {});
      await server.close().catch(() => {});
      await dispatcher.close().catch(() => {});
      rmSync(work, { recursive: true, force: true });
    },
  };
}

// The desktop app's router: the service's entries (router.ts) plus the methods only the app has
// (its launch config, the image library, native file pickers). electron/dispatch.ts answers it
// on both transports; the renderer's typed client is derived from `type AppRouter` (a type-only
// import, so none of this code is bundled into the renderer).

import { z } from 'zod';
import { query, serviceRouter, type CallContext, type RouterClient } from './router.ts';
import { libraryScanInput, scanLibrary } from './library.ts';
import { libraryWatchInput } from './library-watch.ts';
import type { AppConfig } from './app-protocol.ts';
import { unsupported } from '../errors.ts';
import { safetyRoutes } from './routes-safety.ts';
import { viewsRoutes } from './routes-views.ts';
import { remoteRoutes } from './routes-remote.ts';
import { drivesRoutes, type DriveElevator } from './routes-drives.ts';

export const pickPathsInput = z.object({ kind: z.enum(['folder', 'file']), title: z.string().max(200).optional() });
export type PickPathsInput = z.infer<typeof pickPathsInput>;

/** What the app lends its methods: set up by the dispatcher (electron/dispatch.ts). */
export interface AppContext {
  config: AppConfig;
  /** Watch these library paths for changes ('library-changed' events). */
  watch(paths: string[]): Promise<{ watching: number; polling: number; dropped: number }>;
  /** Native open dialogs (Electron only; browser mode types a path instead). */
  pickPaths?(input: PickPathsInput): Promise<string[]>;
  /** Run a drive job with administrator rights (Electron only; electron/elevate.ts). */
  elevate?: DriveElevator;
}

export type AppCallContext = CallContext & { app: AppContext };

export const appRouter = {
  ...serviceRouter,
  ...safetyRoutes,
  ...viewsRoutes,
  ...remoteRoutes,
  ...drivesRoutes,
  /** How the app was started (mode, library roots given at launch, version). */
  appConfig: query(z.object({}).optional(), (_i, ctx: AppCallContext) => ctx.app.config),
  /** One row per image in the given folders and files. */
  libraryScan: query(libraryScanInput, (i, ctx: AppCallContext) => scanLibrary(ctx.service, i)),
  /** Report changes in these library folders as 'library-changed' events. */
  libraryWatch: query(libraryWatchInput, (i, ctx: AppCallContext) => ctx.app.watch(i.paths)),
  /** Native folder or file picker: the chosen paths ([] when cancelled). */
  pickPaths: query(pickPathsInput, (i, ctx: AppCallContext) => {
    if (!ctx.app.pickPaths) throw unsupported('Native file dialogs exist only in the desktop app');
    return ctx.app.pickPaths(i);
  }),
};

export type AppRouter = typeof appRouter;
/** The renderer's client: one function per method, input and result typed from the router. */
export type AppClient = RouterClient<AppRouter>;

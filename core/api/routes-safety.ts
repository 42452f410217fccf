// The API methods of #16's safety features (gui-safety): previews of destructive operations,
// the lock inspector, key slots of encrypted images and repair with a backup. Spread into
// appRouter (app-router.ts) with one line; inputs are validated where calls enter (dispatch).

import { query } from './router.ts';
import { previewInput, previewOperation } from './safety/preview.ts';
import { inspectLocks, lockInspectInput } from './safety/locks.ts';

export const safetyRoutes = {
  /** What a destructive operation would do, before it runs (read-only, -U). */
  previewOperation: query(previewInput, (i, { env, ctl, service }) => previewOperation(service, i, env, ctl)),
  /** Who holds an image's lock bytes (pid, command line) and with which permissions. */
  lockInspect: query(lockInspectInput, (i) => inspectLocks(i.path)),
};

// What happens after the renderer starts a job: wait for its end (job events), then refresh the
// library, select the new image, and say in words how it went. The jobs panel shows the progress.

import { useJobs, waitForJob } from './stores/jobs.ts';
import { useLibrary } from './stores/library.ts';
import { useUi } from './stores/ui.ts';
import type { SerializedError } from '../core/api/types.ts';

export interface TrackOptions {
  refreshLibrary?: boolean;
  /** A folder to add to the library if it is not there yet (where a new image was written). */
  addRoot?: string;
  /** The image to select when the job is done. */
  select?: string;
  doneText?: string;
}

export function trackJob(jobId: string, opts: TrackOptions = {}): Promise<unknown> {
  // Make the job visible at once, before its first event arrives.
  if (!useJobs.getState().jobs[jobId]) useJobs.getState().handle({ type: 'job-progress', jobId, progress: { done: 0, total: 0 } });
  return waitForJob(jobId).then(
    async (result) => {
      const lib = useLibrary.getState();
      const covered = opts.addRoot ? lib.roots.some((r) => opts.addRoot === r || opts.addRoot!.startsWith(`${r}/`)) : true;
      if (opts.addRoot && !covered) lib.addRoots([opts.addRoot]);
      if (opts.refreshLibrary) await useLibrary.getState().refresh();
      if (opts.select) useLibrary.getState().select(opts.select);
      if (opts.doneText) useUi.getState().notify(opts.doneText);
      return result;
    },
    (error: SerializedError) => {
      if (error.kind !== 'Cancelled') useUi.getState().notify(error.message, 'error');
      if (opts.refreshLibrary) void useLibrary.getState().refresh();
      return undefined;
    },
  );
}

// Convert's additions (issue #16 items 5, 6, 9): the verify result of a finished convert with
// "Delete source" (offered only after a verified copy, and confirmed), the interrupted converts
// found in the library's folders with Resume and Discard, and the measured size in the convert
// form (qemu-img measure).

import { useEffect, useState } from 'react';
import { api } from '../../api-client.ts';
import type { JobView } from '../../stores/jobs.ts';
import { useJobs } from '../../stores/jobs.ts';
import { useLibrary } from '../../stores/library.ts';
import { useUi } from '../../stores/ui.ts';
import { useViews } from '../../stores/views.ts';
import { trackJob } from '../../jobs-actions.ts';
import { basename, formatBytes } from '../../util/format.ts';
import { ConfirmDialog } from '../Dialog.tsx';

type ConvertResult = { source: string; target: string; bytesCopied: number; bytesSkipped: number; resumable: boolean; notResumable?: string; resumedFrom?: number; verify?: { verified: boolean; words: string }; deletable?: boolean };

const CONVERT_METHODS = new Set(['convertVerified', 'convertResume']);

/** Words for the jobs of this module (job-words.ts asks first). */
export function viewsResultWords(job: JobView): string | undefined {
  if (job.state !== 'done') return undefined;
  if (CONVERT_METHODS.has(job.method)) {
    const r = job.result as ConvertResult | undefined;
    if (!r) return 'Converted.';
    const from = r.resumedFrom ? ` (resumed at ${formatBytes(r.resumedFrom)})` : '';
    return `Converted${from}: ${formatBytes(r.bytesCopied)} copied, ${formatBytes(r.bytesSkipped)} skipped as holes or zeros.`;
  }
  if (job.method === 'bench') {
    const r = job.result as { header: string; text: string } | undefined;
    return r ? `${r.header}. ${r.text}` : 'Done.';
  }
  return undefined;
}

/** Below a finished job's result: the verify outcome and "Delete source". */
export function JobExtras({ job }: { job: JobView }) {
  const [confirm, setConfirm] = useState(false);
  const [deleted, setDeleted] = useState(false);
  if (!CONVERT_METHODS.has(job.method) || job.state !== 'done') return null;
  const r = job.result as ConvertResult | undefined;
  if (!r?.verify) return null;
  const del = async () => {
    setConfirm(false);
    try {
      await api.deleteVerifiedSource({ source: r.source, target: r.target });
      setDeleted(true);
      useUi.getState().notify(`Deleted ${basename(r.source)}`);
      void useLibrary.getState().refresh();
    } catch (e) {
      useUi.getState().notify((e as Error).message, 'error');
    }
  };
  return (
    <div className="job-extras">
      <p className={`verify-result ${r.verify.verified ? 'ok' : 'error'}`} role="status" aria-label={`Verification of ${job.label}`}>
        {r.verify.words}
      </p>
      {r.verify.verified && r.deletable && !deleted && (
        <button type="button" className="small-button danger" onClick={() => setConfirm(true)}>
          Delete source
        </button>
      )}
      {deleted && <span className="muted small">Source deleted.</span>}
      {confirm && (
        <ConfirmDialog
          title={`Delete ${basename(r.source)}?`}
          message={
            <p>
              {r.source} is removed for good. Its copy {r.target} compared identical and checked clean. Images that use {basename(r.source)} as their backing file stop opening.
            </p>
          }
          confirmLabel="Delete source"
          danger
          onConfirm={() => void del()}
          onCancel={() => setConfirm(false)}
        />
      )}
    </div>
  );
}

/** Interrupted converts in the library's folders: Resume (from the journal) or Discard. */
export function InterruptedConverts() {
  const roots = useLibrary((s) => s.roots);
  const entries = useLibrary((s) => s.entries);
  const finished = useJobs((s) => s.order.filter((id) => s.jobs[id]?.state !== 'running').length);
  const list = useViews((s) => s.interrupted);
  const scan = useViews((s) => s.scanInterrupted);
  useEffect(() => {
    void scan(roots);
  }, [roots, entries, finished, scan]);
  if (!list.length) return null;
  const resume = async (target: string) => {
    try {
      const { jobId } = await api.convertResume({ target });
      void trackJob(jobId, { refreshLibrary: true, select: target, doneText: `Resumed and finished ${basename(target)}` });
      void scan(roots);
    } catch (e) {
      useUi.getState().notify((e as Error).message, 'error');
    }
  };
  const restart = async (c: (typeof list)[number]) => {
    try {
      const { jobId } = await api.convertVerified({ source: { filename: c.source, ...(c.sourceFormat ? { format: c.sourceFormat } : {}) }, target: { filename: c.target, format: c.format, ...(c.options ? { options: c.options } : {}) } });
      void trackJob(jobId, { refreshLibrary: true, select: c.target, doneText: `Converted ${basename(c.source)} to ${basename(c.target)}` });
      setTimeout(() => void scan(roots), 300);
    } catch (e) {
      useUi.getState().notify((e as Error).message, 'error');
    }
  };
  const discard = async (target: string) => {
    await api.discardInterruptedConvert({ target }).catch((e: Error) => useUi.getState().notify(e.message, 'error'));
    void scan(roots);
  };
  return (
    <div className="interrupted" role="region" aria-label="Interrupted converts">
      <h3>Interrupted converts</h3>
      <ul>
        {list.map((c) => (
          <li key={c.target}>
            <span className="mono">{basename(c.target)}</span>{' '}
            {c.total > 0 && (
              <span className="muted">
                from {basename(c.source)}, {formatBytes(c.done)} of {formatBytes(c.total)} done ({Math.floor((c.done * 100) / c.total)}%)
              </span>
            )}
            {c.problem && (
              <span className="form-error" role="alert">
                {' '}
                Cannot resume: {c.problem.replace(/^Cannot resume the convert: /, '')}
              </span>
            )}
            {!c.problem && (
              <button type="button" className="small-button" aria-label={`Resume convert to ${basename(c.target)}`} onClick={() => void resume(c.target)}>
                Resume
              </button>
            )}
            {c.problem && c.source && c.format && (
              <button type="button" className="small-button" aria-label={`Start the convert to ${basename(c.target)} again`} onClick={() => void restart(c)}>
                Start again
              </button>
            )}
            <button type="button" className="small-button" aria-label={`Discard convert to ${basename(c.target)}`} onClick={() => void discard(c.target)}>
              Discard
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}

/** qemu-img measure for the convert form's choices. */
export function MeasureLine({ source, format, sourceFormat, options, snapshot }: { source: string; format: string; sourceFormat?: string | undefined; options: Record<string, string | number | boolean>; snapshot?: string }) {
  const [text, setText] = useState<string>();
  const key = JSON.stringify([source, format, sourceFormat, options, snapshot]);
  useEffect(() => {
    let live = true;
    const t = setTimeout(() => {
      api
        .measure({ format, source: { filename: source, ...(sourceFormat ? { format: sourceFormat } : {}), forceShare: true }, options, ...(snapshot ? { snapshot } : {}) })
        .then((m) => live && setText(`Required size: ${formatBytes(m.required)} (${m.required.toLocaleString('en-US')} bytes); fully allocated: ${formatBytes(m['fully-allocated'])}.`))
        .catch((e: Error) => live && setText(`Cannot measure: ${e.message}`));
    }, 250);
    return () => {
      live = false;
      clearTimeout(t);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);
  return (
    <p className="span-2 measure-line" role="status" aria-label="Measured size">
      {text ?? 'Measuring…'}
    </p>
  );
}

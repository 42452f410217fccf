// Repair with a backup (#16 item 7): the repair's preview, "Make a backup first" (on by default),
// then the job (backup copy with progress, check -r), then what changed: the counts before and
// after, where the backup is and how it was made. When the repair could not fix the image,
// Salvage copies what can be read into a new image (convert --salvage).

import { useState } from 'react';
import type { CheckReport } from '../../../core/api/types.ts';
import type { RepairOutcome } from '../../../core/api/safety/repair.ts';
import type { LibraryEntry } from '../../../core/api/library.ts';
import { api } from '../../api-client.ts';
import { trackJob } from '../../jobs-actions.ts';
import { useJobs } from '../../stores/jobs.ts';
import { basename } from '../../util/format.ts';
import { Dialog } from '../Dialog.tsx';
import { OperationPreview } from './OperationPreview.tsx';
import { FormError } from '../FormDialog.tsx';

type Repair = 'leaks' | 'all';

export interface RepairDialogProps {
  image: string;
  entry?: LibraryEntry;
  repair: Repair;
  /** The image as the check opens it (an encrypted one names its key secret) and its secrets. */
  imageRef: { filename: string; format?: string };
  secrets?: { id: string; data: string }[];
  onCancel(): void;
  /** A repair without a backup: the old path (CheckDialog's own check -r). */
  onRepairWithoutBackup(repair: Repair): void;
}

function Counts({ label, c }: { label: string; c: { corruptions: number; leaks: number; checkErrors: number } }) {
  return (
    <tr>
      <th scope="row">{label}</th>
      <td className="num">{c.corruptions}</td>
      <td className="num">{c.leaks}</td>
      <td className="num">{c.checkErrors}</td>
    </tr>
  );
}

export function RepairDialog({ image, entry, repair, imageRef, secrets, onCancel, onRepairWithoutBackup }: RepairDialogProps) {
  const [backup, setBackup] = useState(true);
  const [jobId, setJobId] = useState<string>();
  const [outcome, setOutcome] = useState<RepairOutcome>();
  const [error, setError] = useState<string>();
  const [salvage, setSalvage] = useState<{ jobId: string; target: string; done?: boolean; report?: CheckReport }>();
  const job = useJobs((s) => (jobId ? s.jobs[jobId] : undefined));
  const salvageJob = useJobs((s) => (salvage ? s.jobs[salvage.jobId] : undefined));
  const running = job?.state === 'running';

  const start = async () => {
    if (!backup) return onRepairWithoutBackup(repair);
    setError(undefined);
    try {
      const { jobId: id } = await api.repairWithBackup({ image: imageRef, repair, ...(secrets?.length ? { secrets } : {}) });
      setJobId(id);
      const r = (await trackJob(id, { refreshLibrary: true })) as RepairOutcome | undefined;
      if (r) setOutcome(r);
      else setError(useJobs.getState().jobs[id]?.error?.message ?? 'The repair did not complete.');
    } catch (e) {
      setError((e as Error).message);
    }
  };

  const startSalvage = async (target: string) => {
    setError(undefined);
    try {
      const { jobId: id } = await api.convert({ source: imageRef, target: { filename: target, format: entry?.format ?? 'qcow2' }, salvage: true, ...(secrets?.length ? { secrets } : {}) });
      setSalvage({ jobId: id, target });
      const r = await trackJob(id, { refreshLibrary: true });
      if (!r) return setError(useJobs.getState().jobs[id]?.error?.message ?? 'The salvage did not complete.');
      let report: CheckReport | undefined;
      try {
        const c = await api.check({ image: { filename: target } });
        report = (await trackJob(c.jobId)) as CheckReport | undefined;
      } catch {
        /* the format may have no check */
      }
      setSalvage({ jobId: id, target, done: true, ...(report ? { report } : {}) });
    } catch (e) {
      setError((e as Error).message);
    }
  };

  const pct = job && job.progress.total ? Math.floor((100 * job.progress.done) / job.progress.total) : 0;
  return (
    <Dialog
      title={repair === 'all' ? 'Repair all errors?' : 'Repair leaks?'}
      alert
      wide
      onClose={onCancel}
      footer={
        outcome ? (
          <button type="button" className="primary" onClick={onCancel}>
            Close
          </button>
        ) : (
          <>
            <button type="button" onClick={onCancel} disabled={running}>
              Cancel
            </button>
            <button type="button" className={repair === 'all' ? 'danger primary' : 'primary'} disabled={running} onClick={() => void start()}>
              {repair === 'all' ? 'Repair all' : 'Repair leaks'}
            </button>
          </>
        )
      }
    >
      {!outcome && (
        <>
          <p>
            {repair === 'all'
              ? `Platter will rewrite metadata of ${basename(image)} to fix corruptions and leaks; no other program may use the image meanwhile.`
              : `Platter will free leaked clusters in ${basename(image)}. This only reclaims space; no other program may use the image meanwhile.`}
          </p>
          <div className="field field-check">
            <input id="repair-backup" type="checkbox" checked={backup} disabled={running} onChange={(e) => setBackup(e.target.checked)} />
            <label htmlFor="repair-backup">Make a backup copy first (recommended)</label>
            <p className="help">The file is copied beside the image ("{basename(image).replace(/(\.[^.]*)?$/, '.backup-<time>$1')}"): a reflink clone where the file system supports it (instant, no extra space until either changes), else a full copy.</p>
          </div>
          {running && (
            <p role="status">
              {job?.progress.phase ?? 'Working'}… {pct}%
            </p>
          )}
          <OperationPreview op={{ kind: 'repair', image: imageRef }} {...(secrets?.length ? { secrets } : {})} />
        </>
      )}
      {outcome && (
        <section className={`check-result ${outcome.fixed ? 'good' : 'bad'}`} aria-label="Repair result">
          <p>
            <strong>{outcome.fixed ? 'Repaired: no errors are left.' : 'The repair could not fix everything.'}</strong> Backup: <code className="mono">{outcome.backup.path}</code> ({outcome.backup.method === 'reflink' ? 'reflink clone' : 'full copy'}).
          </p>
          <table className="mini-table" aria-label="Before and after">
            <thead>
              <tr>
                <th />
                <th>Corruptions</th>
                <th>Leaked clusters</th>
                <th>Check errors</th>
              </tr>
            </thead>
            <tbody>
              <Counts label="Before" c={outcome.before} />
              <Counts label="After" c={outcome.after} />
            </tbody>
          </table>
          <p>
            Fixed: {outcome.repaired.leaks} leaked clusters, {outcome.repaired.corruptions} corruptions.
          </p>
          {!outcome.fixed && outcome.salvageTarget && !salvage && (
            <div className="salvage-offer">
              <p>Salvage copies everything that can still be read into a new image (qemu-img convert --salvage): unreadable ranges become zeros and are reported. The damaged image and its backup stay as they are.</p>
              <button type="button" onClick={() => void startSalvage(outcome.salvageTarget!)}>
                Salvage into {basename(outcome.salvageTarget)}
              </button>
            </div>
          )}
          {salvage && (
            <p role="status">
              {salvage.done
                ? `Salvaged into ${basename(salvage.target)}${salvage.report ? `: its check finds ${salvage.report.corruptions ?? 0} corruptions, ${salvage.report.leaks ?? 0} leaks` : ''}.`
                : `Salvaging… ${salvageJob && salvageJob.progress.total ? Math.floor((100 * salvageJob.progress.done) / salvageJob.progress.total) : 0}%`}
            </p>
          )}
        </section>
      )}
      <FormError error={error} className="form-error" />
    </Dialog>
  );
}

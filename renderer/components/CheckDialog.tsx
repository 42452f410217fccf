// Check / repair (qemu-img check [-r leaks|all]): runs as a job, then shows the findings in words:
// qemu-img's summary lines and each problem the driver reported. Repairs write to the image, so
// they ask first. An encrypted image asks for its passphrase first (UnlockDialog); it stays in this
// component's state and goes with each check call as a secret.

import { useState } from 'react';
import type { CheckReport } from '../../core/api/types.ts';
import { api } from '../api-client.ts';
import { trackJob } from '../jobs-actions.ts';
import { useJobs } from '../stores/jobs.ts';
import { useLibrary } from '../stores/library.ts';
import { basename } from '../util/format.ts';
import { Dialog } from './Dialog.tsx';
import { checkWords } from './job-words.ts';
import { SOURCE_SECRET_ID, unlockedRef } from './image-forms.ts';
import { UnlockDialog } from './UnlockDialog.tsx';
import { RepairDialog } from './safety/RepairDialog.tsx';
import { ForceShareOffer } from './safety/ForceShareOffer.tsx';
import { FormError } from './FormDialog.tsx';

type Repair = 'leaks' | 'all';

export function CheckDialog({ image, onClose }: { image: string; onClose(): void }) {
  const [jobId, setJobId] = useState<string>();
  const [report, setReport] = useState<CheckReport>();
  const [error, setError] = useState<string>();
  const [confirm, setConfirm] = useState<Repair>();
  const entry = useLibrary((s) => s.entries.find((e) => e.path === image));
  /** The encrypted image's passphrase, for this dialog's check calls. */
  const [pass, setPass] = useState<string>();
  const job = useJobs((s) => (jobId ? s.jobs[jobId] : undefined));
  const running = job?.state === 'running';

  /** Check read-only with force-share (-U): for an image another process holds. */
  const [shared, setShared] = useState(false);
  const run = async (repair?: Repair, forceShare = shared) => {
    setReport(undefined);
    setError(undefined);
    try {
      const base = pass !== undefined ? unlockedRef(image, entry?.format, SOURCE_SECRET_ID) : { filename: image };
      const ref = forceShare && !repair ? { ...base, forceShare: true } : base;
      const { jobId: id } = await api.check({ image: ref, ...(repair ? { repair } : {}), ...(pass !== undefined ? { secrets: [{ id: SOURCE_SECRET_ID, data: pass }] } : {}) });
      setJobId(id);
      const r = (await trackJob(id, { refreshLibrary: Boolean(repair) })) as CheckReport | undefined;
      if (r) setReport(r);
      else setError(useJobs.getState().jobs[id]?.error?.message ?? 'The check did not complete.');
    } catch (e) {
      setError((e as Error).message);
    }
  };

  if (entry?.encrypted && pass === undefined) {
    return <UnlockDialog path={image} name={basename(image)} format={entry.format} onUnlock={setPass} onCancel={onClose} />;
  }

  if (confirm) {
    const ref = pass !== undefined ? unlockedRef(image, entry?.format, SOURCE_SECRET_ID) : { filename: image, ...(entry?.format ? { format: entry.format } : {}) };
    return (
      <RepairDialog
        image={image}
        {...(entry ? { entry } : {})}
        repair={confirm}
        imageRef={ref}
        {...(pass !== undefined ? { secrets: [{ id: SOURCE_SECRET_ID, data: pass }] } : {})}
        onCancel={() => setConfirm(undefined)}
        onRepairWithoutBackup={(r) => {
          setConfirm(undefined);
          void run(r);
        }}
      />
    );
  }

  const words = report ? checkWords(report) : [];
  const bad = report ? (report.corruptions ?? 0) > 0 || report['check-errors'] > 0 : false;
  return (
    <Dialog
      title={`Check ${basename(image)}`}
      wide
      onClose={onClose}
      footer={
        <>
          <button type="button" disabled={running} onClick={() => setConfirm('leaks')}>
            Repair leaks…
          </button>
          <button type="button" disabled={running} onClick={() => setConfirm('all')}>
            Repair all…
          </button>
          <button type="button" className="primary" disabled={running} onClick={() => void run()}>
            {report ? 'Check again' : 'Check'}
          </button>
        </>
      }
    >
      <p className="mono path">{image}</p>
      {running && (
        <p role="status" className="muted">
          Checking… {job && job.progress.total ? `${Math.floor((100 * job.progress.done) / job.progress.total)}%` : ''}
        </p>
      )}
      <FormError error={error} className="form-error" />
      {!shared && (entry?.lock === 'in-use' || (error !== undefined && /lock/i.test(error))) && (
        <ForceShareOffer
          path={image}
          onCheck={() => {
            setShared(true);
            void run(undefined, true);
          }}
        />
      )}
      {shared && report && <p className="notice-inline">Checked read-only with force-share (-U) while another process holds the image: the result may show (or miss) inconsistencies from writes in flight.</p>}
      {report && (
        <section className={`check-result ${bad ? 'bad' : (report.leaks ?? 0) > 0 ? 'warn' : 'good'}`} aria-label="Check result">
          {words.map((w) => (
            <p key={w}>{w}</p>
          ))}
          {report.messages.length > 0 && (
            <>
              <h3>Findings</h3>
              <ul className="findings">
                {report.messages.map((m, i) => (
                  <li key={i}>{m}</li>
                ))}
              </ul>
            </>
          )}
        </section>
      )}
      {!report && !running && !error && <p className="muted">Check reads the image's metadata and reports corruptions and leaked clusters, as qemu-img check does. It changes nothing unless you choose a repair.</p>}
    </Dialog>
  );
}

// The jobs panel: every job with a progress bar (role=progressbar, aria-valuenow in percent), its
// rate and time left, a Cancel button while it runs, and its result or error in words after.

import { api } from '../api-client.ts';
import { useJobs, type JobView } from '../stores/jobs.ts';
import { formatDuration, formatRate } from '../util/format.ts';
import { resultWords } from './job-words.ts';
import { InterruptedConverts, JobExtras } from './views/ConvertExtras.tsx';

function percent(job: JobView): number {
  if (job.state === 'done') return 100;
  const { done, total } = job.progress;
  return total > 0 ? Math.min(100, Math.floor((done * 100) / total)) : 0;
}

function JobRow({ job }: { job: JobView }) {
  const pct = percent(job);
  const remaining = job.progress.total - job.progress.done;
  const eta = job.rate && job.rate > 0 && remaining > 0 ? remaining / job.rate : undefined;
  const running = job.state === 'running';
  return (
    <li className={`job ${job.state}`}>
      <div className="job-line">
        <span className="job-label">{job.label}</span>
        <span className="job-state">{running ? (job.progress.phase ?? 'running') : job.state}</span>
      </div>
      <div className="job-line">
        <div className="progress" role="progressbar" aria-label={`Progress of ${job.label}`} aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct} aria-valuetext={`${pct}%`}>
          <div className="progress-fill" style={{ width: `${pct}%` }} />
        </div>
        <span className="pct num">{pct}%</span>
        {running && (
          <>
            <span className="rate num" aria-label="Rate">
              {formatRate(job.rate)}
            </span>
            <span className="eta num" aria-label="Time left">
              {eta !== undefined ? `${formatDuration(eta)} left` : ''}
            </span>
            <button type="button" className="small-button" aria-label={`Cancel ${job.label}`} onClick={() => void api.cancelJob({ jobId: job.jobId })}>
              Cancel
            </button>
          </>
        )}
      </div>
      {!running && (
        <p className={`job-result${job.state === 'failed' ? ' error' : ''}`} role={job.state === 'failed' ? 'alert' : 'status'}>
          {resultWords(job)}
        </p>
      )}
      {!running && <JobExtras job={job} />}
    </li>
  );
}

export function JobsPanel() {
  const order = useJobs((s) => s.order);
  const jobs = useJobs((s) => s.jobs);
  const clear = useJobs((s) => s.clearFinished);
  const running = order.filter((id) => jobs[id]?.state === 'running').length;
  return (
    <section className="jobs-panel" aria-label="Jobs">
      <header>
        <h2>
          Jobs {running > 0 && <span className="badge">{running} running</span>}
        </h2>
        <button type="button" className="small-button" onClick={clear} disabled={order.length === running}>
          Clear finished
        </button>
      </header>
      <InterruptedConverts />
      {order.length === 0 ? (
        <p className="muted small">No jobs yet. Convert, create or check an image to see its progress here.</p>
      ) : (
        <ul className="jobs">
          {[...order].reverse().map((id) => (
            <JobRow key={id} job={jobs[id]!} />
          ))}
        </ul>
      )}
    </section>
  );
}

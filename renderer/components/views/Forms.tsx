// The rest of the engine in forms (issue #16 item 9): compare two images, amend a format's
// options, rebase (safe or unsafe, explained) and bench, each on the selected image, each run as
// a job in the jobs panel (progress, time left, Cancel) with its result here as well.

import { useId, useMemo, useState, type ReactNode } from 'react';
import { api } from '../../api-client.ts';
import { useJobs, waitForJob } from '../../stores/jobs.ts';
import { useFormats } from '../../stores/formats.ts';
import { useLibrary } from '../../stores/library.ts';
import { basename, dirname, formatBytes } from '../../util/format.ts';
import { Dialog } from '../Dialog.tsx';
import { OptionsForm, formErrors, initialValues, optionsToSend, type FormValues } from '../OptionsForm.tsx';
import { FormError } from '../FormDialog.tsx';

/** Run a job from a form: start it, follow it, show its outcome in the form. */
function useJobRunner() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [result, setResult] = useState<unknown>();
  const run = async (start: () => Promise<{ jobId: string }>, refresh = false) => {
    setBusy(true);
    setError(undefined);
    setResult(undefined);
    try {
      const { jobId } = await start();
      // Visible in the jobs panel at once, before its first event arrives.
      if (!useJobs.getState().jobs[jobId]) useJobs.getState().handle({ type: 'job-progress', jobId, progress: { done: 0, total: 0 } });
      try {
        setResult((await waitForJob(jobId)) ?? null);
      } finally {
        if (refresh) void useLibrary.getState().refresh();
      }
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, result, run, setError };
}

function Footer({ onClose, busy, label, onRun, danger }: { onClose(): void; busy: boolean; label: string; onRun(): void; danger?: boolean }) {
  return (
    <>
      <button type="button" onClick={onClose}>
        Close
      </button>
      <button type="button" className={danger ? 'primary danger' : 'primary'} disabled={busy} onClick={onRun}>
        {busy ? 'Running…' : label}
      </button>
    </>
  );
}

function Outcome({ error, children }: { error?: string | undefined; children?: ReactNode }) {
  return (
    <>
      <FormError error={error} />
      {children && (
        <p className="span-2 form-result" role="status">
          {children}
        </p>
      )}
    </>
  );
}

function imageRefOf(path: string) {
  const e = useLibrary.getState().entries.find((x) => x.path === path);
  return { filename: path, ...(e?.format ? { format: e.format } : {}) };
}

export function CompareDialog({ image, onClose }: { image: string; onClose(): void }) {
  const id = useId();
  const entries = useLibrary((s) => s.entries);
  const others = entries.filter((e) => e.path !== image && !e.error);
  const [other, setOther] = useState(others[0]?.path ?? '');
  const [strict, setStrict] = useState(false);
  const job = useJobRunner();
  const r = job.result as { identical: boolean; message: string; warning?: string; mismatchOffset?: number } | undefined;
  return (
    <Dialog
      title={`Compare ${basename(image)}`}
      wide
      onClose={onClose}
      footer={<Footer onClose={onClose} busy={job.busy} label="Compare" onRun={() => (other.trim() ? void job.run(() => api.compare({ a: imageRefOf(image), b: imageRefOf(other.trim()), strict })) : job.setError('Choose the image to compare with.'))} />}
    >
      <form className="form-grid" onSubmit={(e) => e.preventDefault()}>
        <div className="field span-2 source-line">
          <span className="label">First image</span>
          <span className="mono">{image}</span>
        </div>
        <div className="field span-2">
          <label htmlFor={`${id}-b`}>Second image (path)</label>
          <input id={`${id}-b`} type="text" list={`${id}-list`} value={other} spellCheck={false} onChange={(e) => setOther(e.target.value)} />
          <datalist id={`${id}-list`}>
            {others.map((e) => (
              <option key={e.path} value={e.path} />
            ))}
          </datalist>
          <p className="help">As qemu-img compare: the guest-visible contents are compared; sizes may differ when the larger image's tail reads as zeros.</p>
        </div>
        <div className="field field-check">
          <input id={`${id}-s`} type="checkbox" checked={strict} onChange={(e) => setStrict(e.target.checked)} />
          <label htmlFor={`${id}-s`}>Strict (-s): sizes and allocation must match too</label>
        </div>
        <Outcome error={job.error}>{r ? `${r.warning ? `${r.warning} ` : ''}${r.message}` : undefined}</Outcome>
      </form>
    </Dialog>
  );
}

export function AmendDialog({ image, onClose }: { image: string; onClose(): void }) {
  const entry = useLibrary((s) => s.entries.find((e) => e.path === image));
  const formats = useFormats((s) => s.formats);
  const format = formats.find((f) => f.name === entry?.format);
  // Key slots have their own dialog: the encryption options are left out here.
  const schema = useMemo(() => (format?.amendOptions ?? []).filter((o) => o.type !== 'secret-id' && !o.name.startsWith('encrypt') && !['size', 'backing_file', 'backing_fmt'].includes(o.name)), [format]);
  const [values, setValues] = useState<FormValues>(() => initialValues(schema));
  const [force, setForce] = useState(false);
  const job = useJobRunner();
  const id = useId();
  const submit = () => {
    const errs = formErrors(schema, values);
    if (errs.length) return job.setError(errs[0]);
    const options = optionsToSend(schema, values);
    if (!Object.keys(options).length) return job.setError('Change at least one option.');
    void job.run(() => api.amend({ image: imageRefOf(image), options, force }), true);
  };
  return (
    <Dialog title={`Amend ${basename(image)}`} wide onClose={onClose} footer={<Footer onClose={onClose} busy={job.busy} label="Amend" onRun={submit} />}>
      <form className="form-grid" onSubmit={(e) => e.preventDefault()}>
        {!schema.length ? (
          <p className="span-2 muted">The {entry?.format ?? 'image'} format has no options that can be changed in place.</p>
        ) : (
          <>
            <p className="span-2 help">qemu-img amend: change these options of the existing image in place. Only the options you change are sent.</p>
            <div className="span-2">
              <OptionsForm schema={schema} values={values} onChange={setValues} title={`${entry?.format} options`} />
            </div>
            <div className="field field-check span-2">
              <input id={`${id}-f`} type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} />
              <label htmlFor={`${id}-f`}>Force (--force): allow changes qemu-img calls unsafe</label>
            </div>
          </>
        )}
        <Outcome error={job.error}>{job.result !== undefined ? 'Options changed.' : undefined}</Outcome>
      </form>
    </Dialog>
  );
}

export function RebaseDialog({ image, onClose }: { image: string; onClose(): void }) {
  const id = useId();
  const entry = useLibrary((s) => s.entries.find((e) => e.path === image));
  const entries = useLibrary((s) => s.entries);
  const [backing, setBacking] = useState(entry?.backingFile ?? '');
  const [backingFormat, setBackingFormat] = useState(entry?.backingFormat ?? 'qcow2');
  const [unsafe, setUnsafe] = useState(false);
  const job = useJobRunner();
  const r = job.result as { backingFile: string | null; bytesCopied: number } | undefined;
  const submit = () => void job.run(() => api.rebase({ image: imageRefOf(image), backingFile: backing.trim(), ...(backing.trim() ? { backingFormat } : {}), unsafe }), true);
  return (
    <Dialog title={`Rebase ${basename(image)}`} wide onClose={onClose} footer={<Footer onClose={onClose} busy={job.busy} label={unsafe ? 'Rebase (unsafe)' : 'Rebase'} onRun={submit} danger={unsafe} />}>
      <form className="form-grid" onSubmit={(e) => e.preventDefault()}>
        <div className="field span-2 source-line">
          <span className="label">Current backing file</span>
          <span className="mono">{entry?.backingFile ?? '(none)'}</span>
        </div>
        <div className="field">
          <label htmlFor={`${id}-b`}>New backing file (-b; empty removes it)</label>
          <input id={`${id}-b`} type="text" list={`${id}-list`} value={backing} spellCheck={false} onChange={(e) => setBacking(e.target.value)} />
          <datalist id={`${id}-list`}>
            {entries
              .filter((e) => e.path !== image)
              .map((e) => (
                <option key={e.path} value={dirname(e.path) === dirname(image) ? basename(e.path) : e.path} />
              ))}
          </datalist>
        </div>
        <div className="field">
          <label htmlFor={`${id}-f`}>Its format (-F)</label>
          <input id={`${id}-f`} type="text" value={backingFormat} spellCheck={false} onChange={(e) => setBackingFormat(e.target.value)} />
        </div>
        <fieldset className="span-2 rebase-mode">
          <legend>Mode</legend>
          <label>
            <input type="radio" name={`${id}-mode`} checked={!unsafe} onChange={() => setUnsafe(false)} /> Safe (default)
          </label>
          <p className="help">
            The guest keeps seeing the same disk: wherever the old and the new backing file read differently, the old contents are copied into {basename(image)} first. Takes as long as reading both chains; the image may grow.
          </p>
          <label>
            <input type="radio" name={`${id}-mode`} checked={unsafe} onChange={() => setUnsafe(true)} /> Unsafe (-u)
          </label>
          <p className="help">
            Only the name in the header changes; no data is read or copied. Right when the file was moved or renamed, or the new backing file has the same contents. Otherwise the guest sees different data wherever {basename(image)} does not hold its own.
          </p>
        </fieldset>
        <Outcome error={job.error}>{r ? `${r.backingFile ? `Backing file is now ${r.backingFile}` : 'The image no longer has a backing file'}; ${formatBytes(r.bytesCopied)} copied into the image.` : undefined}</Outcome>
      </form>
    </Dialog>
  );
}

export function BenchDialog({ image, onClose }: { image: string; onClose(): void }) {
  const id = useId();
  const [count, setCount] = useState('75000');
  const [depth, setDepth] = useState('64');
  const [size, setSize] = useState('4096');
  const [step, setStep] = useState('');
  const [offset, setOffset] = useState('0');
  const [write, setWrite] = useState(false);
  const [pattern, setPattern] = useState('0');
  const [flush, setFlush] = useState('0');
  const job = useJobRunner();
  const r = job.result as { header: string; text: string } | undefined;
  const num = (label: string, v: string, set: (v: string) => void, key: string, help: string) => (
    <div className="field">
      <label htmlFor={`${id}-${key}`}>{label}</label>
      <input id={`${id}-${key}`} type="text" inputMode="numeric" value={v} onChange={(e) => set(e.target.value)} />
      <p className="help">{help}</p>
    </div>
  );
  const submit = () => {
    const ints: Record<string, string> = { count, depth, size, offset, pattern, flush, ...(step.trim() ? { step } : {}) };
    for (const [k, v] of Object.entries(ints)) if (!/^\d+$/.test(v.trim())) return job.setError(`${k} must be a whole number`);
    void job.run(() =>
      api.bench({
        image: imageRefOf(image),
        count: Number(count),
        depth: Number(depth),
        size: Number(size),
        offset: Number(offset),
        ...(step.trim() ? { step: Number(step) } : {}),
        ...(write ? { write: true, pattern: Number(pattern), ...(Number(flush) ? { flushInterval: Number(flush) } : {}) } : {}),
      }),
    );
  };
  return (
    <Dialog title={`Bench ${basename(image)}`} wide onClose={onClose} footer={<Footer onClose={onClose} busy={job.busy} label="Run benchmark" onRun={submit} danger={write} />}>
      <form className="form-grid" onSubmit={(e) => e.preventDefault()}>
        {num('Requests (-c)', count, setCount, 'c', 'How many requests in all.')}
        {num('Queue depth (-d)', depth, setDepth, 'd', 'Requests in flight at once.')}
        {num('Request size (-s)', size, setSize, 's', 'Bytes per request.')}
        {num('Step (-S)', step, setStep, 'st', 'Bytes between request offsets (default: the request size).')}
        {num('Start offset (-o)', offset, setOffset, 'o', 'Where the first request goes.')}
        <div className="field field-check">
          <input id={`${id}-w`} type="checkbox" checked={write} onChange={(e) => setWrite(e.target.checked)} />
          <label htmlFor={`${id}-w`}>Write test (-w)</label>
          <p className="help">Overwrites the image's data with the pattern byte.</p>
        </div>
        {write && num('Pattern byte (--pattern)', pattern, setPattern, 'p', 'The byte every write carries.')}
        {write && num('Flush every N requests (--flush-interval)', flush, setFlush, 'fi', '0: flush only at the end.')}
        <Outcome error={job.error}>{r ? `${r.header}. ${r.text}` : undefined}</Outcome>
      </form>
    </Dialog>
  );
}

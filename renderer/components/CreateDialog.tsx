// "New disk image" (qemu-img create): folder and name, format, virtual size with units, an optional
// backing file, and every create option of the chosen format, generated from its schema. LUKS
// choices continue in the passphrase dialog; the passphrase goes out once, as a secret in the call.

import { useEffect, useId, useMemo, useState } from 'react';
import { api } from '../api-client.ts';
import { useFormats } from '../stores/formats.ts';
import { useLibrary } from '../stores/library.ts';
import { useUi } from '../stores/ui.ts';
import { trackJob } from '../jobs-actions.ts';
import { joinPath } from '../util/format.ts';
import { Dialog } from './Dialog.tsx';
import { OptionsForm, formErrors, initialValues, optionsToSend, type FormValues } from './OptionsForm.tsx';
import { SizeField, sizeBytes, type SizeValue } from './SizeField.tsx';
import { PassphraseDialog, type PassphraseResult } from './PassphraseDialog.tsx';
import { cipherSchema, formSchema, keySecretOption, PASSPHRASE_SECRET_ID } from './image-forms.ts';

export interface CreateDialogProps {
  /** Preset backing file (the snapshot tree's "Create overlay"). */
  backingFile?: string;
  onClose(): void;
}

export function CreateDialog({ backingFile: presetBacking, onClose }: CreateDialogProps) {
  const id = useId();
  const allFormats = useFormats((s) => s.formats);
  const formats = useMemo(() => allFormats.filter((f) => f.canCreate), [allFormats]);
  const roots = useLibrary((s) => s.roots);
  const entries = useLibrary((s) => s.entries);
  const defaultDir = presetBacking ? presetBacking.replace(/[/\\][^/\\]*$/, '') : (roots.find((r) => !entries.some((e) => e.path === r)) ?? roots[0] ?? '');
  const [dir, setDir] = useState(defaultDir);
  const [name, setName] = useState(presetBacking ? 'overlay.qcow2' : 'disk.qcow2');
  const [formatName, setFormatName] = useState(formats.some((f) => f.name === 'qcow2') ? 'qcow2' : (formats[0]?.name ?? 'raw'));
  const format = formats.find((f) => f.name === formatName);
  const schema = useMemo(() => formSchema(format), [format]);
  const [values, setValues] = useState<FormValues>(() => initialValues(schema));
  const [size, setSize] = useState<SizeValue>({ amount: presetBacking ? '' : '20', unit: 1024 ** 3 });
  const [backing, setBacking] = useState(presetBacking ?? '');
  const [askPassphrase, setAskPassphrase] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();

  useEffect(() => setValues(initialValues(schema)), [schema]);
  useEffect(() => {
    // Keep the file name's extension in step with the format.
    setName((n) => n.replace(/\.[A-Za-z0-9]+$/, '') + `.${formatName === 'raw' ? 'img' : formatName}`);
  }, [formatName]);

  const bytes = size.amount === '' ? undefined : sizeBytes(size);
  const problems = [
    ...(!dir.trim() ? ['Choose a folder for the new image.'] : []),
    ...(!name.trim() || /[/\\]/.test(name) ? ['Enter a file name (without a folder).'] : []),
    ...(bytes === undefined && !backing ? ['Enter the virtual size (it may be left empty only with a backing file).'] : []),
    ...formErrors(schema, values),
  ];
  const keySecret = keySecretOption(format, values);

  const start = async (pass?: PassphraseResult) => {
    setBusy(true);
    setError(undefined);
    try {
      const filename = joinPath(dir.trim(), name.trim());
      const options = { ...optionsToSend(schema, values), ...(pass?.options ?? {}) };
      if (keySecret && pass) options[keySecret] = PASSPHRASE_SECRET_ID;
      const { jobId } = await api.create({
        filename,
        format: formatName,
        ...(bytes !== undefined ? { size: bytes } : {}),
        options,
        ...(backing ? { backingFile: backing } : {}),
        // -F: the backing file's format, when the library knows it (qemu-img wants it stated).
        ...(backing && entries.find((e) => e.path === backing)?.format ? { backingFormat: entries.find((e) => e.path === backing)!.format } : {}),
        ...(pass ? { secrets: [{ id: PASSPHRASE_SECRET_ID, data: pass.passphrase }] } : {}),
      });
      trackJob(jobId, { refreshLibrary: true, addRoot: dir.trim(), select: filename, doneText: `Created ${name.trim()}` });
      onClose();
    } catch (e) {
      setError((e as Error).message);
      setBusy(false);
      setAskPassphrase(false);
    }
  };

  const submit = () => {
    if (problems.length) {
      setError(problems[0]);
      return;
    }
    if (keySecret) setAskPassphrase(true);
    else void start();
  };

  if (askPassphrase) {
    return <PassphraseDialog imageName={name} cipherSchema={cipherSchema(format)} onCancel={() => setAskPassphrase(false)} onSubmit={(r) => void start(r)} />;
  }

  return (
    <Dialog
      title={presetBacking ? 'Create overlay image' : 'New disk image'}
      wide
      onClose={onClose}
      footer={
        <>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="button" className="primary" disabled={busy} onClick={submit}>
            {keySecret ? 'Continue…' : 'Create'}
          </button>
        </>
      }
    >
      <form
        className="form-grid"
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        <div className="field">
          <label htmlFor={`${id}-dir`}>Folder</label>
          <input id={`${id}-dir`} type="text" list={`${id}-roots`} value={dir} spellCheck={false} onChange={(e) => setDir(e.target.value)} />
          <datalist id={`${id}-roots`}>
            {roots.map((r) => (
              <option key={r} value={r} />
            ))}
          </datalist>
        </div>
        <div className="field">
          <label htmlFor={`${id}-name`}>File name</label>
          <input id={`${id}-name`} type="text" value={name} spellCheck={false} onChange={(e) => setName(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-fmt`}>Format</label>
          <select id={`${id}-fmt`} value={formatName} onChange={(e) => setFormatName(e.target.value)} aria-describedby={`${id}-fmt-help`}>
            {formats.map((f) => (
              <option key={f.name} value={f.name}>
                {f.name}
              </option>
            ))}
          </select>
          <p className="help" id={`${id}-fmt-help`}>
            {format?.description}
          </p>
        </div>
        <SizeField value={size} onChange={setSize} />
        {format?.supportsBacking && (
          <div className="field span-2">
            <label htmlFor={`${id}-backing`}>Backing file (optional)</label>
            <input id={`${id}-backing`} type="text" value={backing} spellCheck={false} placeholder="/path/to/base.qcow2" onChange={(e) => setBacking(e.target.value)} />
            <p className="help">The new image starts as a copy-on-write overlay of this image; leave the size empty to inherit its size.</p>
          </div>
        )}
        <div className="span-2">
          <OptionsForm schema={schema} values={values} onChange={setValues} />
        </div>
        {keySecret && <p className="span-2 muted">This image will be encrypted with LUKS: you will choose its passphrase next.</p>}
        {error && (
          <p className="span-2 form-error" role="alert">
            {error}
          </p>
        )}
      </form>
    </Dialog>
  );
}

// "Convert" (qemu-img convert): the selected image to a new file in another format, with the target
// format's options generated from its schema, compression (-c) and a snapshot to convert from (-l).
// A LUKS target continues in the passphrase dialog. An encrypted source asks for its passphrase first
// (UnlockDialog); it stays in this component's state and goes with the convert call as a secret.

import { useEffect, useId, useState } from 'react';
import { api } from '../api-client.ts';
import { useLibrary } from '../stores/library.ts';
import { trackJob } from '../jobs-actions.ts';
import { basename, dirname, joinPath, replaceExtension } from '../util/format.ts';
import { FormDialog, FormError } from './FormDialog.tsx';
import { OptionsForm, formErrors, optionsToSend } from './OptionsForm.tsx';
import type { PassphraseResult } from './PassphraseDialog.tsx';
import { PASSPHRASE_SECRET_ID, SOURCE_SECRET_ID, unlockedRef } from './image-forms.ts';
import { extensionFor, FormatField, useNewImageForm } from './NewImageForm.tsx';
import { UnlockDialog } from './UnlockDialog.tsx';
import { OverwritePreview } from './safety/OperationPreview.tsx';
import { MeasureLine } from './views/ConvertExtras.tsx';
import { isRemoteRootName } from '../stores/remote.ts';

export function ConvertDialog({ source, onClose }: { source: string; onClose(): void }) {
  const id = useId();
  const entry = useLibrary((s) => s.entries.find((e) => e.path === source));
  const [dir, setDir] = useState(isRemoteRootName(source) ? (useLibrary.getState().roots.find((r) => !isRemoteRootName(r)) ?? '') : dirname(source)); // a remote source: a local folder
  const f = useNewImageForm((format) => basename(replaceExtension(source, extensionFor(format))));
  const { formats, formatName, setFormatName, format, name, setName, schema, values, setValues, keySecret, busy, error } = f;
  /** Formats that can hold compressed clusters (qemu-img convert -c): their drivers say so. */
  const compressible = formats.filter((x) => x.compression !== false).map((x) => x.name);
  const canCompress = format ? format.compression !== false : false;
  const [compressed, setCompressed] = useState(false);
  const [snapshot, setSnapshot] = useState('');
  /** The encrypted source's passphrase, for this dialog's one convert call. */
  const [sourcePass, setSourcePass] = useState<string>();

  useEffect(() => {
    if (!canCompress) setCompressed(false);
  }, [canCompress]);

  const target = joinPath(dir.trim(), name.trim());
  const problems = [
    ...(!dir.trim() ? ['Choose the folder for the converted image.'] : []),
    ...(!name.trim() || /[/\\]/.test(name) ? ['Enter a file name (without a folder).'] : []),
    ...(target === source ? ['The target must be a new file, not the source.'] : []),
    ...formErrors(schema, values),
  ];

  const start = (pass?: PassphraseResult) =>
    f.attempt(async () => {
      const options = { ...optionsToSend(schema, values), ...(pass?.options ?? {}) };
      if (keySecret && pass) options[keySecret] = PASSPHRASE_SECRET_ID;
      const secrets = [
        ...(sourcePass !== undefined ? [{ id: SOURCE_SECRET_ID, data: sourcePass }] : []),
        ...(pass ? [{ id: PASSPHRASE_SECRET_ID, data: pass.passphrase }] : []),
      ];
      const { jobId } = await api.convertVerified({
        source: sourcePass !== undefined ? unlockedRef(source, entry?.format, SOURCE_SECRET_ID) : { filename: source, ...(entry?.format ? { format: entry.format } : {}) },
        target: { filename: target, format: formatName, options },
        ...(compressed ? { compressed: true } : {}),
        ...(snapshot ? { snapshot } : {}),
        ...(secrets.length ? { secrets } : {}),
      });
      trackJob(jobId, { refreshLibrary: true, addRoot: dir.trim(), select: target, doneText: `Converted ${basename(source)} to ${name.trim()}` });
      onClose();
    });

  if (entry?.encrypted && sourcePass === undefined) {
    return <UnlockDialog path={source} name={basename(source)} format={entry.format} onUnlock={setSourcePass} onCancel={onClose} />;
  }
  const passphrase = f.passphraseStep((r) => void start(r));
  if (passphrase) return passphrase;

  return (
    <FormDialog title={`Convert ${basename(source)}`} onClose={onClose} action={keySecret ? 'Continue…' : 'Convert'} busy={busy} onSubmit={() => f.submit(problems, () => void start())}>
      <div className="field span-2 source-line">
        <span className="label">Source</span>
        <span className="mono">{source}</span>
        {entry?.format && <span className="badge">{entry.format}</span>}
      </div>
      <FormatField id={`${id}-fmt`} label="Target format" formats={formats} value={formatName} onChange={setFormatName} description={format?.description} />
      <div className="field">
        <label htmlFor={`${id}-name`}>Target file name</label>
        <input id={`${id}-name`} type="text" value={name} spellCheck={false} onChange={(e) => setName(e.target.value)} />
      </div>
      <div className="field span-2">
        <label htmlFor={`${id}-dir`}>Target folder</label>
        <input id={`${id}-dir`} type="text" value={dir} spellCheck={false} onChange={(e) => setDir(e.target.value)} />
      </div>
      <div className="field field-check">
        <input id={`${id}-c`} type="checkbox" checked={compressed} disabled={!canCompress} onChange={(e) => setCompressed(e.target.checked)} />
        <label htmlFor={`${id}-c`}>Compress data (-c)</label>
        <p className="help">Smaller file; each cluster is compressed on every core. Only for {compressible.join(', ')}.</p>
      </div>
      {entry && entry.snapshots.length > 0 && (
        <div className="field">
          <label htmlFor={`${id}-snap`}>From snapshot (-l)</label>
          <select id={`${id}-snap`} value={snapshot} onChange={(e) => setSnapshot(e.target.value)}>
            <option value="">Current state</option>
            {entry.snapshots.map((s) => (
              <option key={s.id} value={s.name || s.id}>
                {s.name} (id {s.id})
              </option>
            ))}
          </select>
        </div>
      )}
      <div className="span-2">
        <OptionsForm schema={schema} values={values} onChange={setValues} title={`${formatName} options`} />
      </div>
      <OverwritePreview target={target} />
      {!entry?.encrypted && formErrors(schema, values).length === 0 && <MeasureLine source={source} format={formatName} sourceFormat={entry?.format} options={optionsToSend(schema, values)} {...(snapshot ? { snapshot } : {})} />}
      <FormError error={error} />
    </FormDialog>
  );
}

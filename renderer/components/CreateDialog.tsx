// "New disk image" (qemu-img create): folder and name, format, virtual size with units, an optional
// backing file, and every create option of the chosen format, generated from its schema. LUKS
// choices continue in the passphrase dialog; the passphrase goes out once, as a secret in the call.

import { useId, useState } from 'react';
import { api } from '../api-client.ts';
import { useLibrary } from '../stores/library.ts';
import { useUi } from '../stores/ui.ts';
import { trackJob } from '../jobs-actions.ts';
import { joinPath } from '../util/format.ts';
import { FormDialog, FormError } from './FormDialog.tsx';
import { OptionsForm, formErrors, optionsToSend } from './OptionsForm.tsx';
import { SizeField, sizeBytes, type SizeValue } from './SizeField.tsx';
import type { PassphraseResult } from './PassphraseDialog.tsx';
import { PASSPHRASE_SECRET_ID } from './image-forms.ts';
import { extensionFor, FormatField, useNewImageForm } from './NewImageForm.tsx';

export interface CreateDialogProps {
  /** Preset backing file (the snapshot tree's "Create overlay"). */
  backingFile?: string;
  onClose(): void;
}

export function CreateDialog({ backingFile: presetBacking, onClose }: CreateDialogProps) {
  const id = useId();
  const roots = useLibrary((s) => s.roots);
  const entries = useLibrary((s) => s.entries);
  const defaultDir = presetBacking ? presetBacking.replace(/[/\\][^/\\]*$/, '') : (roots.find((r) => !entries.some((e) => e.path === r)) ?? roots[0] ?? '');
  const [dir, setDir] = useState(defaultDir);
  const f = useNewImageForm((format) => `${presetBacking ? 'overlay' : 'disk'}.${extensionFor(format)}`);
  const { formats, formatName, setFormatName, format, name, setName, schema, values, setValues, keySecret, busy, error } = f;
  const [size, setSize] = useState<SizeValue>({ amount: presetBacking ? '' : '20', unit: 1024 ** 3 });
  const [backing, setBacking] = useState(presetBacking ?? '');

  const bytes = size.amount === '' ? undefined : sizeBytes(size);
  const problems = [
    ...(!dir.trim() ? ['Choose a folder for the new image.'] : []),
    ...(!name.trim() || /[/\\]/.test(name) ? ['Enter a file name (without a folder).'] : []),
    ...(bytes === undefined && !backing ? ['Enter the virtual size (it may be left empty only with a backing file).'] : []),
    ...formErrors(schema, values),
  ];

  const start = (pass?: PassphraseResult) =>
    f.attempt(async () => {
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
    });

  const passphrase = f.passphraseStep((r) => void start(r));
  if (passphrase) return passphrase;

  return (
    <FormDialog title={presetBacking ? 'Create overlay image' : 'New disk image'} onClose={onClose} action={keySecret ? 'Continue…' : 'Create'} busy={busy} onSubmit={() => f.submit(problems, () => void start())}>
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
      <FormatField id={`${id}-fmt`} label="Format" formats={formats} value={formatName} onChange={setFormatName} description={format?.description} />
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
      <FormError error={error} />
    </FormDialog>
  );
}

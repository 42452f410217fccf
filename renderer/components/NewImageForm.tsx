// What a dialog that makes a new image (Convert, Create) keeps: the formats that can be created,
// the chosen one and its create options (reset when the format changes), a file name whose
// extension follows the format, and the submit flow: the first problem is shown, a choice that
// encrypts asks for the passphrase first, and a failed call shows its error and undoes the
// passphrase step. FormatField is the format picker with the format's description under it.

import { useEffect, useMemo, useState, type ReactElement } from 'react';
import type { FormatDescription } from '../../core/api/types.ts';
import { useFormats } from '../stores/formats.ts';
import { initialValues, type FormValues } from './OptionsForm.tsx';
import { PassphraseDialog, type PassphraseResult } from './PassphraseDialog.tsx';
import { cipherSchema, formSchema, keySecretOption } from './image-forms.ts';

/** The extension a new image of `format` gets ("img" for raw). */
export function extensionFor(format: string): string {
  return format === 'raw' ? 'img' : format;
}

export function useNewImageForm(initialName: (format: string) => string) {
  const allFormats = useFormats((s) => s.formats);
  const formats = useMemo(() => allFormats.filter((f) => f.canCreate), [allFormats]);
  const [formatName, setFormatName] = useState(() => (formats.some((f) => f.name === 'qcow2') ? 'qcow2' : (formats[0]?.name ?? 'raw')));
  const [name, setName] = useState(() => initialName(formatName));
  const format = formats.find((f) => f.name === formatName);
  const schema = useMemo(() => formSchema(format), [format]);
  const [values, setValues] = useState<FormValues>(() => initialValues(schema));
  const [askPassphrase, setAskPassphrase] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();

  useEffect(() => setValues(initialValues(schema)), [schema]);
  // Keep the file name's extension in step with the format.
  useEffect(() => setName((n) => n.replace(/\.[A-Za-z0-9]+$/, '') + `.${extensionFor(formatName)}`), [formatName]);

  const keySecret = keySecretOption(format, values);

  /** Runs the dialog's call: busy meanwhile; on failure its message, and the form again. */
  const attempt = async (call: () => Promise<void>) => {
    setBusy(true);
    setError(undefined);
    try {
      await call();
    } catch (e) {
      setError((e as Error).message);
      setBusy(false);
      setAskPassphrase(false);
    }
  };

  /** The action button: the first of `problems`, or the passphrase dialog, or `start`. */
  const submit = (problems: string[], start: () => void) => {
    if (problems.length) {
      setError(problems[0]);
      return;
    }
    if (keySecret) setAskPassphrase(true);
    else start();
  };

  /** The passphrase dialog while it is asked for (`start` gets its answer), else undefined. */
  const passphraseStep = (start: (r: PassphraseResult) => void): ReactElement | undefined =>
    askPassphrase ? <PassphraseDialog imageName={name} cipherSchema={cipherSchema(format)} onCancel={() => setAskPassphrase(false)} onSubmit={start} /> : undefined;

  return { formats, formatName, setFormatName, format, name, setName, schema, values, setValues, keySecret, busy, error, setError, attempt, submit, passphraseStep };
}

export interface FormatFieldProps {
  id: string;
  label: string;
  formats: FormatDescription[];
  value: string;
  onChange(format: string): void;
  description: string | undefined;
}

export function FormatField({ id, label, formats, value, onChange, description }: FormatFieldProps) {
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <select id={id} value={value} onChange={(e) => onChange(e.target.value)} aria-describedby={`${id}-help`}>
        {formats.map((f) => (
          <option key={f.name} value={f.name}>
            {f.name}
          </option>
        ))}
      </select>
      <p className="help" id={`${id}-help`}>
        {description}
      </p>
    </div>
  );
}

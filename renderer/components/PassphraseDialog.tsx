// The LUKS passphrase dialog (creating a luks image, or qcow2 with encrypt.format=luks): the
// passphrase twice with a mismatch error, show/hide, a Caps Lock hint, a zxcvbn strength meter,
// and the cipher options folded under "Advanced cipher options" with LUKS's defaults (from the
// service: the format's encryption capability). The passphrase lives only in this component's
// state until it is handed to onSubmit for one call; it never enters a store, a log or an event.

import { useId, useMemo, useState, type KeyboardEvent } from 'react';
import { ZxcvbnFactory } from '@zxcvbn-ts/core';
import * as zxcvbnCommon from '@zxcvbn-ts/language-common';
import * as zxcvbnEn from '@zxcvbn-ts/language-en';
import type { FormatOptionJson } from '../../core/api/types.ts';
import { FormDialog } from './FormDialog.tsx';
import { OptionsForm, formErrors, initialValues, optionsToSend } from './OptionsForm.tsx';
import { PassphraseInput } from './PassphraseInput.tsx';

let zxcvbn: ZxcvbnFactory | undefined;
export function strength(password: string) {
  zxcvbn ??= new ZxcvbnFactory({
    dictionary: { ...zxcvbnCommon.dictionary, ...zxcvbnEn.dictionary },
    graphs: zxcvbnCommon.adjacencyGraphs,
    translations: zxcvbnEn.translations,
  });
  return zxcvbn.check(password.slice(0, 256));
}

export const STRENGTH_WORDS = ['Very weak', 'Weak', 'Fair', 'Strong', 'Very strong'];

export interface PassphraseResult {
  passphrase: string;
  /** Cipher options as the service takes them (with the schema's own names). */
  options: Record<string, string | number | boolean>;
}

export interface PassphraseDialogProps {
  /** The image being created (for the title). */
  imageName: string;
  /** The cipher options of the chosen format (luks's, or qcow2's encrypt.*), without key-secret. */
  cipherSchema: FormatOptionJson[];
  onSubmit(result: PassphraseResult): void;
  onCancel(): void;
}

/** The cipher options fold under "Advanced cipher options" (their defaults come with them). */
function folded(schema: FormatOptionJson[]): FormatOptionJson[] {
  return schema.map((o) => ({ ...o, advanced: true }));
}

export function PassphraseDialog({ imageName, cipherSchema, onSubmit, onCancel }: PassphraseDialogProps) {
  const id = useId();
  const [pass, setPass] = useState('');
  const [confirm, setConfirm] = useState('');
  const [show, setShow] = useState(false);
  const [capsLock, setCapsLock] = useState(false);
  const [tried, setTried] = useState(false);
  const schema = useMemo(() => folded(cipherSchema), [cipherSchema]);
  const [cipher, setCipher] = useState(() => initialValues(schema));
  const result = useMemo(() => (pass ? strength(pass) : undefined), [pass]);
  const mismatch = confirm.length > 0 && pass !== confirm;
  const empty = pass.length === 0;
  const cipherErrors = formErrors(schema, cipher);

  const onKey = (e: KeyboardEvent<HTMLInputElement>) => setCapsLock(e.getModifierState?.('CapsLock') ?? false);
  const submit = () => {
    setTried(true);
    if (empty || pass !== confirm || cipherErrors.length) return;
    onSubmit({ passphrase: pass, options: optionsToSend(schema, cipher) });
  };
  const score = result?.score ?? 0;

  return (
    <FormDialog title={`Encryption passphrase for ${imageName}`} layout="passphrase" onClose={onCancel} action="Create encrypted image" onSubmit={submit}>
      <p className="muted">
        The image is encrypted with LUKS. Without this passphrase its data cannot be read: Platter does not store it anywhere.
      </p>
      <PassphraseInput
        id={`${id}-p`}
        label="Passphrase"
        value={pass}
        onValue={setPass}
        show={show}
        onToggleShow={() => setShow(!show)}
        autoComplete="new-password"
        aria-describedby={`${id}-strength`}
        onKeyUp={onKey}
        onKeyDown={onKey}
      />
      <div className="strength" id={`${id}-strength`}>
        <div className={`strength-meter s${score}`} role="meter" aria-label="Passphrase strength" aria-valuemin={0} aria-valuemax={4} aria-valuenow={result ? score : 0} aria-valuetext={result ? STRENGTH_WORDS[score] : 'No passphrase'}>
          {[0, 1, 2, 3, 4].map((i) => (
            <span key={i} className={result && i <= score ? 'on' : ''} />
          ))}
        </div>
        <span className="strength-words">
          {result ? `${STRENGTH_WORDS[score]} — cracked offline in ${result.crackTimes.offlineSlowHashingXPerSecond.display}` : 'Enter a passphrase'}
        </span>
        {result?.feedback.warning && <p className="help">{result.feedback.warning}</p>}
      </div>
      <div className="field">
        <label htmlFor={`${id}-c`}>Confirm passphrase</label>
        <input
          id={`${id}-c`}
          type={show ? 'text' : 'password'}
          autoComplete="new-password"
          value={confirm}
          spellCheck={false}
          aria-invalid={mismatch || (tried && pass !== confirm) || undefined}
          aria-describedby={`${id}-err`}
          onKeyUp={onKey}
          onKeyDown={onKey}
          onChange={(e) => setConfirm(e.target.value)}
        />
      </div>
      {capsLock && (
        <p className="hint-caps" role="status">
          Caps Lock is on.
        </p>
      )}
      <div id={`${id}-err`} role="alert" className="form-error">
        {tried && empty ? 'Enter a passphrase.' : mismatch || (tried && pass !== confirm) ? 'The passphrases do not match.' : ''}
      </div>
      {schema.length > 0 && <OptionsForm schema={schema} values={cipher} onChange={setCipher} title="Cipher" advancedLabel="Advanced cipher options" />}
      {tried && cipherErrors.length > 0 && (
        <ul className="form-error" role="alert">
          {cipherErrors.map((e) => (
            <li key={e}>{e}</li>
          ))}
        </ul>
      )}
    </FormDialog>
  );
}

// The passphrase prompt for opening an encrypted image (luks, or qcow2 with encrypt.format luks/aes)
// before Convert or Check reads it: a labelled password field, Unlock and Cancel. Unlock tries the
// passphrase by opening the image once (a one-byte map); a wrong one shows the engine's words
// ("Invalid password, cannot unlock any keyslot") and the prompt stays. The passphrase lives in this
// component's state, then in the caller's component state for its one call: never in a store, a
// log or an event.

import { useId, useState } from 'react';
import { api } from '../api-client.ts';
import { FormDialog } from './FormDialog.tsx';
import { INVALID_PASSWORD, SOURCE_SECRET_ID, unlockedRef } from './image-forms.ts';
import { PassphraseInput } from './PassphraseInput.tsx';

export interface UnlockDialogProps {
  path: string;
  name: string;
  format: string | undefined;
  onUnlock(passphrase: string): void;
  onCancel(): void;
}

export function UnlockDialog({ path, name, format, onUnlock, onCancel }: UnlockDialogProps) {
  const id = useId();
  const [pass, setPass] = useState('');
  const [show, setShow] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');

  const unlock = async () => {
    if (!pass) {
      setError('Enter the passphrase.');
      return;
    }
    setBusy(true);
    setError('');
    try {
      await api.map({ image: unlockedRef(path, format, SOURCE_SECRET_ID), start: 0, length: 1, secrets: [{ id: SOURCE_SECRET_ID, data: pass }] });
      onUnlock(pass);
    } catch (e) {
      const message = (e as Error).message;
      setError((e as { code?: string }).code === 'WrongPassphrase' ? `Wrong passphrase: ${INVALID_PASSWORD}.` : message);
      setBusy(false);
    }
  };

  return (
    <FormDialog title={`Unlock ${name}`} layout="passphrase" onClose={onCancel} action="Unlock" busyAction="Unlocking…" busy={busy} onSubmit={unlock}>
      <p className="muted">This image is encrypted{format ? ` (${format})` : ''}. Enter its passphrase to read it. Platter does not store it.</p>
      <PassphraseInput
        id={`${id}-p`}
        label="Passphrase"
        value={pass}
        onValue={setPass}
        show={show}
        onToggleShow={() => setShow(!show)}
        autoComplete="current-password"
        aria-invalid={error ? true : undefined}
        aria-describedby={`${id}-err`}
      />
      <div id={`${id}-err`} role="alert" className="form-error">
        {error}
      </div>
    </FormDialog>
  );
}

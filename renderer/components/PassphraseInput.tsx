// A passphrase field with its Show/Hide toggle, shared by the create dialog (PassphraseDialog)
// and the unlock dialog (UnlockDialog). The value lives only in the caller's component state.
import type { InputHTMLAttributes } from 'react';

interface PassphraseInputProps extends Omit<InputHTMLAttributes<HTMLInputElement>, 'id' | 'type' | 'value' | 'onChange'> {
  id: string;
  label: string;
  value: string;
  onValue(value: string): void;
  /** Whether the text is visible (one switch can serve several fields). */
  show: boolean;
  onToggleShow(): void;
}

export function PassphraseInput({ id, label, value, onValue, show, onToggleShow, ...inputProps }: PassphraseInputProps) {
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <div className="password-row">
        <input id={id} type={show ? 'text' : 'password'} value={value} spellCheck={false} onChange={(e) => onValue(e.target.value)} {...inputProps} />
        <button type="button" className="toggle" aria-pressed={show} aria-label={show ? 'Hide passphrase' : 'Show passphrase'} onClick={onToggleShow}>
          {show ? 'Hide' : 'Show'}
        </button>
      </div>
    </div>
  );
}

// A dialog around one form: Cancel (or Close) and the form's action in the footer; Enter in the
// form and the action button both submit. Every dialog that is one form uses it (convert, create,
// passphrases, key slots, the remote sources); FormError is the line its error shows in.

import type { ReactNode } from 'react';
import { Dialog } from './Dialog.tsx';

export interface FormDialogProps {
  title: string;
  onClose(): void;
  /** What the action button says, and what it says while `busy`. */
  action: string;
  busyAction?: string;
  busy?: boolean;
  cancelLabel?: string;
  onSubmit(): void | Promise<void>;
  /** The form's fields. */
  children: ReactNode;
  /** Shown below the form (results, lists). */
  after?: ReactNode;
  /** The wide dialog with the two-column form grid (default), or the narrow one with the
   *  passphrase form's single column. */
  layout?: 'grid' | 'passphrase';
  /** The action is destructive (shown in the danger colour). */
  danger?: boolean;
}

export function FormDialog({ title, onClose, action, busyAction, busy = false, cancelLabel = 'Cancel', onSubmit, children, after, layout = 'grid', danger = false }: FormDialogProps) {
  return (
    <Dialog
      title={title}
      wide={layout === 'grid'}
      onClose={onClose}
      footer={
        <>
          <button type="button" onClick={onClose}>
            {cancelLabel}
          </button>
          <button type="button" className={danger ? 'primary danger' : 'primary'} disabled={busy} onClick={() => void onSubmit()}>
            {busy && busyAction ? busyAction : action}
          </button>
        </>
      }
    >
      <form
        className={layout === 'grid' ? 'form-grid' : 'passphrase-form'}
        onSubmit={(e) => {
          e.preventDefault();
          void onSubmit();
        }}
      >
        {children}
      </form>
      {after}
    </Dialog>
  );
}

/** A form's error, read out as an alert; nothing when there is none. */
export function FormError({ error, className = 'span-2 form-error' }: { error: string | undefined; className?: string }) {
  return error ? (
    <p className={className} role="alert">
      {error}
    </p>
  ) : null;
}

// A wide dialog around one form: Cancel (or Close) and the form's action in the footer; Enter in
// the form and the action button both submit. The remote-source dialogs share it.

import type { ReactNode } from 'react';
import { Dialog } from '../Dialog.tsx';

export interface FormDialogProps {
  title: string;
  onClose(): void;
  /** What the action button says, and what it says while `busy`. */
  action: string;
  busyAction?: string;
  busy?: boolean;
  cancelLabel?: string;
  onSubmit(): void | Promise<void>;
  /** The form's fields (laid out in the two-column form grid). */
  children: ReactNode;
  /** Shown below the form (results, lists). */
  after?: ReactNode;
}

export function FormDialog({ title, onClose, action, busyAction, busy = false, cancelLabel = 'Cancel', onSubmit, children, after }: FormDialogProps) {
  return (
    <Dialog
      title={title}
      wide
      onClose={onClose}
      footer={
        <>
          <button type="button" onClick={onClose}>
            {cancelLabel}
          </button>
          <button type="button" className="primary" disabled={busy} onClick={() => void onSubmit()}>
            {busy && busyAction ? busyAction : action}
          </button>
        </>
      }
    >
      <form
        className="form-grid"
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

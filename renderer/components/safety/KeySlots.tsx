// Key slots of an encrypted image (#16 item 4), in the details pane: the LUKS slots (active,
// PBKDF iterations) and Add / Change / Remove, each asking a passphrase the image already has.
// New passphrases get the create dialog's strength meter. Passphrases live only in the dialog's
// state and go with one keySlotChange call as secrets ('current', 'new'); never in a store.

import { useEffect, useId, useMemo, useState } from 'react';
import type { KeySlotList } from '../../../core/api/safety/keyslots.ts';
import type { LibraryEntry } from '../../../core/api/library.ts';
import { api } from '../../api-client.ts';
import { trackJob } from '../../jobs-actions.ts';
import { useJobs } from '../../stores/jobs.ts';
import { FormDialog, FormError } from '../FormDialog.tsx';
import { PassphraseInput } from '../PassphraseInput.tsx';
import { strength, STRENGTH_WORDS } from '../PassphraseDialog.tsx';

type Action = 'add' | 'change' | 'remove';

function Meter({ value, id }: { value: string; id: string }) {
  const r = useMemo(() => (value ? strength(value) : undefined), [value]);
  const score = r?.score ?? 0;
  return (
    <div className="strength" id={id}>
      <div className={`strength-meter s${score}`} role="meter" aria-label="Passphrase strength" aria-valuemin={0} aria-valuemax={4} aria-valuenow={r ? score : 0} aria-valuetext={r ? STRENGTH_WORDS[score] : 'No passphrase'}>
        {[0, 1, 2, 3, 4].map((i) => (
          <span key={i} className={r && i <= score ? 'on' : ''} />
        ))}
      </div>
      <span className="strength-words">{r ? STRENGTH_WORDS[score] : 'Enter a passphrase'}</span>
    </div>
  );
}

function KeySlotDialog({ entry, action, slot, onClose, onDone }: { entry: LibraryEntry; action: Action; slot?: number; onClose(): void; onDone(slots: KeySlotList): void }) {
  const id = useId();
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [confirm, setConfirm] = useState('');
  const [show, setShow] = useState(false);
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const wantsNew = action !== 'remove';
  const title = action === 'add' ? `Add a passphrase to ${entry.name}` : action === 'change' ? `Change a passphrase of ${entry.name}` : `Remove key slot ${slot} of ${entry.name}`;
  const submit = async () => {
    if (!current) return setError('Enter a passphrase the image already has.');
    if (wantsNew && !next) return setError('Enter the new passphrase.');
    if (wantsNew && next !== confirm) return setError('The passphrases do not match.');
    setBusy(true);
    setError(undefined);
    try {
      const { jobId } = await api.keySlotChange({
        path: entry.path,
        format: entry.format === 'luks' ? 'luks' : 'qcow2',
        action,
        ...(slot !== undefined ? { keyslot: slot } : {}),
        secrets: [{ id: 'current', data: current }, ...(wantsNew ? [{ id: 'new', data: next }] : [])],
      });
      const r = (await trackJob(jobId, { refreshLibrary: true })) as { slots: KeySlotList } | undefined;
      if (!r) throw new Error(useJobs.getState().jobs[jobId]?.error?.message ?? 'The key slot change did not complete.');
      onDone(r.slots);
    } catch (e) {
      setError((e as Error).message);
      setBusy(false);
    }
  };
  return (
    <FormDialog title={title} layout="passphrase" onClose={onClose} action={action === 'add' ? 'Add passphrase' : action === 'change' ? 'Change passphrase' : 'Remove key slot'} danger={action === 'remove'} busy={busy} onSubmit={submit}>
      <p className="muted">
        {action === 'add'
          ? 'A new key slot gets the new passphrase; the existing ones keep working.'
          : action === 'change'
            ? 'The new passphrase gets a slot of its own, then every slot the current passphrase opens is erased.'
            : 'The slot is erased; its passphrase no longer opens the image. The last slot cannot be removed.'}{' '}
        Platter proves the change with a passphrase the image already has (qemu-img amend).
      </p>
      <PassphraseInput id={`${id}-cur`} label="Current passphrase" value={current} onValue={setCurrent} show={show} onToggleShow={() => setShow(!show)} autoComplete="current-password" />
      {wantsNew && (
        <>
          <PassphraseInput id={`${id}-new`} label="New passphrase" value={next} onValue={setNext} show={show} onToggleShow={() => setShow(!show)} autoComplete="new-password" aria-describedby={`${id}-m`} />
          <Meter value={next} id={`${id}-m`} />
          <div className="field">
            <label htmlFor={`${id}-c`}>Confirm new passphrase</label>
            <input id={`${id}-c`} type={show ? 'text' : 'password'} autoComplete="new-password" value={confirm} spellCheck={false} onChange={(e) => setConfirm(e.target.value)} />
          </div>
        </>
      )}
      {busy && <p className="muted" role="status">Working (each key slot takes its PBKDF time)…</p>}
      <FormError error={error} className="form-error" />
    </FormDialog>
  );
}

/** The key slots section of an encrypted luks / qcow2+luks image. */
export function KeySlots({ entry }: { entry: LibraryEntry }) {
  const [list, setList] = useState<KeySlotList>();
  const [error, setError] = useState<string>();
  const [dialog, setDialog] = useState<{ action: Action; slot?: number }>();
  useEffect(() => {
    let live = true;
    setList(undefined);
    api
      .keySlots({ path: entry.path })
      .then((l) => live && setList(l))
      .catch((e: Error) => live && setError(e.message));
    return () => {
      live = false;
    };
  }, [entry.path, entry.modified]);
  if (error || !list) return null;
  const inUse = entry.lock === 'in-use';
  return (
    <section className="key-slots" aria-label="Key slots">
      <h3>
        Key slots ({list.active} of {list.slots.length} in use)
      </h3>
      <table className="mini-table" aria-label="Key slot list">
        <thead>
          <tr>
            <th>Slot</th>
            <th>State</th>
            <th>Iterations</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {list.slots.map((s) => (
            <tr key={s.index}>
              <td>{s.index}</td>
              <td>{s.active ? 'active' : <span className="muted">empty</span>}</td>
              <td className="num">{s.iterations?.toLocaleString('en-US') ?? ''}</td>
              <td>
                {s.active && (
                  <button type="button" className="small" disabled={inUse || list.active <= 1} title={list.active <= 1 ? 'The last key slot cannot be removed: the image would be unreadable for good.' : undefined} aria-label={`Remove key slot ${s.index}`} onClick={() => setDialog({ action: 'remove', slot: s.index })}>
                    Remove…
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <div className="details-actions">
        <button type="button" disabled={inUse || list.active >= list.slots.length} onClick={() => setDialog({ action: 'add' })}>
          Add passphrase…
        </button>
        <button type="button" disabled={inUse} onClick={() => setDialog({ action: 'change' })}>
          Change passphrase…
        </button>
      </div>
      {dialog && (
        <KeySlotDialog
          entry={entry}
          action={dialog.action}
          {...(dialog.slot !== undefined ? { slot: dialog.slot } : {})}
          onClose={() => setDialog(undefined)}
          onDone={(l) => {
            setList(l);
            setDialog(undefined);
          }}
        />
      )}
    </section>
  );
}

// "Browse iSCSI" (#21): a portal, optional CHAP user and password (a secret for this one call),
// SendTargets discovery listing the targets and their LUNs with type and size; a LUN is added to
// the library by its iscsi:// name (never with the password in it; the main process keeps the
// credentials that logged in, in memory only, so the LUN opens until the app quits).

import { useId, useState } from 'react';
import { api } from '../../api-client.ts';
import type { IscsiTargetRow } from '../../../core/api/routes-remote.ts';
import { useLibrary } from '../../stores/library.ts';
import { formatBytes } from '../../util/format.ts';
import { FormDialog, FormError } from '../FormDialog.tsx';
import { PassphraseInput } from '../PassphraseInput.tsx';

const CHAP_ID = 'iscsi-chap-password';

export function IscsiBrowseDialog({ onClose }: { onClose(): void }) {
  const id = useId();
  const addRoots = useLibrary((s) => s.addRoots);
  const select = useLibrary((s) => s.select);
  const [portal, setPortal] = useState('');
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const [show, setShow] = useState(false);
  const [targets, setTargets] = useState<IscsiTargetRow[]>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();

  const browse = async () => {
    if (!portal.trim()) return setError('Enter the portal (host or host:port).');
    setBusy(true);
    setError(undefined);
    try {
      setTargets(
        await api.iscsiBrowse({
          portal: portal.trim(),
          ...(user.trim() ? { user: user.trim() } : {}),
          ...(password ? { passwordSecret: CHAP_ID, secrets: [{ id: CHAP_ID, data: password }] } : {}),
        }),
      );
    } catch (e) {
      setError((e as Error).message);
      setTargets(undefined);
    } finally {
      setBusy(false);
    }
  };

  const add = (uri: string) => {
    addRoots([uri]);
    select(uri);
    onClose();
  };

  return (
    <FormDialog title="Browse iSCSI portal" onClose={onClose} cancelLabel="Close" action="Discover targets" busy={busy} busyAction="Discovering…" onSubmit={browse} after={
        <>
          <FormError error={error} className="form-error" />
          {targets && targets.length === 0 && <p className="muted">The portal offers no targets.</p>}
          {targets?.map((t) => (
            <section key={t.name} className="iscsi-target" aria-label={`Target ${t.name}`}>
              <h3 className="mono">{t.name}</h3>
              <p className="help">{t.addresses.join(', ')}</p>
              {t.error && <p className="form-error">{t.error}</p>}
              {t.luns.some((l) => l.size !== undefined) && (
                <table className="mini-table">
                  <thead>
                    <tr>
                      <th>LUN</th>
                      <th>Type</th>
                      <th>Size</th>
                      <th>Product</th>
                      <th />
                    </tr>
                  </thead>
                  <tbody>
                    {t.luns.filter((l) => l.size !== undefined).map((l) => (
                      <tr key={l.lun}>
                        <td>{l.lun}</td>
                        <td>{l.type}</td>
                        <td>{l.size !== undefined ? formatBytes(l.size) : '—'}</td>
                        <td>
                          {l.vendor} {l.product}
                        </td>
                        <td>
                          <button type="button" aria-label={`Add LUN ${l.lun} of ${t.name}`} onClick={() => add(l.uri)}>
                            Add
                          </button>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </section>
          ))}
          {targets?.some((t) => t.luns.length) && user.trim() !== '' && (
            <p className="help">The library keeps the LUN's name only. The CHAP password that logged in stays in Platter's memory until it quits (never saved): after a restart, browse again to open such a LUN.</p>
          )}
        </>
      }>
        <div className="field span-2">
          <label htmlFor={`${id}-portal`}>Portal</label>
          <input id={`${id}-portal`} type="text" value={portal} spellCheck={false} placeholder="192.0.2.10:3260" onChange={(e) => setPortal(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-user`}>CHAP user (optional)</label>
          <input id={`${id}-user`} type="text" value={user} spellCheck={false} autoComplete="off" onChange={(e) => setUser(e.target.value)} />
        </div>
        <PassphraseInput id={`${id}-pw`} label="CHAP password (optional)" value={password} onValue={setPassword} show={show} onToggleShow={() => setShow(!show)} autoComplete="off" />
    </FormDialog>
  );
}

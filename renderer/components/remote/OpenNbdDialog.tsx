// "Open NBD export" (#18): a URI field (nbd://host:port/export, nbd+unix:///export?socket=PATH, or
// the older nbd:host:port forms), "List exports" (NBD_OPT_LIST, with each export's size), and the
// chosen export added to the library as a row of its own.

import { useId, useState } from 'react';
import { api } from '../../api-client.ts';
import type { NbdExportRow } from '../../../core/api/routes-remote.ts';
import { useLibrary } from '../../stores/library.ts';
import { formatBytes } from '../../util/format.ts';
import { Dialog } from '../Dialog.tsx';
import { FormError } from '../FormDialog.tsx';

export function OpenNbdDialog({ onClose }: { onClose(): void }) {
  const id = useId();
  const addRoots = useLibrary((s) => s.addRoots);
  const select = useLibrary((s) => s.select);
  const [uri, setUri] = useState('');
  const [exports, setExports] = useState<NbdExportRow[]>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();

  const list = async () => {
    if (!uri.trim()) return setError('Enter the server URI, e.g. nbd://127.0.0.1:10809');
    setBusy(true);
    setError(undefined);
    try {
      setExports(await api.nbdListExports({ uri: uri.trim() }));
    } catch (e) {
      setError((e as Error).message);
      setExports(undefined);
    } finally {
      setBusy(false);
    }
  };

  const add = (name: string) => {
    addRoots([name]);
    select(name);
    onClose();
  };

  return (
    <Dialog
      title="Open NBD export"
      wide
      onClose={onClose}
      footer={
        <>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="button" disabled={busy} onClick={() => void list()}>
            {busy ? 'Listing…' : 'List exports'}
          </button>
          <button type="button" className="primary" disabled={!uri.trim()} onClick={() => add(uri.trim())}>
            Add URI to library
          </button>
        </>
      }
    >
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void list();
        }}
      >
        <div className="field">
          <label htmlFor={`${id}-uri`}>NBD URI</label>
          <input id={`${id}-uri`} type="text" className="mono" value={uri} spellCheck={false} placeholder="nbd://127.0.0.1:10809/export  or  nbd+unix:///export?socket=/run/x.sock" onChange={(e) => setUri(e.target.value)} />
          <p className="help">List the server's exports and add one, or add the URI as it is.</p>
        </div>
      </form>
      <FormError error={error} className="form-error" />
      {exports && (
        <table className="mini-table" aria-label="Exports">
          <thead>
            <tr>
              <th>Export</th>
              <th>Size</th>
              <th>Access</th>
              <th>Description</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {exports.map((x) => (
              <tr key={x.uri}>
                <td className="mono">{x.name === '' ? '(default)' : x.name}</td>
                <td>{formatBytes(x.size)}</td>
                <td>{x.readOnly ? 'read-only' : 'read-write'}</td>
                <td>{x.description}</td>
                <td>
                  <button type="button" onClick={() => add(x.uri)} aria-label={`Add export ${x.name === '' ? '(default)' : x.name}`}>
                    Add
                  </button>
                </td>
              </tr>
            ))}
            {exports.length === 0 && (
              <tr>
                <td colSpan={5} className="muted">
                  The server lists no exports.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      )}
    </Dialog>
  );
}

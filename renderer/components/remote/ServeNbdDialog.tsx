// "Serve over NBD" (#18): serve the selected image from the app's own process on a unix socket or a
// 127.0.0.1 port, read-only unless asked; then the URI to copy, who is connected (peer and since
// when, refreshed every second) and Stop. Servers end with the app.

import { useEffect, useId, useState } from 'react';
import { api } from '../../api-client.ts';
import { useRemote } from '../../stores/remote.ts';
import { useLibrary } from '../../stores/library.ts';
import { useUi } from '../../stores/ui.ts';
import { basename, formatDate } from '../../util/format.ts';
import { Dialog } from '../Dialog.tsx';
import { FormError } from '../FormDialog.tsx';

export function ServeNbdDialog({ image, onClose }: { image: string; onClose(): void }) {
  const id = useId();
  const entry = useLibrary((s) => s.entries.find((e) => e.path === image));
  const servers = useRemote((s) => s.servers);
  const refreshServers = useRemote((s) => s.refreshServers);
  const notify = useUi((s) => s.notify);
  const [transport, setTransport] = useState<'unix' | 'tcp'>('unix');
  const [port, setPort] = useState('');
  const [writable, setWritable] = useState(false);
  const [exportName, setExportName] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [servingId, setServingId] = useState<string>();
  const serving = servers.find((s) => s.id === servingId) ?? (servingId ? undefined : servers.find((s) => s.filename === image));

  useEffect(() => {
    void refreshServers();
    const t = setInterval(() => void refreshServers(), 1000);
    return () => clearInterval(t);
  }, [refreshServers]);

  const start = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const p = port.trim() ? Number(port.trim()) : 0;
      if (transport === 'tcp' && (!Number.isInteger(p) || p < 0 || p > 65535)) throw new Error('The port is a number from 0 to 65535 (0: any free port).');
      const r = await api.nbdServe({ image: { filename: image, ...(entry?.format ? { format: entry.format } : {}) }, transport, ...(transport === 'tcp' ? { port: p } : {}), writable, ...(exportName.trim() ? { exportName: exportName.trim() } : {}) });
      setServingId(r.id);
      await refreshServers();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };

  const stop = async () => {
    if (!serving) return;
    setBusy(true);
    await api.nbdStop({ id: serving.id }).catch((e: Error) => setError(e.message));
    setServingId(undefined);
    await refreshServers();
    setBusy(false);
    notify(`Stopped serving ${basename(image)}`);
  };

  const copy = () => {
    if (!serving) return;
    void navigator.clipboard?.writeText(serving.uri).then(
      () => notify('URI copied'),
      () => notify('Select the URI and copy it', 'error'),
    );
  };

  return (
    <Dialog
      title={`Serve ${basename(image)} over NBD`}
      wide
      onClose={onClose}
      footer={
        serving ? (
          <>
            <button type="button" onClick={onClose}>
              Close
            </button>
            <button type="button" className="danger" disabled={busy} onClick={() => void stop()}>
              Stop
            </button>
          </>
        ) : (
          <>
            <button type="button" onClick={onClose}>
              Cancel
            </button>
            <button type="button" className="primary" disabled={busy} onClick={() => void start()}>
              {busy ? 'Starting…' : 'Start serving'}
            </button>
          </>
        )
      }
    >
      {serving ? (
        <section aria-label="NBD server">
          <div className="field">
            <label htmlFor={`${id}-uri`}>URI</label>
            <div className="password-row">
              <input id={`${id}-uri`} type="text" readOnly value={serving.uri} className="mono" onFocus={(e) => e.target.select()} />
              <button type="button" onClick={copy}>
                Copy
              </button>
            </div>
            <p className="help">
              {serving.readOnly ? 'Read-only export.' : 'Writable export: clients change this image.'} Serving since {formatDate(serving.started)}. The server stops when Platter quits.
            </p>
          </div>
          <h3>Connected clients ({serving.connections.length})</h3>
          {serving.connections.length ? (
            <table className="mini-table" aria-label="Connected clients">
              <thead>
                <tr>
                  <th>Peer</th>
                  <th>Connected since</th>
                </tr>
              </thead>
              <tbody>
                {serving.connections.map((c, i) => (
                  <tr key={`${c.peer}-${i}`}>
                    <td className="mono">{c.peer}</td>
                    <td>{formatDate(c.since)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <p className="muted">Nobody is connected.</p>
          )}
        </section>
      ) : (
        <form
          className="form-grid"
          onSubmit={(e) => {
            e.preventDefault();
            void start();
          }}
        >
          <fieldset className="field span-2 remote-choice">
            <legend className="label">Listen on</legend>
            <label>
              <input type="radio" name={`${id}-t`} checked={transport === 'unix'} onChange={() => setTransport('unix')} /> Unix socket (this machine only)
            </label>
            <label>
              <input type="radio" name={`${id}-t`} checked={transport === 'tcp'} onChange={() => setTransport('tcp')} /> TCP port on 127.0.0.1
            </label>
          </fieldset>
          {transport === 'tcp' && (
            <div className="field">
              <label htmlFor={`${id}-port`}>Port</label>
              <input id={`${id}-port`} type="text" inputMode="numeric" value={port} placeholder="any free port" onChange={(e) => setPort(e.target.value)} />
            </div>
          )}
          <div className="field">
            <label htmlFor={`${id}-name`}>Export name</label>
            <input id={`${id}-name`} type="text" value={exportName} spellCheck={false} placeholder="(default: empty)" onChange={(e) => setExportName(e.target.value)} />
          </div>
          <label className="field-check span-2">
            <input type="checkbox" checked={writable} onChange={(e) => setWritable(e.target.checked)} />
            <span>Allow writes</span>
            <span className="help">Off by default: clients can read but not change the image.</span>
          </label>
          <FormError error={error} />
        </form>
      )}
    </Dialog>
  );
}

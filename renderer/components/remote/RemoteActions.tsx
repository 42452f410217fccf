// The library sidebar's remote section (#18, #20, #21): open an NBD export, add a FAT folder, an
// ssh folder or an iSCSI LUN, and the NBD servers this app runs (each with its clients and Stop).
// RemoteDialogs renders whichever remote dialog is open; ServeNbdButton sits in the details pane.

import { useEffect } from 'react';
import { api } from '../../api-client.ts';
import type { LibraryEntry } from '../../../core/api/library.ts';
import { useRemote } from '../../stores/remote.ts';
import { basename } from '../../util/format.ts';
import { ServeNbdDialog } from './ServeNbdDialog.tsx';
import { OpenNbdDialog } from './OpenNbdDialog.tsx';
import { AddFatDialog, NewFromFolderDialog } from './FatDialogs.tsx';
import { SshFolderDialog } from './SshFolderDialog.tsx';
import { IscsiBrowseDialog } from './IscsiBrowseDialog.tsx';

export function RemoteActions() {
  const open = useRemote((s) => s.open);
  const servers = useRemote((s) => s.servers);
  const refreshServers = useRemote((s) => s.refreshServers);
  useEffect(() => {
    void refreshServers();
    const t = setInterval(() => void refreshServers(), 3000);
    return () => clearInterval(t);
  }, [refreshServers]);
  return (
    <section className="remote-actions" aria-label="Remote sources">
      <h3 className="small muted">Remote and virtual</h3>
      <div className="sidebar-actions">
        <button type="button" onClick={() => open('nbd-open')}>
          Open NBD export…
        </button>
        <button type="button" onClick={() => open('ssh-add')}>
          Add remote folder (ssh)…
        </button>
        <button type="button" onClick={() => open('iscsi-browse')}>
          Browse iSCSI…
        </button>
        <button type="button" onClick={() => open('fat-add')}>
          Add FAT folder…
        </button>
      </div>
      {servers.length > 0 && (
        <ul className="nbd-served" aria-label="Serving over NBD">
          {servers.map((s) => (
            <li key={s.id}>
              <button type="button" className="link" onClick={() => open('nbd-serve', s.filename)} title={s.uri}>
                {basename(s.filename)}
              </button>
              <span className="muted small"> {s.connections.length} connected</span>
              <button type="button" className="icon-button subtle" aria-label={`Stop serving ${basename(s.filename)}`} onClick={() => void api.nbdStop({ id: s.id }).then(refreshServers)}>
                ■
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function ServeNbdButton({ entry }: { entry: LibraryEntry }) {
  const open = useRemote((s) => s.open);
  return (
    <button type="button" onClick={() => open('nbd-serve', entry.path)} disabled={Boolean(entry.error)}>
      Serve over NBD…
    </button>
  );
}

export function NewFromFolderButton() {
  const open = useRemote((s) => s.open);
  return (
    <button type="button" onClick={() => open('fat-new')}>
      New image from folder…
    </button>
  );
}

export function RemoteDialogs() {
  const dialog = useRemote((s) => s.dialog);
  const target = useRemote((s) => s.target);
  const close = useRemote((s) => s.close);
  switch (dialog) {
    case 'nbd-serve':
      return target ? <ServeNbdDialog image={target} onClose={close} /> : null;
    case 'nbd-open':
      return <OpenNbdDialog onClose={close} />;
    case 'fat-new':
      return <NewFromFolderDialog onClose={close} />;
    case 'fat-add':
      return <AddFatDialog onClose={close} />;
    case 'ssh-add':
      return <SshFolderDialog onClose={close} />;
    case 'iscsi-browse':
      return <IscsiBrowseDialog onClose={close} />;
    default:
      return null;
  }
}

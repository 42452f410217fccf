// The application shell: top bar (actions, view switch, filter), library sidebar, the image table
// or snapshot tree, the details pane, the jobs panel, dialogs and notices.

import { useEffect } from 'react';
import { api, onEvent } from './api-client.ts';
import { useFormats } from './stores/formats.ts';
import { useJobs } from './stores/jobs.ts';
import { selectedEntry, useLibrary } from './stores/library.ts';
import { useUi } from './stores/ui.ts';
import { Sidebar, AddPathDialogBody } from './components/Sidebar.tsx';
import { ImageTable } from './components/ImageTable.tsx';
import { DetailsPane } from './components/DetailsPane.tsx';
import { JobsPanel } from './components/JobsPanel.tsx';
import { CreateDialog } from './components/CreateDialog.tsx';
import { ConvertDialog } from './components/ConvertDialog.tsx';
import { CheckDialog } from './components/CheckDialog.tsx';
import { ResizeDialog } from './components/ResizeDialog.tsx';
import { SnapshotTree } from './components/SnapshotTree.tsx';
import { Dialog } from './components/Dialog.tsx';
import { ViewsActions } from './components/views/ViewsActions.tsx';
import { ViewsDialogs } from './components/views/ViewsDialogs.tsx';
import { NewFromFolderButton, RemoteDialogs } from './components/remote/RemoteActions.tsx';

function useStartup() {
  useEffect(() => {
    const off = onEvent((e) => {
      useJobs.getState().handle(e);
      if (e.type === 'library-changed') void (e.roots ? useLibrary.getState().refreshRoots(e.roots) : useLibrary.getState().refresh());
    });
    void useFormats.getState().load();
    // A file dropped outside the library sidebar does nothing (never opens it in the window).
    const swallow = (e: DragEvent) => e.preventDefault();
    window.addEventListener('dragover', swallow);
    window.addEventListener('drop', swallow);
    api
      .appConfig()
      .then((config) => {
        const lib = useLibrary.getState();
        const missing = config.roots.filter((r) => !lib.roots.includes(r));
        if (missing.length) lib.addRoots(missing);
        else void lib.refresh();
      })
      .catch((e: Error) => useUi.getState().notify(e.message, 'error'));
    return () => {
      off();
      window.removeEventListener('dragover', swallow);
      window.removeEventListener('drop', swallow);
    };
  }, []);
}

function TopBar() {
  const view = useUi((s) => s.view);
  const setView = useUi((s) => s.setView);
  const open = useUi((s) => s.open);
  const entry = useLibrary(selectedEntry);
  const filter = useLibrary((s) => s.filter);
  const setFilter = useLibrary((s) => s.setFilter);
  const scanning = useLibrary((s) => s.scanning);
  const refresh = useLibrary((s) => s.refresh);
  const count = useLibrary((s) => s.entries.length);
  return (
    <header className="topbar">
      <div className="brand">
        <img src="icon.png" alt="" width={26} height={26} />
        <span>Platter</span>
      </div>
      <div className="actions" role="toolbar" aria-label="Image actions">
        <button type="button" className="primary" onClick={() => open('create')}>
          New image…
        </button>
        <NewFromFolderButton />
        <button type="button" disabled={!entry || Boolean(entry.error)} onClick={() => entry && open('convert', entry.path)}>
          Convert…
        </button>
        <button type="button" disabled={!entry || Boolean(entry.error)} onClick={() => entry && open('check', entry.path)}>
          Check…
        </button>
        <ViewsActions />
        <button type="button" onClick={() => void refresh()} aria-busy={scanning}>
          {scanning ? 'Refreshing…' : 'Refresh'}
        </button>
      </div>
      <div className="tabs" role="tablist" aria-label="View">
        <button type="button" role="tab" aria-selected={view === 'images'} onClick={() => setView('images')}>
          Images <span className="count">{count}</span>
        </button>
        <button type="button" role="tab" aria-selected={view === 'tree'} onClick={() => setView('tree')}>
          Snapshot tree
        </button>
      </div>
      <input className="filter" type="search" aria-label="Filter images" placeholder="Filter by name, format, backing file…" value={filter} onChange={(e) => setFilter(e.target.value)} />
    </header>
  );
}

function Dialogs() {
  const dialog = useUi((s) => s.dialog);
  const target = useUi((s) => s.dialogTarget);
  const close = useUi((s) => s.close);
  switch (dialog) {
    case 'create':
      return <CreateDialog onClose={close} />;
    case 'convert':
      return target ? <ConvertDialog source={target} onClose={close} /> : null;
    case 'check':
      return target ? <CheckDialog image={target} onClose={close} /> : null;
    case 'resize':
      return target ? <ResizeDialog image={target} onClose={close} /> : null;
    case 'add-path':
      return (
        <Dialog title="Add to library" onClose={close}>
          <AddPathDialogBody onDone={close} />
        </Dialog>
      );
    default:
      return null;
  }
}

function Notices() {
  const notices = useUi((s) => s.notices);
  const dismiss = useUi((s) => s.dismiss);
  return (
    <div className="notices" role="status" aria-live="polite">
      {notices.map((n) => (
        <div key={n.id} className={`notice ${n.tone}`}>
          <span>{n.text}</span>
          <button type="button" className="icon-button subtle" aria-label="Dismiss notice" onClick={() => dismiss(n.id)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}

export function App() {
  useStartup();
  const view = useUi((s) => s.view);
  const scanError = useLibrary((s) => s.scanError);
  return (
    <div className="app">
      <TopBar />
      <div className="workspace">
        <Sidebar />
        <main className="main" aria-label={view === 'images' ? 'Images' : 'Snapshot tree'}>
          {scanError && (
            <p className="form-error banner" role="alert">
              {scanError}
            </p>
          )}
          {view === 'images' ? <ImageTable /> : <SnapshotTree />}
        </main>
        <DetailsPane />
      </div>
      <JobsPanel />
      <Dialogs />
      <ViewsDialogs />
      <RemoteDialogs />
      <Notices />
    </div>
  );
}

// The library sidebar: the folders and files in the library, "Add folder" / "Add image" (a native
// picker in Electron, a path field in browser mode), removal, and drag-and-drop of files where the
// platform gives their path (Electron).

import { useId, useState, type DragEvent } from 'react';
import { api, isElectron, pathForFile } from '../api-client.ts';
import { useLibrary } from '../stores/library.ts';
import { useUi } from '../stores/ui.ts';
import { basename } from '../util/format.ts';
import { RemoteActions } from './remote/RemoteActions.tsx';
import { rootLabel } from '../stores/remote.ts';
import { DrivesSection } from './drives/DrivesSection.tsx';

export function AddPathDialogBody({ onDone }: { onDone(): void }) {
  const id = useId();
  const addRoots = useLibrary((s) => s.addRoots);
  const [path, setPath] = useState('');
  return (
    <form
      className="add-path"
      onSubmit={(e) => {
        e.preventDefault();
        if (!path.trim()) return;
        addRoots([path.trim()]);
        onDone();
      }}
    >
      <div className="field">
        <label htmlFor={id}>Folder or image path</label>
        <input id={id} type="text" value={path} spellCheck={false} placeholder="/var/lib/libvirt/images" onChange={(e) => setPath(e.target.value)} autoFocus />
        <p className="help">A folder adds every disk image in it; a file adds that image. Paths are on the machine running Platter.</p>
      </div>
      <div className="row-end">
        <button type="submit" className="primary">
          Add to library
        </button>
      </div>
    </form>
  );
}

export function Sidebar() {
  const roots = useLibrary((s) => s.roots);
  const entries = useLibrary((s) => s.entries);
  const addRoots = useLibrary((s) => s.addRoots);
  const removeRoot = useLibrary((s) => s.removeRoot);
  const open = useUi((s) => s.open);
  const notify = useUi((s) => s.notify);
  const [dragging, setDragging] = useState(false);

  const add = async (kind: 'folder' | 'file') => {
    if (isElectron()) {
      const paths = await api.pickPaths({ kind });
      if (paths.length) addRoots(paths);
    } else open('add-path');
  };

  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    const paths = [...e.dataTransfer.files].map((f) => pathForFile(f)).filter((p): p is string => Boolean(p));
    if (paths.length) addRoots(paths);
    else notify('This browser does not tell Platter where dropped files are: use "Add folder or image" and type the path.', 'error');
  };

  return (
    <nav
      className={`sidebar${dragging ? ' dragging' : ''}`}
      aria-label="Library"
      onDragOver={(e) => {
        e.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={onDrop}
    >
      <div className="sidebar-head">
        <h2>Library</h2>
      </div>
      <ul className="roots">
        {roots.map((r) => {
          const count = entries.filter((e) => e.root === r).length;
          return (
            <li key={r} className="root">
              <span className="root-icon" aria-hidden="true">
                {entries.some((e) => e.path === r) ? '◧' : '▣'}
              </span>
              <span className="root-name" title={r}>
                {rootLabel(r)}
                <span className="root-path">{r}</span>
              </span>
              <span className="count" aria-label={`${count} images`}>
                {count}
              </span>
              <button type="button" className="icon-button subtle" aria-label={`Remove ${r} from library`} onClick={() => removeRoot(r)}>
                ×
              </button>
            </li>
          );
        })}
        {roots.length === 0 && <li className="muted small">Nothing here yet.</li>}
      </ul>
      <div className="sidebar-actions">
        {isElectron() ? (
          <>
            <button type="button" onClick={() => void add('folder')}>
              Add folder…
            </button>
            <button type="button" onClick={() => void add('file')}>
              Add image…
            </button>
          </>
        ) : (
          <button type="button" onClick={() => open('add-path')}>
            Add folder or image…
          </button>
        )}
      </div>
      <RemoteActions />
      <p className="drop-hint small muted">{isElectron() ? 'Drop disk images here to add them.' : 'Browser mode: add items by path.'}</p>
      <DrivesSection />
    </nav>
  );
}

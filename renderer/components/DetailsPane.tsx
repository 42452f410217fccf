// The details pane: everything `qemu-img info` shows for the selected image (format-specific data
// included) and its backing chain, read with --backing-chain and -U so an image in use still shows.

import { useEffect, useState } from 'react';
import type { ImageInfo } from '../../core/api/types.ts';
import { api } from '../api-client.ts';
import { selectedEntry, useLibrary } from '../stores/library.ts';
import type { LibraryEntry } from '../../core/api/library.ts';
import { useUi } from '../stores/ui.ts';
import { useFormats } from '../stores/formats.ts';
import { basename, formatBytes, formatDate, formatVmClock } from '../util/format.ts';
import { LockInspector } from './safety/LockInspector.tsx';
import { KeySlots } from './safety/KeySlots.tsx';
import { ServeNbdButton } from './remote/RemoteActions.tsx';
import { FormError } from './FormDialog.tsx';

function flatten(data: Record<string, unknown>, prefix = ''): [string, string][] {
  const out: [string, string][] = [];
  for (const [k, v] of Object.entries(data)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v)) out.push(...flatten(v as Record<string, unknown>, key));
    else if (Array.isArray(v) && v.some((x) => x && typeof x === 'object')) v.forEach((x, i) => out.push(...flatten((x ?? {}) as Record<string, unknown>, `${key}[${i}]`)));
    else if (Array.isArray(v)) out.push([key, v.map(String).join(', ')]);
    else out.push([key, typeof v === 'boolean' ? (v ? 'true' : 'false') : String(v)]);
  }
  return out;
}

/** The facts of the selected image. Its sizes are the library row's (the table's numbers, from the
 *  same `info` read), so the table and this pane never disagree; the chain read fills the rest. */
function Facts({ info, entry }: { info: ImageInfo; entry: LibraryEntry }) {
  const virtualSize = entry.virtualSize ?? info['virtual-size'];
  const actualSize = entry.virtualSize !== undefined ? entry.actualSize : info['actual-size'];
  const rows: [string, string][] = [
    ['Format', info.format],
    ['Virtual size', `${formatBytes(virtualSize)} (${virtualSize.toLocaleString('en-US')} bytes)`],
    ['Disk size', formatBytes(actualSize)],
    ...(info['cluster-size'] ? ([['Cluster size', String(info['cluster-size'])]] as [string, string][]) : []),
    ['Encrypted', info.encrypted ? 'yes' : 'no'],
    ...(info['dirty-flag'] !== undefined ? ([['Dirty flag', info['dirty-flag'] ? 'yes' : 'no']] as [string, string][]) : []),
    ...(info['backing-filename'] ? ([['Backing file', info['backing-filename']]] as [string, string][]) : []),
    ...(info['backing-filename-format'] ? ([['Backing format', info['backing-filename-format']]] as [string, string][]) : []),
  ];
  const specific = info['format-specific'] ? flatten(info['format-specific'].data) : [];
  return (
    <>
      <dl className="facts">
        {rows.map(([k, v]) => (
          <div key={k}>
            <dt>{k}</dt>
            <dd>{v}</dd>
          </div>
        ))}
      </dl>
      {specific.length > 0 && (
        <details className="specific" open>
          <summary>Format specific information ({info['format-specific']!.type})</summary>
          <dl className="facts">
            {specific.map(([k, v]) => (
              <div key={k}>
                <dt title={k}>{k}</dt>
                <dd>{v}</dd>
              </div>
            ))}
          </dl>
        </details>
      )}
    </>
  );
}

export function DetailsPane() {
  const entry = useLibrary(selectedEntry);
  const open = useUi((s) => s.open);
  const setView = useUi((s) => s.setView);
  const readOnlyFormat = useFormats((s) => s.formats.find((f) => f.name === entry?.format)?.readOnly ?? false);
  const [chain, setChain] = useState<ImageInfo[]>();
  const [error, setError] = useState<string>();

  useEffect(() => {
    setChain(undefined);
    setError(undefined);
    if (!entry || entry.error) return;
    let live = true;
    api
      .info({ image: { filename: entry.path, forceShare: true }, backingChain: true })
      .then((r) => {
        if (!live) return;
        const list = Array.isArray(r) ? r : [r];
        setChain(list);
        // One source of truth for "disk size": the file's allocated bytes (st_blocks * 512, as
        // qemu-img info). A fresher read than the row's (the file system settles its allocation
        // after the write, without a new mtime) updates the row, so table and pane agree.
        const fresh = list[0]?.['actual-size'];
        if (fresh !== undefined && fresh !== entry.actualSize) {
          useLibrary.setState((s) => ({ entries: s.entries.map((e) => (e.path === entry.path ? { ...e, actualSize: fresh } : e)) }));
        }
      })
      .catch((e: Error) => live && setError(e.message));
    return () => {
      live = false;
    };
  }, [entry?.path, entry?.modified, entry?.snapshots.length, entry?.backingFile]);

  if (!entry) {
    return (
      <aside className="details empty" aria-label="Image details">
        <p>Select an image to see its details.</p>
      </aside>
    );
  }
  const info = chain?.[0];
  return (
    <aside className="details" aria-label="Image details">
      <header className="details-header">
        <h2 title={entry.path}>{entry.name}</h2>
        <p className="mono path">{entry.path}</p>
        <div className="details-actions">
          <button type="button" onClick={() => open('convert', entry.path)} disabled={Boolean(entry.error)}>
            Convert…
          </button>
          <button type="button" onClick={() => open('check', entry.path)} disabled={Boolean(entry.error)}>
            Check…
          </button>
          <button
            type="button"
            onClick={() => open('resize', entry.path)}
            disabled={Boolean(entry.error) || entry.lock === 'in-use' || readOnlyFormat}
            title={readOnlyFormat ? `${entry.format} images are read-only (QEMU opens them read-only too): convert to a writable format to change it` : undefined}
          >
            Resize…
          </button>
          <button type="button" onClick={() => setView('tree')}>
            Snapshot tree
          </button>
          <ServeNbdButton entry={entry} />
        </div>
      </header>
      {entry.error && (
        <p className="form-error" role="alert">
          {entry.error.message}
        </p>
      )}
      <FormError error={error} className="form-error" />
      {entry.lock === 'in-use' && <p className="notice-inline">Another process is using this image (it holds the write lock). Details are read in shared mode.</p>}
      {entry.lock === 'in-use' && <LockInspector path={entry.path} />}
      {info && <Facts info={info} entry={entry} />}
      {entry.encrypted && (entry.format === 'luks' || entry.format === 'qcow2') && <KeySlots entry={entry} />}
      {!info && !entry.error && !error && <p className="muted">Reading…</p>}
      <section aria-label="Snapshots">
        <h3>Snapshots ({entry.snapshots.length})</h3>
        {entry.snapshots.length ? (
          <table className="mini-table">
            <thead>
              <tr>
                <th>ID</th>
                <th>Tag</th>
                <th>VM size</th>
                <th>Date</th>
                <th>VM clock</th>
              </tr>
            </thead>
            <tbody>
              {entry.snapshots.map((s) => (
                <tr key={s.id}>
                  <td>{s.id}</td>
                  <td>{s.name}</td>
                  <td>{formatBytes(s['vm-state-size'])}</td>
                  <td>{formatDate(s['date-sec'] * 1000)}</td>
                  <td className="mono">{formatVmClock(s['vm-clock-sec'], s['vm-clock-nsec'])}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <p className="muted">No internal snapshots.</p>
        )}
      </section>
      {info?.children && info.children.length > 0 && (
        <section aria-label="Child nodes">
          <h3>Child nodes</h3>
          <ul className="chain">
            {info.children.map((c) => (
              <li key={`${c.name}-${c.info.filename}`}>
                <span className="badge">{c.name}</span> <span title={c.info.filename}>{basename(c.info.filename)}</span>
                <span className="muted">
                  {' '}
                  · {c.info.format} · {formatBytes(c.info['virtual-size'])}
                </span>
              </li>
            ))}
          </ul>
        </section>
      )}
      <section aria-label="Backing chain">
        <h3>Backing chain</h3>
        {chain && chain.length > 1 ? (
          <ol className="chain">
            {chain.map((c, i) => (
              <li key={`${c.filename}-${i}`}>
                <span className="badge">{c.format}</span> <span title={c.filename}>{basename(c.filename)}</span>
                <span className="muted"> · {formatBytes(c['virtual-size'])}</span>
                {i === 0 && <span className="muted"> (this image)</span>}
              </li>
            ))}
          </ol>
        ) : (
          <p className="muted">{chain ? 'No backing file: this image stands alone.' : '—'}</p>
        )}
      </section>
    </aside>
  );
}

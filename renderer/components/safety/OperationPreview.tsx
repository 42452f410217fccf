// The preview of a destructive operation (#16 item 1), shown in its confirm dialog before the
// confirm button: the images of the library built on the image (by name, with how much each would
// read differently), bytes that change or move per layer, what becomes unreadable, and a danger
// box with the safe alternative. Data: the previewOperation query (core/api/safety/preview.ts),
// read-only with -U.

import { useEffect, useState } from 'react';
import type { OperationPreview as Preview, PreviewInput } from '../../../core/api/safety/preview.ts';
import { api } from '../../api-client.ts';
import { useLibrary } from '../../stores/library.ts';
import { formatBytes } from '../../util/format.ts';

export type PreviewOpInput = PreviewInput['op'];

const EFFECT_WORDS: Record<string, string> = {
  'reads-different-data': 'reads different data',
  unchanged: 'unchanged',
  'may-change': 'may change',
};

/** Fetch the preview of `op` (undefined: none) against the library's folders. */
export function usePreview(op: PreviewOpInput | undefined, secrets?: { id: string; data: string }[]): { preview?: Preview; error?: string; loading: boolean } {
  const roots = useLibrary((s) => s.roots);
  const [state, setState] = useState<{ preview?: Preview; error?: string; loading: boolean }>({ loading: Boolean(op) });
  const key = JSON.stringify(op ?? null);
  useEffect(() => {
    if (!op) return setState({ loading: false });
    let live = true;
    setState({ loading: true });
    // A field being typed into (rebase's new backing file) asks once it rests.
    const timer = setTimeout(() => {
      api
        .previewOperation({ op, library: roots, ...(secrets?.length ? { secrets } : {}) })
        .then((preview) => live && setState({ preview, loading: false }))
        .catch((e: Error) => live && setState({ error: e.message, loading: false }));
    }, 250);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [key, roots.join('\n')]);
  return state;
}

export function PreviewView({ preview, error, loading }: { preview?: Preview; error?: string; loading: boolean }) {
  if (loading) {
    return (
      <section className="op-preview" aria-label="Preview" aria-busy="true">
        <p className="muted">Working out what this changes…</p>
      </section>
    );
  }
  if (error) {
    return (
      <section className="op-preview" aria-label="Preview">
        <p className="muted">No preview: {error}</p>
      </section>
    );
  }
  if (!preview) return null;
  const affected = preview.dependents;
  return (
    <section className={`op-preview${preview.danger ? ' has-danger' : ''}`} aria-label="Preview">
      <p className="op-summary">{preview.summary}</p>
      {preview.danger && (
        <div className="op-danger" role="alert">
          <strong>Would corrupt other images or lose data.</strong> {preview.danger.message}
          <p className="op-alternative">
            <strong>Safer:</strong> {preview.danger.alternative}
          </p>
        </div>
      )}
      <h3>Data per layer</h3>
      <table className="mini-table" aria-label="Data per layer">
        <thead>
          <tr>
            <th>Image</th>
            <th>Change</th>
            <th>Bytes</th>
          </tr>
        </thead>
        <tbody>
          {preview.layers.map((l) => (
            <tr key={`${l.path}-${l.change}`}>
              <td title={l.path}>{l.name}</td>
              <td title={l.words}>{l.change}</td>
              <td className="num">
                {l.estimate ? '≤ ' : ''}
                {formatBytes(l.bytes)}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3>Images that depend on it ({affected.length})</h3>
      {affected.length ? (
        <ul className="op-dependents" aria-label="Dependent images">
          {affected.map((d) => (
            <li key={d.path} className={`effect-${d.effect}`}>
              <strong title={d.path}>{d.name}</strong> <span className="badge">{d.depth === 1 ? 'overlay' : `overlay ×${d.depth}`}</span> <span className="op-effect">{EFFECT_WORDS[d.effect]}</span>
              {d.bytes ? ` (${formatBytes(d.bytes)})` : ''}: <span className="muted">{d.words}</span>
            </li>
          ))}
        </ul>
      ) : (
        <p className="muted">No image in the library uses it as a backing file.</p>
      )}
      {preview.unreadable.length > 0 && (
        <>
          <h3>No longer readable afterwards</h3>
          <ul className="op-unreadable">
            {preview.unreadable.map((u) => (
              <li key={u}>{u}</li>
            ))}
          </ul>
        </>
      )}
      {preview.notes.map((n) => (
        <p key={n} className="muted">
          {n}
        </p>
      ))}
    </section>
  );
}

/** The preview of `op`, fetched and shown. */
export function OperationPreview({ op, secrets }: { op: PreviewOpInput | undefined; secrets?: { id: string; data: string }[] }) {
  const s = usePreview(op, secrets);
  return <PreviewView {...s} />;
}

/** Convert's target: when it is an image of the library, the preview of replacing it. */
export function OverwritePreview({ target }: { target: string }) {
  const exists = useLibrary((s) => s.entries.some((e) => e.path === target));
  return exists ? (
    <div className="span-2">
      <p className="form-error">{target} exists: converting replaces it.</p>
      <OperationPreview op={{ kind: 'convert-overwrite', target }} />
    </div>
  ) : null;
}

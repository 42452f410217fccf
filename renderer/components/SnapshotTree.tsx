// The snapshot tree view: a graph (React Flow, dagre layout) of the library's backing chains and
// each image's internal snapshots. Selecting a node selects the image (the details pane follows);
// the toolbar acts on the selection: create/apply/delete snapshot, create overlay, commit, rebase,
// with a confirmation before anything destructive. A plain list of the same relations is kept for
// screen readers.

import { memo, useMemo, useState, type KeyboardEvent } from 'react';
import { Background, Controls, Handle, Position, ReactFlow, type Edge, type Node, type NodeProps } from '@xyflow/react';
import { api } from '../api-client.ts';
import { trackJob } from '../jobs-actions.ts';
import { useLibrary } from '../stores/library.ts';
import { useUi } from '../stores/ui.ts';
import { basename, formatBytes, formatDate } from '../util/format.ts';
import { ConfirmDialog, Dialog } from './Dialog.tsx';
import { buildGraph, type GraphNodeData, type Selection } from './graph-model.ts';
import { CreateDialog } from './CreateDialog.tsx';
import { OperationPreview } from './safety/OperationPreview.tsx';
import { GraphMiniMap, HereNode, ImageNodeExtras } from './views/GraphExtras.tsx';

type FlowNode = Node<GraphNodeData>;

/** Enter or Space on a focused node selects it, as a click does (React Flow listens for clicks). */
function clickOnKey(e: KeyboardEvent<HTMLDivElement>): void {
  if (e.key === 'Enter' || e.key === ' ') {
    e.preventDefault();
    e.currentTarget.click();
  }
}

const ImageNode = memo(function ImageNode({ data }: NodeProps<FlowNode>) {
  if (data.kind !== 'image') return null;
  const e = data.entry;
  return (
    <div className={`graph-node image${data.selected ? ' selected' : ''}${e ? '' : ' missing'}`} role="button" tabIndex={0} aria-pressed={data.selected} aria-label={`Image ${data.label}`} onKeyDown={clickOnKey}>
      <Handle type="target" position={Position.Top} isConnectable={false} />
      <div className="graph-title">
        <span className={`disk-icon fmt-${e?.format ?? 'unknown'}`} aria-hidden="true" />
        {data.label}
      </div>
      <div className="graph-sub">{e ? `${e.format ?? '?'} · ${formatBytes(e.virtualSize)}${e.encrypted ? ' · encrypted' : ''}` : 'not in library'}</div>
      <ImageNodeExtras entry={e} />
      <Handle type="source" position={Position.Bottom} isConnectable={false} />
    </div>
  );
});

const SnapshotNode = memo(function SnapshotNode({ data }: NodeProps<FlowNode>) {
  if (data.kind !== 'snapshot') return null;
  return (
    <div className={`graph-node snapshot${data.selected ? ' selected' : ''}`} role="button" tabIndex={0} aria-pressed={data.selected} aria-label={`Snapshot ${data.label} of ${data.imageName}`} onKeyDown={clickOnKey}>
      <Handle type="target" position={Position.Top} isConnectable={false} />
      <div className="graph-title">◉ {data.label}</div>
      <div className="graph-sub">
        id {data.snapshot.id} · {formatDate(data.snapshot['date-sec'] * 1000)}
      </div>
    </div>
  );
});

const nodeTypes = { image: ImageNode, snapshot: SnapshotNode, here: HereNode };

type Pending =
  | { kind: 'apply' | 'delete'; path: string; name: string; id: string }
  | { kind: 'commit'; path: string; backing: string }
  | { kind: 'snapshot-create'; path: string }
  | { kind: 'overlay'; path: string }
  | { kind: 'rebase'; path: string };

export function SnapshotTree() {
  const entries = useLibrary((s) => s.entries);
  const selectedPath = useLibrary((s) => s.selected);
  const select = useLibrary((s) => s.select);
  const refresh = useLibrary((s) => s.refresh);
  const notify = useUi((s) => s.notify);
  const [snapshotId, setSnapshotId] = useState<string>();
  const [pending, setPending] = useState<Pending>();
  const [snapName, setSnapName] = useState('');
  const [rebaseTo, setRebaseTo] = useState('');
  const [rebaseUnsafe, setRebaseUnsafe] = useState(false);
  const sel: Selection = { ...(selectedPath ? { path: selectedPath } : {}), ...(snapshotId ? { snapshotId } : {}) };
  const graph = useMemo(() => buildGraph(entries, sel, { here: true }), [entries, selectedPath, snapshotId]);
  const nodes: FlowNode[] = graph.nodes.map((n) => ({ id: n.id, type: n.data.kind, position: n.position, data: n.data, draggable: false, connectable: false }));
  // The "You are here" link is laid out (dagre) and listed for screen readers, not drawn.
  const edges: Edge[] = graph.edges.filter((e) => e.kind !== 'here').map((e) => ({
    id: e.id,
    source: e.source,
    target: e.target,
    type: e.kind === 'backing' ? 'smoothstep' : 'default',
    className: `edge-${e.kind}`,
    animated: false,
    ...(e.kind === 'backing' ? { label: 'overlay' } : {}),
  }));

  const entry = entries.find((e) => e.path === selectedPath);
  const snapshot = entry?.snapshots.find((s) => s.id === snapshotId);

  const act = async (what: () => Promise<unknown>, done: string) => {
    try {
      await what();
      notify(done);
    } catch (e) {
      notify((e as Error).message, 'error');
    }
    await refresh();
  };

  const runPending = () => {
    const p = pending;
    setPending(undefined);
    if (!p) return;
    switch (p.kind) {
      case 'apply':
        void act(() => api.snapshotApply({ image: { filename: p.path }, name: p.id }), `Reverted ${basename(p.path)} to snapshot ${p.name}.`);
        break;
      case 'delete':
        setSnapshotId(undefined);
        void act(() => api.snapshotDelete({ image: { filename: p.path }, name: p.id }), `Deleted snapshot ${p.name}.`);
        break;
      case 'commit':
        void api
          .commit({ image: { filename: p.path } })
          .then(({ jobId }) => trackJob(jobId, { refreshLibrary: true }))
          .catch((e: Error) => notify(e.message, 'error'));
        break;
      default:
        break;
    }
  };

  const toolbar = (
    <div className="tree-toolbar" role="toolbar" aria-label="Snapshot actions">
      <span className="tree-selection">
        {snapshot && entry ? (
          <>
            Snapshot <strong>{snapshot.name}</strong> of {entry.name}
          </>
        ) : entry ? (
          <>
            Image <strong>{entry.name}</strong>
          </>
        ) : (
          'Select an image or a snapshot in the graph.'
        )}
      </span>
      {snapshot && entry && (
        <>
          <button type="button" onClick={() => setPending({ kind: 'apply', path: entry.path, name: snapshot.name, id: snapshot.id })}>
            Apply snapshot…
          </button>
          <button type="button" className="danger" onClick={() => setPending({ kind: 'delete', path: entry.path, name: snapshot.name, id: snapshot.id })}>
            Delete snapshot…
          </button>
        </>
      )}
      {entry && !snapshot && (
        <>
          <button
            type="button"
            onClick={() => {
              setSnapName(`snap${entry.snapshots.length + 1}`);
              setPending({ kind: 'snapshot-create', path: entry.path });
            }}
          >
            Create snapshot…
          </button>
          <button type="button" onClick={() => setPending({ kind: 'overlay', path: entry.path })}>
            Create overlay…
          </button>
          <button type="button" disabled={!entry.fullBackingFile} onClick={() => entry.fullBackingFile && setPending({ kind: 'commit', path: entry.path, backing: entry.fullBackingFile })}>
            Commit…
          </button>
          <button
            type="button"
            onClick={() => {
              setRebaseTo(entry.fullBackingFile ?? '');
              setRebaseUnsafe(false);
              setPending({ kind: 'rebase', path: entry.path });
            }}
          >
            Rebase…
          </button>
        </>
      )}
    </div>
  );

  return (
    <section className="tree-view" aria-label="Snapshot tree">
      {toolbar}
      <div className="tree-canvas">
        {graph.nodes.length === 0 ? (
          <p className="empty-table">No backing chains or snapshots in the library yet. Select an image to start one.</p>
        ) : (
          <ReactFlow
            nodes={nodes}
            edges={edges}
            nodeTypes={nodeTypes}
            fitView
            fitViewOptions={{ padding: 0.2, maxZoom: 1.2 }}
            minZoom={0.2}
            nodesDraggable={false}
            nodesConnectable={false}
            elementsSelectable
            onNodeClick={(_e, node) => {
              const d = node.data;
              select(d.path);
              setSnapshotId(d.kind === 'snapshot' ? d.snapshot.id : undefined);
            }}
            onPaneClick={() => setSnapshotId(undefined)}
          >
            <Background gap={20} size={1} />
            <Controls showInteractive={false} />
            <GraphMiniMap count={nodes.length} />
          </ReactFlow>
        )}
      </div>
      <ul className="sr-only" aria-label="Relations">
        {graph.edges.map((e) => {
          const src = graph.nodes.find((n) => n.id === e.source)?.data;
          const dst = graph.nodes.find((n) => n.id === e.target)?.data;
          return <li key={e.id}>{e.kind === 'backing' ? `${dst?.label} is an overlay of ${src?.label}` : e.kind === 'here' ? `You are here: the current state of ${src?.label}` : `${dst?.label} is a snapshot of ${src?.label}`}</li>;
        })}
      </ul>

      {pending?.kind === 'apply' && (
        <ConfirmDialog
          title="Apply snapshot?"
          message={<>{`${basename(pending.path)} will return to snapshot "${pending.name}". Everything written since that snapshot is lost, as with qemu-img snapshot -a.`}<OperationPreview op={{ kind: 'snapshot-apply', image: { filename: pending.path }, snapshot: pending.id }} /></>}
          confirmLabel="Apply snapshot"
          danger
          onCancel={() => setPending(undefined)}
          onConfirm={runPending}
        />
      )}
      {pending?.kind === 'delete' && (
        <ConfirmDialog
          title="Delete snapshot?"
          message={<>{`Snapshot "${pending.name}" of ${basename(pending.path)} will be deleted. The image's current state is kept.`}<OperationPreview op={{ kind: 'snapshot-delete', image: { filename: pending.path }, snapshot: pending.id }} /></>}
          confirmLabel="Delete snapshot"
          danger
          onCancel={() => setPending(undefined)}
          onConfirm={runPending}
        />
      )}
      {pending?.kind === 'commit' && (
        <ConfirmDialog
          title="Commit into backing file?"
          message={<>{`The changes in ${basename(pending.path)} will be written into ${basename(pending.backing)}. Every other image that uses ${basename(pending.backing)} as its backing file will see them too.`}<OperationPreview op={{ kind: 'commit', image: { filename: pending.path } }} /></>}
          confirmLabel="Commit"
          danger
          onCancel={() => setPending(undefined)}
          onConfirm={runPending}
        />
      )}
      {pending?.kind === 'snapshot-create' && (
        <Dialog
          title={`New snapshot of ${basename(pending.path)}`}
          onClose={() => setPending(undefined)}
          footer={
            <>
              <button type="button" onClick={() => setPending(undefined)}>
                Cancel
              </button>
              <button
                type="button"
                className="primary"
                disabled={!snapName.trim()}
                onClick={() => {
                  const p = pending;
                  setPending(undefined);
                  void act(() => api.snapshotCreate({ image: { filename: p.path }, name: snapName.trim() }), `Created snapshot ${snapName.trim()}.`);
                }}
              >
                Create snapshot
              </button>
            </>
          }
        >
          <div className="field">
            <label htmlFor="snap-name">Snapshot name</label>
            <input id="snap-name" type="text" value={snapName} onChange={(e) => setSnapName(e.target.value)} />
            <p className="help">An internal snapshot records the disk as it is now (qemu-img snapshot -c).</p>
          </div>
        </Dialog>
      )}
      {pending?.kind === 'overlay' && <CreateDialog backingFile={pending.path} onClose={() => setPending(undefined)} />}
      {pending?.kind === 'rebase' && (
        <Dialog
          title={`Rebase ${basename(pending.path)}`}
          onClose={() => setPending(undefined)}
          footer={
            <>
              <button type="button" onClick={() => setPending(undefined)}>
                Cancel
              </button>
              <button
                type="button"
                className="primary danger"
                onClick={() => {
                  const p = pending;
                  setPending(undefined);
                  void api
                    .rebase({ image: { filename: p.path }, backingFile: rebaseTo.trim(), ...(rebaseUnsafe ? { unsafe: true } : {}) })
                    .then(({ jobId }) => trackJob(jobId, { refreshLibrary: true }))
                    .catch((e: Error) => notify(e.message, 'error'));
                }}
              >
                Rebase
              </button>
            </>
          }
        >
          <div className="field">
            <label htmlFor="rebase-to">New backing file</label>
            <input id="rebase-to" type="text" value={rebaseTo} spellCheck={false} placeholder="(empty: no backing file)" onChange={(e) => setRebaseTo(e.target.value)} />
            <p className="help">Safe mode copies every range where the old and new backing files differ into the image first, so the guest sees the same data.</p>
          </div>
          <div className="field field-check">
            <input id="rebase-unsafe" type="checkbox" checked={rebaseUnsafe} onChange={(e) => setRebaseUnsafe(e.target.checked)} />
            <label htmlFor="rebase-unsafe">Unsafe: only rewrite the backing file name (-u)</label>
            <p className="help">Use this after moving or renaming the backing file. If the new file has different contents, the image is corrupted.</p>
          </div>
          <OperationPreview op={{ kind: 'rebase', image: { filename: pending.path }, backingFile: rebaseTo.trim(), ...(rebaseUnsafe ? { unsafe: true } : {}) }} />
        </Dialog>
      )}
    </section>
  );
}

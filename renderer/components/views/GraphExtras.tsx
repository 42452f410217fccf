// The storage graph's additions (issue #16 item 8): persistent dirty bitmaps as badges on their
// images and the folder each image lies in (chains cross folders), the "You are here" node (an
// image's active state among its internal snapshots), and a mini-map once the graph is large.

import { memo } from 'react';
import { Handle, MiniMap, Position, type Node, type NodeProps } from '@xyflow/react';
import type { LibraryEntry } from '../../../core/api/library.ts';
import type { GraphNodeData } from '../graph-model.ts';
import { basename } from '../../util/format.ts';

/** Bitmap badges and the folder, under an image node's title. */
export function ImageNodeExtras({ entry }: { entry: LibraryEntry | undefined }) {
  if (!entry) return null;
  return (
    <div className="graph-extras">
      <span className="graph-folder" title={entry.dir}>
        in {basename(entry.dir)}/
      </span>
      {(entry.bitmaps ?? []).map((b) => (
        <span key={b.name} className={`badge bitmap${b.flags.includes('in-use') ? ' inconsistent' : ''}`} role="note" aria-label={`Dirty bitmap ${b.name} of ${entry.name}`} title={`Persistent dirty bitmap ${b.name}: granularity ${b.granularity} bytes${b.flags.length ? `; ${b.flags.join(', ')}` : ''}`}>
          ▦ {b.name}
        </span>
      ))}
    </div>
  );
}

/** The active state of an image with internal snapshots. */
export const HereNode = memo(function HereNode({ data }: NodeProps<Node<GraphNodeData>>) {
  if (data.kind !== 'here') return null;
  return (
    <div className="graph-node here" role="note" aria-label={`You are here: the current state of ${data.imageName}`} title="What a VM using this image reads now. Applying a snapshot replaces it; creating one saves it.">
      <Handle type="target" position={Position.Top} isConnectable={false} />
      <div className="graph-title">➤ You are here</div>
      <div className="graph-sub">current state</div>
    </div>
  );
});

/** How many nodes make a graph large enough for a mini-map. */
export const MINIMAP_FROM = 8;

export function GraphMiniMap({ count }: { count: number }) {
  if (count < MINIMAP_FROM) return null;
  return <MiniMap pannable zoomable ariaLabel="Mini-map of the storage graph" nodeStrokeWidth={2} nodeColor={(n) => (n.type === 'image' ? '#2f6fde' : n.type === 'here' ? '#e8912d' : '#98a2b3')} />;
}

// The snapshot tree's model, apart from drawing: library rows -> graph nodes (images, their
// internal snapshots, backing files outside the library) and edges (base -> overlay,
// image -> snapshot), laid out top-down with dagre. One base with several overlays is a tree.

import dagre from '@dagrejs/dagre';
import type { LibraryEntry } from '../../core/api/library.ts';
import type { SnapshotInfoJson } from '../../core/api/types.ts';
import { basename } from '../util/format.ts';

export type GraphNodeData =
  | { kind: 'image'; path: string; entry?: LibraryEntry; label: string; selected: boolean }
  | { kind: 'snapshot'; path: string; snapshot: SnapshotInfoJson; imageName: string; label: string; selected: boolean }
  | { kind: 'here'; path: string; imageName: string; label: string; selected: boolean };

export interface GraphNode {
  id: string;
  data: GraphNodeData;
  position: { x: number; y: number };
}

export interface GraphEdge {
  id: string;
  source: string;
  target: string;
  kind: 'backing' | 'snapshot' | 'here';
}

export const IMAGE_NODE = { width: 210, height: 80 };
export const SNAPSHOT_NODE = { width: 170, height: 48 };
/** The most image nodes drawn (a huge library shows only images that have relations). */
const MAX_NODES = 400;

export const imageNodeId = (path: string) => `img:${path}`;
export const snapshotNodeId = (path: string, id: string) => `snap:${path}#${id}`;

export interface Selection {
  path?: string;
  snapshotId?: string;
}

/** `here`: add a "You are here" node (the active state) beside each image's snapshots. */
export function buildGraph(entries: LibraryEntry[], sel: Selection, opts: { here?: boolean } = {}): { nodes: GraphNode[]; edges: GraphEdge[] } {
  const byPath = new Map(entries.map((e) => [e.path, e]));
  const overlaysOf = new Map<string, string[]>();
  for (const e of entries) {
    if (!e.fullBackingFile) continue;
    const list = overlaysOf.get(e.fullBackingFile) ?? [];
    list.push(e.path);
    overlaysOf.set(e.fullBackingFile, list);
  }
  // Images worth drawing: in a backing relation, with snapshots, or selected.
  const shown = entries.filter((e) => e.fullBackingFile || overlaysOf.has(e.path) || e.snapshots.length > 0 || e.path === sel.path).slice(0, MAX_NODES);
  const nodes: GraphNode[] = [];
  const edges: GraphEdge[] = [];
  const have = new Set<string>();
  const addImage = (path: string) => {
    const id = imageNodeId(path);
    if (have.has(id)) return;
    have.add(id);
    const entry = byPath.get(path);
    nodes.push({ id, position: { x: 0, y: 0 }, data: { kind: 'image', path, label: entry?.name ?? basename(path), selected: sel.path === path && !sel.snapshotId, ...(entry ? { entry } : {}) } });
  };
  for (const e of shown) {
    addImage(e.path);
    if (e.fullBackingFile) {
      addImage(e.fullBackingFile);
      edges.push({ id: `b:${e.fullBackingFile}->${e.path}`, source: imageNodeId(e.fullBackingFile), target: imageNodeId(e.path), kind: 'backing' });
    }
    for (const s of e.snapshots) {
      const id = snapshotNodeId(e.path, s.id);
      nodes.push({ id, position: { x: 0, y: 0 }, data: { kind: 'snapshot', path: e.path, snapshot: s, imageName: e.name, label: s.name || `#${s.id}`, selected: sel.path === e.path && sel.snapshotId === s.id } });
      edges.push({ id: `s:${e.path}#${s.id}`, source: imageNodeId(e.path), target: id, kind: 'snapshot' });
    }
    // "You are here": the image's active state, beside the saved states (issue #16 item 8).
    if (opts.here && e.snapshots.length) {
      nodes.push({ id: `here:${e.path}`, position: { x: 0, y: 0 }, data: { kind: 'here', path: e.path, imageName: e.name, label: 'You are here', selected: false } });
      edges.push({ id: `h:${e.path}`, source: imageNodeId(e.path), target: `here:${e.path}`, kind: 'here' });
    }
  }
  layout(nodes, edges);
  return { nodes, edges };
}

function layout(nodes: GraphNode[], edges: GraphEdge[]): void {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'TB', nodesep: 36, ranksep: 56, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) g.setNode(n.id, n.data.kind === 'image' ? { ...IMAGE_NODE } : { ...SNAPSHOT_NODE });
  for (const e of edges) g.setEdge(e.source, e.target);
  dagre.layout(g);
  for (const n of nodes) {
    const p = g.node(n.id);
    const size = n.data.kind === 'image' ? IMAGE_NODE : SNAPSHOT_NODE;
    n.position = { x: p.x - size.width / 2, y: p.y - size.height / 2 };
  }
}

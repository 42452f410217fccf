// The allocation map's model (issue #16 item 3): from qemu-img map's entries (each with the depth
// of the backing-chain layer that answers for it) and the chain's layers, how many bytes each
// layer holds, and what a picture of the virtual disk shows in each of its cells. Pure data, so
// the renderer draws it and the tests check it against `qemu-img map --output=json`.

/** What the model needs of a map entry (qapi MapEntry). */
export interface MapEntryLike {
  start: number;
  length: number;
  depth: number;
  present: boolean;
  zero: boolean;
  data: boolean;
  compressed?: boolean;
}

/** What the model needs of a layer (qemu-img info --backing-chain, one per depth). */
export interface LayerLike {
  filename: string;
  format: string;
  'virtual-size': number;
  encrypted?: boolean;
}

/** A kind of range in the picture: data in a layer (plain, compressed, encrypted), zeros a layer
 *  records, or unallocated everywhere (reads as zeros). */
export type RangeKind = { kind: 'data'; depth: number; compressed: boolean; encrypted: boolean } | { kind: 'zero'; depth: number } | { kind: 'hole' };

export interface LayerSummary {
  depth: number;
  filename: string;
  format: string;
  virtualSize: number;
  encrypted: boolean;
  /** Bytes whose data this layer holds (map entries with data, at this depth): qemu-img map's
   *  `"data": true` lengths summed per depth. */
  dataBytes: number;
  /** Of dataBytes, the compressed ones. */
  compressedBytes: number;
  /** Bytes this layer records as zeros (present, zero, no data). */
  zeroBytes: number;
}

export interface AllocationSummary {
  total: number;
  layers: LayerSummary[];
  /** Bytes no layer allocates (they read as zeros). */
  holeBytes: number;
}

export function kindOf(e: MapEntryLike, layers: readonly LayerLike[]): RangeKind {
  if (!e.present) return { kind: 'hole' };
  if (e.data) return { kind: 'data', depth: e.depth, compressed: e.compressed === true, encrypted: layers[e.depth]?.encrypted === true };
  return { kind: 'zero', depth: e.depth };
}

/** A short key per kind ("d0", "z1", "c2", "e0", "hole") for colours and the legend. */
export function kindKey(k: RangeKind): string {
  if (k.kind === 'hole') return 'hole';
  if (k.kind === 'zero') return `z${k.depth}`;
  return `${k.compressed ? 'c' : k.encrypted ? 'e' : 'd'}${k.depth}`;
}

export function summarize(entries: readonly MapEntryLike[], layers: readonly LayerLike[]): AllocationSummary {
  const out: LayerSummary[] = layers.map((l, depth) => ({ depth, filename: l.filename, format: l.format, virtualSize: l['virtual-size'], encrypted: l.encrypted === true, dataBytes: 0, compressedBytes: 0, zeroBytes: 0 }));
  let holeBytes = 0;
  let total = 0;
  for (const e of entries) {
    total = Math.max(total, e.start + e.length);
    if (!e.present) {
      holeBytes += e.length;
      continue;
    }
    const l = out[e.depth];
    if (!l) continue;
    if (e.data) {
      l.dataBytes += e.length;
      if (e.compressed) l.compressedBytes += e.length;
    } else l.zeroBytes += e.length;
  }
  return { total, layers: out, holeBytes };
}

export interface Cell {
  start: number;
  end: number;
  /** The kind covering most of the cell. */
  key: string;
  /** Bytes per kind key in the cell. */
  parts: Record<string, number>;
}

/** Cut [viewStart, viewEnd) into `count` cells (at least one byte each) and say what each shows. */
export function cells(entries: readonly MapEntryLike[], layers: readonly LayerLike[], viewStart: number, viewEnd: number, count: number): Cell[] {
  const span = Math.max(0, viewEnd - viewStart);
  const n = Math.max(1, Math.min(count, span));
  const out: Cell[] = [];
  for (let i = 0; i < n; i++) {
    const start = viewStart + Math.floor((span * i) / n);
    const end = viewStart + Math.floor((span * (i + 1)) / n);
    out.push({ start, end, key: 'hole', parts: {} });
  }
  if (span === 0) return out;
  for (const e of entries) {
    const eEnd = e.start + e.length;
    if (eEnd <= viewStart || e.start >= viewEnd) continue;
    const key = kindKey(kindOf(e, layers));
    const a0 = Math.max(viewStart, e.start);
    let i = Math.min(n - 1, Math.floor(((a0 - viewStart) * n) / span));
    while (i > 0 && out[i]!.start > a0) i--;
    while (i < n - 1 && out[i]!.end <= a0) i++;
    for (; i < n && out[i]!.start < eEnd; i++) {
      const cell = out[i]!;
      const a = Math.max(cell.start, e.start);
      const b = Math.min(cell.end, eEnd);
      if (b > a) cell.parts[key] = (cell.parts[key] ?? 0) + (b - a);
    }
  }
  for (const cell of out) {
    let best = 'hole';
    let most = -1;
    for (const [k, v] of Object.entries(cell.parts)) if (v > most) [best, most] = [k, v];
    cell.key = best;
  }
  return out;
}

/** A window `factor` times smaller around `center`, inside [0, total). */
export function zoomWindow(total: number, view: { start: number; end: number }, center: number, factor: number): { start: number; end: number } {
  const span = Math.max(1, Math.round((view.end - view.start) / factor));
  let start = Math.max(0, Math.round(center - span / 2));
  if (start + span > total) start = Math.max(0, total - span);
  return { start, end: Math.min(total, start + span) };
}

// The allocation map (issue #16 item 3): the selected image's virtual disk drawn block by block,
// coloured by the backing-chain layer that holds each range (qemu-img map's depth), with zeros a
// layer records, unallocated ranges, compressed and encrypted data marked; a legend names each
// layer with its bytes. Click a block to zoom in on it; the buttons zoom out or show it all.

import { useEffect, useMemo, useRef, useState } from 'react';
import { api } from '../../api-client.ts';
import { cells, kindOf, kindKey, zoomWindow, type Cell } from '../../../core/shared/allocation-map.ts';
import { basename, formatBytes } from '../../util/format.ts';
import { Dialog } from '../Dialog.tsx';
import { FormError } from '../FormDialog.tsx';

type MapData = Awaited<ReturnType<typeof api.allocationMap>>;

const COLS = 64;
const ROWS = 16;
const CELL = 9;
const GAP = 1;
const LAYER_COLOURS = ['#2f6fde', '#e8912d', '#3aa35b', '#9b59b6', '#c0392b', '#16a085', '#7f8c8d'];
const colourOf = (depth: number) => LAYER_COLOURS[depth % LAYER_COLOURS.length]!;

function fillFor(key: string): { fill: string; mark?: 'compressed' | 'encrypted' | 'zero' } {
  if (key === 'hole') return { fill: '#f2f4f7' };
  const depth = Number(key.slice(1));
  if (key[0] === 'z') return { fill: '#ffffff', mark: 'zero' };
  if (key[0] === 'c') return { fill: colourOf(depth), mark: 'compressed' };
  if (key[0] === 'e') return { fill: colourOf(depth), mark: 'encrypted' };
  return { fill: colourOf(depth) };
}

function draw(canvas: HTMLCanvasElement, list: Cell[]) {
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  list.forEach((c, i) => {
    const x = (i % COLS) * (CELL + GAP);
    const y = Math.floor(i / COLS) * (CELL + GAP);
    const { fill, mark } = fillFor(c.key);
    ctx.fillStyle = fill;
    ctx.fillRect(x, y, CELL, CELL);
    if (mark === 'zero') {
      ctx.strokeStyle = colourOf(Number(c.key.slice(1)));
      ctx.strokeRect(x + 0.5, y + 0.5, CELL - 1, CELL - 1);
    } else if (mark === 'compressed') {
      ctx.strokeStyle = '#ffffff';
      ctx.beginPath();
      ctx.moveTo(x, y + CELL);
      ctx.lineTo(x + CELL, y);
      ctx.stroke();
    } else if (mark === 'encrypted') {
      ctx.fillStyle = '#101828';
      ctx.fillRect(x + 3, y + 3, CELL - 6, CELL - 6);
    }
  });
}

export function AllocationMapDialog({ image, format, onClose }: { image: string; format?: string; onClose(): void }) {
  const [data, setData] = useState<MapData>();
  const [error, setError] = useState<string>();
  const [view, setView] = useState<{ start: number; end: number }>();
  const canvas = useRef<HTMLCanvasElement>(null);

  useEffect(() => {
    api
      .allocationMap({ image: { filename: image, ...(format ? { format } : {}), forceShare: true } })
      .then((d) => {
        setData(d);
        setView({ start: 0, end: d.summary.total || d.layers[0]?.['virtual-size'] || 0 });
      })
      .catch((e: Error) => setError(e.message));
  }, [image, format]);

  const total = data ? data.summary.total || data.layers[0]?.['virtual-size'] || 0 : 0;
  const list = useMemo(() => (data && view ? cells(data.entries, data.layers, view.start, view.end, COLS * ROWS) : []), [data, view]);
  useEffect(() => {
    if (canvas.current) draw(canvas.current, list);
  }, [list]);

  const perCell = view && list.length ? (view.end - view.start) / list.length : 0;
  const zoomed = view && (view.start > 0 || view.end < total);
  const kinds = data ? new Set(data.entries.map((e) => kindKey(kindOf(e, data.layers)))) : new Set<string>();
  const onClick = (e: React.MouseEvent<HTMLCanvasElement>) => {
    if (!view || !list.length) return;
    const r = e.currentTarget.getBoundingClientRect();
    const scale = r.width > 0 ? e.currentTarget.width / r.width : 1;
    const col = Math.floor(((e.clientX - r.left) * scale) / (CELL + GAP));
    const row = Math.floor(((e.clientY - r.top) * scale) / (CELL + GAP));
    const c = list[row * COLS + col];
    if (c) setView(zoomWindow(total, view, (c.start + c.end) / 2, 8));
  };

  return (
    <Dialog title={`Allocation map of ${basename(image)}`} wide onClose={onClose}>
      <FormError error={error} className="form-error" />
      {!data && !error && <p className="muted">Reading the map…</p>}
      {data && view && (
        <div className="alloc-map">
          <div className="alloc-toolbar">
            <span className="small">
              Showing {formatBytes(view.start)} – {formatBytes(view.end)} of {formatBytes(total)}; each block {formatBytes(Math.max(1, Math.round(perCell)))}.
            </span>
            <button type="button" className="small-button" disabled={!zoomed} onClick={() => setView(zoomWindow(total, view, (view.start + view.end) / 2, 1 / 8))}>
              Zoom out
            </button>
            <button type="button" className="small-button" disabled={!zoomed} onClick={() => setView({ start: 0, end: total })}>
              Whole disk
            </button>
          </div>
          <canvas
            ref={canvas}
            width={COLS * (CELL + GAP)}
            height={Math.ceil(list.length / COLS) * (CELL + GAP)}
            role="img"
            aria-label={`Allocation map of ${basename(image)}: ${data.summary.layers.map((l) => `${basename(l.filename)} holds ${formatBytes(l.dataBytes)}`).join(', ')}; ${formatBytes(data.summary.holeBytes)} unallocated`}
            onClick={onClick}
            title="Click a block to zoom in"
          />
          <ul className="alloc-legend" aria-label="Legend">
            {data.summary.layers.map((l) => (
              <li key={l.depth} data-depth={l.depth}>
                <span className="swatch" style={{ background: colourOf(l.depth) }} />
                <span className="mono">{basename(l.filename)}</span> <span className="muted">({l.format}, depth {l.depth}{l.encrypted ? ', encrypted' : ''})</span>:{' '}
                <span className="num layer-data" data-bytes={l.dataBytes}>
                  {formatBytes(l.dataBytes)} data ({l.dataBytes.toLocaleString('en-US')} bytes)
                </span>
                {l.compressedBytes > 0 && <span className="muted">, {formatBytes(l.compressedBytes)} compressed</span>}
                {l.zeroBytes > 0 && (
                  <span className="muted layer-zero" data-bytes={l.zeroBytes}>
                    , {formatBytes(l.zeroBytes)} recorded as zeros
                  </span>
                )}
              </li>
            ))}
            <li data-depth="hole">
              <span className="swatch" style={{ background: '#f2f4f7' }} />
              Unallocated (reads as zeros):{' '}
              <span className="num" data-bytes={data.summary.holeBytes}>
                {formatBytes(data.summary.holeBytes)} ({data.summary.holeBytes.toLocaleString('en-US')} bytes)
              </span>
            </li>
            {[...kinds].some((k) => k[0] === 'c') && <li className="muted">A white stroke marks compressed data.</li>}
            {[...kinds].some((k) => k[0] === 'e') && <li className="muted">A dark square marks encrypted data.</li>}
            {[...kinds].some((k) => k[0] === 'z') && <li className="muted">An outlined block is recorded as zeros by the layer of its colour.</li>}
          </ul>
        </div>
      )}
    </Dialog>
  );
}

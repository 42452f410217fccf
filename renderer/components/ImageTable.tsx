// The image table (VirtualBox's Virtual Media Manager list): one row per library image with name,
// format, virtual size, disk size, encryption, backing file, snapshots, lock state and modified
// time; sortable headers, a text filter, and row virtualization (only visible rows are in the DOM,
// so thousands of rows scroll smoothly). Arrow keys move the selection.

import { memo, useMemo, useRef, type KeyboardEvent } from 'react';
import {
  columnFilteringFeature,
  createColumnHelper,
  createFilteredRowModel,
  createSortedRowModel,
  FlexRender,
  filterFn_includesString,
  globalFilteringFeature,
  rowSortingFeature,
  sortFn_alphanumeric,
  sortFn_basic,
  tableFeatures,
  useTable,
} from '@tanstack/react-table';
import { useVirtualizer } from '@tanstack/react-virtual';
import type { Row } from '@tanstack/react-table';
import type { LibraryEntry } from '../../core/api/library.ts';
import { useLibrary } from '../stores/library.ts';
import { basename, formatBytes, formatDate } from '../util/format.ts';
import { LockBadge } from './safety/LockInspector.tsx';

const features = tableFeatures({
  columnFilteringFeature,
  globalFilteringFeature,
  rowSortingFeature,
  filteredRowModel: createFilteredRowModel(),
  sortedRowModel: createSortedRowModel(),
  filterFns: { includesString: filterFn_includesString },
  sortFns: { alphanumeric: sortFn_alphanumeric, basic: sortFn_basic },
});

const helper = createColumnHelper<typeof features, LibraryEntry>();

/** Height of one row in px (fixed: the virtualizer needs no measuring). */
const ROW_HEIGHT = 34;
/** Rows rendered beyond the visible ones on each side. */
const OVERSCAN = 12;

const columns = helper.columns([
  helper.accessor('name', {
    header: 'Name',
    sortFn: 'alphanumeric',
    cell: (c) => (
      <span className="cell-name" title={c.row.original.path}>
        <span className={`disk-icon fmt-${c.row.original.format ?? 'unknown'}`} aria-hidden="true" />
        {c.getValue()}
      </span>
    ),
  }),
  helper.accessor((r) => r.format ?? (r.error ? 'unreadable' : ''), { id: 'format', header: 'Format', sortFn: 'alphanumeric', cell: (c) => (c.row.original.error ? <span className="badge bad" title={c.row.original.error.message}>unreadable</span> : <span className="badge">{c.getValue()}</span>) }),
  helper.accessor((r) => r.virtualSize ?? -1, { id: 'virtualSize', header: 'Virtual size', sortFn: 'basic', enableGlobalFilter: false, cell: (c) => <span className="num">{formatBytes(c.row.original.virtualSize)}</span> }),
  helper.accessor((r) => r.actualSize ?? -1, { id: 'actualSize', header: 'Disk size', sortFn: 'basic', enableGlobalFilter: false, cell: (c) => <span className="num">{formatBytes(c.row.original.actualSize)}</span> }),
  helper.accessor((r) => (r.encrypted ? 'encrypted' : ''), { id: 'encrypted', header: 'Encrypted', sortFn: 'alphanumeric', cell: (c) => (c.row.original.encrypted ? <span className="badge lock">yes</span> : <span className="muted">no</span>) }),
  helper.accessor((r) => r.backingFile ?? '', { id: 'backing', header: 'Backing file', sortFn: 'alphanumeric', cell: (c) => (c.getValue() ? <span title={c.row.original.fullBackingFile}>{basename(c.getValue())}</span> : <span className="muted">—</span>) }),
  helper.accessor((r) => r.snapshots.length, { id: 'snapshots', header: 'Snapshots', sortFn: 'basic', enableGlobalFilter: false, cell: (c) => <span className="num">{c.getValue() || <span className="muted">0</span>}</span> }),
  helper.accessor('lock', { header: 'Lock', sortFn: 'alphanumeric', cell: (c) => <LockBadge path={c.row.original.path} lock={c.getValue()} /> }),
  helper.accessor('modified', { header: 'Modified', sortFn: 'basic', enableGlobalFilter: false, cell: (c) => <span className="num">{formatDate(c.getValue())}</span> }),
]);

const getRowId = (r: LibraryEntry) => r.path;

interface RowProps {
  row: Row<typeof features, LibraryEntry>;
  index: number;
  selected: boolean;
  focusable: boolean;
  onSelect(id: string): void;
}

/** One table row; memoized, so scrolling renders only the rows that come into view. */
const ImageRow = memo(function ImageRow({ row, index, selected, focusable, onSelect }: RowProps) {
  return (
    <tr
      aria-rowindex={index + 2}
      aria-selected={selected}
      className={`${selected ? 'selected' : ''}${row.original.error ? ' has-error' : ''}`}
      tabIndex={focusable ? 0 : -1}
      onClick={() => onSelect(row.id)}
      onFocus={() => onSelect(row.id)}
      style={{ height: ROW_HEIGHT }}
    >
      {row.getAllCells().map((cell) => (
        <td key={cell.id} className={`col-${cell.column.id}`}>
          <FlexRender cell={cell} />
        </td>
      ))}
    </tr>
  );
});

export function ImageTable() {
  const entries = useLibrary((s) => s.entries);
  const filter = useLibrary((s) => s.filter);
  const selected = useLibrary((s) => s.selected);
  const select = useLibrary((s) => s.select);
  const scrollRef = useRef<HTMLDivElement>(null);
  const table = useTable({
    features,
    columns,
    data: entries,
    getRowId,
    state: { globalFilter: filter },
    globalFilterFn: 'includesString',
  });
  const rows = table.getRowModel().rows;
  const virtualizer = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: OVERSCAN,
    getItemKey: (i) => rows[i]!.id,
  });
  const items = virtualizer.getVirtualItems();
  const top = items.length ? items[0]!.start : 0;
  const bottom = items.length ? virtualizer.getTotalSize() - items[items.length - 1]!.end : 0;
  const selectedIndex = useMemo(() => rows.findIndex((r) => r.id === selected), [rows, selected]);

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    e.preventDefault();
    const next = Math.min(rows.length - 1, Math.max(0, selectedIndex + (e.key === 'ArrowDown' ? 1 : -1)));
    const row = rows[next];
    if (row) {
      select(row.id);
      virtualizer.scrollToIndex(next);
    }
  };

  return (
    <div className="table-scroll" ref={scrollRef} tabIndex={-1}>
      <table className="image-table" aria-label="Disk images" aria-rowcount={rows.length + 1} onKeyDown={onKeyDown}>
        <thead>
          {table.getHeaderGroups().map((group) => (
            <tr key={group.id}>
              {group.headers.map((header) => {
                const sorted = header.column.getIsSorted();
                return (
                  <th key={header.id} className={`col-${header.column.id}`} aria-sort={sorted === 'asc' ? 'ascending' : sorted === 'desc' ? 'descending' : 'none'}>
                    <button type="button" className="sort-button" onClick={header.column.getToggleSortingHandler()}>
                      <table.FlexRender header={header} />
                      <span className="sort-mark" aria-hidden="true">
                        {sorted === 'asc' ? '▲' : sorted === 'desc' ? '▼' : ''}
                      </span>
                    </button>
                  </th>
                );
              })}
            </tr>
          ))}
        </thead>
        <tbody>
          {top > 0 && (
            <tr className="spacer" aria-hidden="true">
              <td colSpan={columns.length} style={{ height: top }} />
            </tr>
          )}
          {items.map((item) => {
            const row = rows[item.index]!;
            const isSel = row.id === selected;
            return <ImageRow key={row.id} row={row} index={item.index} selected={isSel} focusable={isSel || (selectedIndex < 0 && item.index === 0)} onSelect={select} />;
          })}
          {bottom > 0 && (
            <tr className="spacer" aria-hidden="true">
              <td colSpan={columns.length} style={{ height: bottom }} />
            </tr>
          )}
        </tbody>
      </table>
      {rows.length === 0 && <div className="empty-table">{entries.length ? 'No image matches the filter.' : 'No disk images yet. Add a folder or create a new image.'}</div>}
    </div>
  );
}

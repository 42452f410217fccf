// Human-readable text the way qemu-img 7.2 prints it (util/cutils.c size_to_str, block/qapi.c
// bdrv_snapshot_dump and the format-specific dump): sizes in binary units with 3 significant
// digits, the snapshot table's fixed columns, and nested QAPI objects as indented "key: value".

import type { SnapshotInfoJson } from '../api/types.ts';

// One size formatter for the CLI and the GUI (core/shared/sizes.ts).
export { sizeToStr, formatG3 } from '../shared/sizes.ts';
import { sizeToStr } from '../shared/sizes.ts';

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** Local time "YYYY-MM-DD HH:MM:SS" (g_date_time_format "%Y-%m-%d %H:%M:%S"). */
export function localDate(sec: number): string {
  const d = new Date(sec * 1000);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** "HH:MM:SS.mmm" of a guest clock in nanoseconds. */
export function vmClock(sec: number, nsec: number): string {
  const totalNs = sec * 1e9 + nsec;
  const secs = Math.floor(totalNs / 1e9);
  const ms = Math.floor(totalNs / 1e6) % 1000;
  return `${pad2(Math.floor(secs / 3600))}:${pad2(Math.floor(secs / 60) % 60)}:${pad2(secs % 60)}.${String(ms).padStart(3, '0')}`;
}

/** The snapshot table header (qemu: "%-10s%-17s%8s%20s%13s%11s"). */
export function snapshotHeader(): string {
  return 'ID'.padEnd(10) + 'TAG'.padEnd(17) + 'VM SIZE'.padStart(8) + 'DATE'.padStart(20) + 'VM CLOCK'.padStart(13) + 'ICOUNT'.padStart(11);
}

/** One snapshot row (qemu: "%-9s %-16s %8s%20s%13s%11s"). */
export function snapshotRow(s: SnapshotInfoJson): string {
  return (
    s.id.padEnd(9) +
    ' ' +
    s.name.padEnd(16) +
    ' ' +
    sizeToStr(s['vm-state-size']).padStart(8) +
    localDate(s['date-sec']).padStart(20) +
    vmClock(s['vm-clock-sec'], s['vm-clock-nsec']).padStart(13) +
    (s.icount === undefined ? '' : String(s.icount)).padStart(11)
  );
}

/** The "Snapshot list:" block (without a trailing newline). */
export function snapshotTable(list: readonly SnapshotInfoJson[]): string {
  return ['Snapshot list:', snapshotHeader(), ...list.map(snapshotRow)].join('\n');
}

/** A QAPI object dumped as qemu-img info does: "key: value", '-' in keys as ' ', nested indented. */
export function dumpObject(obj: Record<string, unknown>, indent: number): string[] {
  const lines: string[] = [];
  const pad = ' '.repeat(indent);
  for (const [k, v] of Object.entries(obj)) {
    const key = k.replace(/-/g, ' ');
    if (v === undefined) continue;
    if (Array.isArray(v)) {
      lines.push(`${pad}${key}:`);
      v.forEach((item, i) => {
        if (item !== null && typeof item === 'object') {
          lines.push(`${pad}    [${i}]:`);
          lines.push(...dumpObject(item as Record<string, unknown>, indent + 8));
        } else lines.push(`${pad}    [${i}]: ${scalar(item)}`);
      });
    } else if (v !== null && typeof v === 'object') {
      lines.push(`${pad}${key}:`);
      lines.push(...dumpObject(v as Record<string, unknown>, indent + 4));
    } else lines.push(`${pad}${key}: ${scalar(v)}`);
  }
  return lines;
}

function scalar(v: unknown): string {
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  return String(v);
}

// Words and numbers for people: byte sizes as qemu-img prints them (binary units, "1 GiB"),
// dates, durations, rates. Pure functions, shared by every view. Sizes are read and printed by
// core/shared/sizes.ts, the same code the CLI uses (qemu_strtosz, size_to_str).

import { parseSizeText, sizeToStr } from '../../core/shared/sizes.ts';

/** 1536 -> "1.5 KiB": qemu-img's size_to_str (the CLI's "disk size"), "—" when unknown. */
export function formatBytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '—';
  return sizeToStr(n);
}

export function formatDate(ms: number | undefined): string {
  if (!ms) return '—';
  const d = new Date(ms);
  const pad = (x: number) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Seconds -> "1 h 02 min", "3 min 05 s", "12 s". */
export function formatDuration(sec: number | undefined): string {
  if (sec === undefined || !Number.isFinite(sec) || sec < 0) return '—';
  const s = Math.round(sec);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

export function formatRate(bytesPerSec: number | undefined): string {
  if (bytesPerSec === undefined || !Number.isFinite(bytesPerSec) || bytesPerSec <= 0) return '—';
  return `${formatBytes(Math.round(bytesPerSec))}/s`;
}

/** VM clock as qemu-img snapshot -l prints it: HH:MM:SS.mmm */
export function formatVmClock(sec: number, nsec: number): string {
  const pad = (x: number, n = 2) => String(x).padStart(n, '0');
  return `${pad(Math.floor(sec / 3600))}:${pad(Math.floor(sec / 60) % 60)}:${pad(sec % 60)}.${pad(Math.floor(nsec / 1e6), 3)}`;
}

/** The size field's units, with the qemu_strtosz suffix each stands for. */
export const SIZE_UNITS: { label: string; factor: number; suffix: string }[] = [
  { label: 'B', factor: 1, suffix: '' },
  { label: 'KiB', factor: 1024, suffix: 'K' },
  { label: 'MiB', factor: 1024 ** 2, suffix: 'M' },
  { label: 'GiB', factor: 1024 ** 3, suffix: 'G' },
  { label: 'TiB', factor: 1024 ** 4, suffix: 'T' },
];

/** A size as qemu-img reads it (qemu_strtosz: "10G", "512M", "1.5T", "4096"; not "10 GiB"). */
export const parseSize = parseSizeText;

export function basename(p: string): string {
  const i = Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\'));
  return i >= 0 ? p.slice(i + 1) : p;
}

export function dirname(p: string): string {
  const i = Math.max(p.lastIndexOf('/'), p.lastIndexOf('\\'));
  return i > 0 ? p.slice(0, i) : i === 0 ? p.slice(0, 1) : '.';
}

export function joinPath(dir: string, name: string): string {
  const sep = dir.includes('\\') && !dir.includes('/') ? '\\' : '/';
  return dir.endsWith(sep) ? dir + name : `${dir}${sep}${name}`;
}

/** "disk.vmdk" + "qcow2" -> "disk.qcow2" */
export function replaceExtension(p: string, ext: string): string {
  const base = basename(p);
  const dot = base.lastIndexOf('.');
  const stem = dot > 0 ? base.slice(0, dot) : base;
  return joinPath(dirname(p), `${stem}.${ext}`);
}

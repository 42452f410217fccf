// Words and numbers for people: byte sizes as qemu-img prints them (binary units, "1 GiB"),
// dates, durations, rates. Pure functions, shared by every view.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/** 1536 -> "1.5 KiB", as qemu-img's size_to_str rounds (three significant digits). */
export function formatBytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '—';
  let i = 0;
  let v = n;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${n} B`;
  const text = v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return `${text.replace(/\.?0+$/, '')} ${UNITS[i]}`;
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

export const SIZE_UNITS: { label: string; factor: number }[] = [
  { label: 'B', factor: 1 },
  { label: 'KiB', factor: 1024 },
  { label: 'MiB', factor: 1024 ** 2 },
  { label: 'GiB', factor: 1024 ** 3 },
  { label: 'TiB', factor: 1024 ** 4 },
];

/** qemu_strtosz's grammar for the GUI's size fields: "10G", "512M", "1.5T", "4096". */
export function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+)(?:\.(\d+))?\s*([bkmgtpe])?(?:i?b)?\s*$/i.exec(text);
  if (!m) return undefined;
  const mult = { '': 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50, e: 2 ** 60 }[(m[3] ?? '').toLowerCase()];
  if (mult === undefined) return undefined;
  const value = Number(`${m[1]}.${m[2] ?? '0'}`) * mult;
  if (!Number.isSafeInteger(Math.round(value))) return undefined;
  if (m[2] && mult === 1) return undefined;
  return Math.round(value);
}

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

// The lock inspector (#16 item 2): who holds an image's QEMU lock bytes and with which
// permissions. QEMU (and Platter, core/protocols/file/lock.ts) take a shared lock on byte
// LOCK_PERM_BASE + bit for each permission a user HOLDS and on LOCK_SHARED_BASE + bit for each
// permission it does NOT SHARE with others. On Linux these are open-file-description locks:
// /proc/locks lists them ("N: OFDLCK ADVISORY  READ -1 MAJ:MIN:INODE START END", pid -1 since an
// OFD lock belongs to no process), and /proc/PID/fdinfo/FD repeats them under "lock:" for the
// process that owns the open file, which names the holder; /proc/PID/cmdline says what it is.
// POSIX locks (QEMU's fallback) name their pid in /proc/locks directly. Elsewhere: "unknown".

import { readdir, readFile, stat } from 'node:fs/promises';
import { z } from 'zod';
import { LOCK_PERM_BASE, LOCK_PERM_BITS, LOCK_SHARED_BASE } from '../../protocols/file/lock.ts';
import { permName } from '../../block/permissions.ts';

export const lockInspectInput = z.object({ path: z.string().min(1) });

export interface LockHolder {
  /** The process, when it could be found (another user's processes cannot be read). */
  pid?: number;
  /** Its command line, arguments joined with spaces. */
  command?: string;
  /** Permissions it holds (QEMU's names: "consistent read", "write", "write unchanged", "resize"). */
  holds: string[];
  /** Permissions it does not share: nobody else may take them while it runs. */
  blocks: string[];
  /** 'ofd' (open-file-description lock, QEMU's default on Linux) or 'posix'. */
  kind: 'ofd' | 'posix';
}

export interface LockReport {
  path: string;
  /** false where the system cannot be inspected (not Linux, or no /proc). */
  supported: boolean;
  holders: LockHolder[];
  /** One sentence for a tooltip. */
  summary: string;
}

/** One lock line of /proc/locks or of a fdinfo file. */
interface LockLine {
  kind: 'ofd' | 'posix';
  pid: number;
  major: number;
  minor: number;
  inode: number;
  start: number;
  end: number;
}

const LOCK_RE = /(OFDLCK|POSIX)\s+ADVISORY\s+(?:READ|WRITE)\s+(-?\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s+(\d+)\s+(\d+|EOF)/i;

export function parseLockLine(line: string): LockLine | undefined {
  const m = LOCK_RE.exec(line);
  if (!m) return undefined;
  return {
    kind: m[1]!.toUpperCase() === 'OFDLCK' ? 'ofd' : 'posix',
    pid: Number(m[2]),
    major: parseInt(m[3]!, 16),
    minor: parseInt(m[4]!, 16),
    inode: Number(m[5]),
    start: Number(m[6]),
    end: m[7] === 'EOF' ? Number.MAX_SAFE_INTEGER : Number(m[7]),
  };
}

/** The bytes a set of lock lines covers, decoded: held and unshared permission names. */
export function decodeLockBytes(lines: readonly { start: number; end: number }[]): { holds: string[]; blocks: string[] } {
  const has = (b: number) => lines.some((l) => l.start <= b && b <= l.end);
  const holds: string[] = [];
  const blocks: string[] = [];
  for (let i = 0; i < LOCK_PERM_BITS; i++) {
    if (has(LOCK_PERM_BASE + i)) holds.push(permName(1 << i));
    if (has(LOCK_SHARED_BASE + i)) blocks.push(permName(1 << i));
  }
  return { holds, blocks };
}

/** Userspace dev_t (glibc's encoding, what stat gives) to major/minor. */
function devParts(dev: number): { major: number; minor: number } {
  return { major: Number((BigInt(dev) >> 8n) & 0xfffn), minor: Number((BigInt(dev) & 0xffn) | ((BigInt(dev) >> 12n) & 0xfff00n)) };
}

const isQemuByte = (l: LockLine) => (l.start <= LOCK_PERM_BASE + LOCK_PERM_BITS - 1 && l.end >= LOCK_PERM_BASE) || (l.start <= LOCK_SHARED_BASE + LOCK_PERM_BITS - 1 && l.end >= LOCK_SHARED_BASE);

async function commandOf(pid: number): Promise<string | undefined> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return raw.split('\0').filter(Boolean).join(' ') || undefined;
  } catch {
    return undefined;
  }
}

/** Who holds `path`'s lock bytes, and with which permissions. */
export async function inspectLocks(path: string, procRoot = '/proc'): Promise<LockReport> {
  if (process.platform !== 'linux') return { path, supported: false, holders: [], summary: 'Who holds the lock is unknown on this system (only Linux is inspected).' };
  let st;
  let table: string;
  try {
    st = await stat(path);
    table = await readFile(`${procRoot}/locks`, 'utf8');
  } catch (e) {
    return { path, supported: false, holders: [], summary: `Who holds the lock is unknown (${(e as Error).message}).` };
  }
  const { major, minor } = devParts(st.dev);
  const mine = (l: LockLine | undefined): l is LockLine => !!l && l.major === major && l.minor === minor && l.inode === st.ino && isQemuByte(l);
  const lines = table.split('\n').map(parseLockLine).filter(mine);
  const holders: LockHolder[] = [];
  // POSIX locks name their process.
  const posix = new Map<number, LockLine[]>();
  for (const l of lines.filter((x) => x.kind === 'posix')) posix.set(l.pid, [...(posix.get(l.pid) ?? []), l]);
  for (const [pid, ls] of posix) holders.push({ pid, ...(await commandOf(pid).then((c) => (c ? { command: c } : {}))), ...decodeLockBytes(ls), kind: 'posix' });
  // OFD locks: find the open files that hold them (fdinfo "lock:" lines).
  const ofd = lines.filter((x) => x.kind === 'ofd');
  if (ofd.length) {
    const found: LockLine[] = [];
    let pids: string[] = [];
    try {
      pids = (await readdir(procRoot)).filter((d) => /^\d+$/.test(d));
    } catch {
      /* no /proc listing */
    }
    for (const pid of pids) {
      let fds: string[];
      try {
        fds = await readdir(`${procRoot}/${pid}/fdinfo`);
      } catch {
        continue; // gone, or another user's
      }
      const own: LockLine[] = [];
      for (const fd of fds) {
        let text: string;
        try {
          text = await readFile(`${procRoot}/${pid}/fdinfo/${fd}`, 'utf8');
        } catch {
          continue;
        }
        if (!text.includes('lock:')) continue;
        for (const row of text.split('\n')) if (row.startsWith('lock:')) {
          const l = parseLockLine(row);
          if (mine(l) && l.kind === 'ofd') own.push(l);
        }
      }
      if (own.length) {
        found.push(...own);
        const n = Number(pid);
        const command = await commandOf(n);
        holders.push({ pid: n, ...(command ? { command } : {}), ...decodeLockBytes(own), kind: 'ofd' });
      }
    }
    // Lock bytes no readable process owns: another user's process.
    // (Only those still there after the scan: a lock taken and dropped meanwhile, e.g. by a
    // short read elsewhere, was nobody's hold.)
    const again = (await readFile(`${procRoot}/locks`, 'utf8').catch(() => '')).split('\n').map(parseLockLine).filter(mine);
    const same = (a: LockLine, b: LockLine) => a.start === b.start && a.end === b.end;
    const unowned = ofd.filter((l) => !found.some((f) => same(f, l)) && again.some((g) => g.kind === 'ofd' && same(g, l)));
    if (unowned.length) holders.push({ ...decodeLockBytes(unowned), kind: 'ofd' });
  }
  const summary = holders.length
    ? holders
        .map((h) => `${h.pid !== undefined ? `${basenameOf(h.command) ?? 'process'} (pid ${h.pid})` : 'a process of another user'} holds ${h.holds.join(', ') || 'no permission'}${h.blocks.length ? ` and does not share ${h.blocks.join(', ')}` : ''}`)
        .join('; ')
    : 'No QEMU lock bytes are held on this file.';
  return { path, supported: true, holders, summary };
}

function basenameOf(command: string | undefined): string | undefined {
  const exe = command?.split(' ')[0];
  return exe ? exe.slice(exe.lastIndexOf('/') + 1) : undefined;
}

// Host device names on Windows and macOS (qemu-block-drivers(7) "Using host drives"; QEMU's
// block/file-win32.c hdev_open and block/file-posix.c hdev_open for macOS). Pure parsing, so the
// rules are unit-tested on any OS.

/** A Windows name as QEMU's host_device reads it. */
export type WindowsDevice =
  | { kind: 'physical-drive'; index: number; path: string }
  | { kind: 'volume'; letter: string; path: string }
  | { kind: 'cdrom-alias' }
  | { kind: 'other'; path: string };

/**
 * "d:" becomes "\\.\d:" (hdev_open's drive-letter rule); "\\.\PhysicalDriveN" (any case, as
 * QEMU's stristart) is a whole disk; "\\.\d:" a volume; "//./x" is the same as "\\.\x";
 * "/dev/cdrom" stands for the first CD-ROM drive (find_cdrom). Undefined for other names.
 */
export function parseWindowsDevice(name: string): WindowsDevice | undefined {
  if (name.startsWith('/dev/cdrom')) return { kind: 'cdrom-alias' };
  if (/^[A-Za-z]:$/.test(name)) return { kind: 'volume', letter: name[0]!.toUpperCase(), path: `\\\\.\\${name}` };
  let rest: string;
  if (name.startsWith('\\\\.\\')) rest = name.slice(4);
  else if (name.startsWith('//./')) rest = name.slice(4);
  else return undefined;
  const path = `\\\\.\\${rest}`;
  const pd = /^physicaldrive(\d+)$/i.exec(rest);
  if (pd) return { kind: 'physical-drive', index: Number(pd[1]), path };
  if (/^[A-Za-z]:$/.test(rest)) return { kind: 'volume', letter: rest[0]!.toUpperCase(), path };
  return { kind: 'other', path };
}

/** A macOS disk node: /dev/diskN[sM] (buffered) or /dev/rdiskN[sM] (raw, unbuffered: faster for
 *  whole-disk copies, the name to image a stick with). */
export interface DarwinDisk {
  disk: number;
  slice: number | undefined;
  raw: boolean;
  /** The buffered and raw names of the same disk. */
  blockPath: string;
  rawPath: string;
}

export function parseDarwinDisk(name: string): DarwinDisk | undefined {
  const m = /^\/dev\/(r?)disk(\d+)(?:s(\d+))?$/.exec(name);
  if (!m) return undefined;
  const tail = `disk${m[2]}${m[3] !== undefined ? `s${m[3]}` : ''}`;
  return { disk: Number(m[2]), slice: m[3] !== undefined ? Number(m[3]) : undefined, raw: m[1] === 'r', blockPath: `/dev/${tail}`, rawPath: `/dev/r${tail}` };
}

// The host's drives for the Drives view (Linux: lsblk(8) --json, util-linux >= 2.37 for
// MOUNTPOINTS, plus the loop driver's sysfs backing_file). Whole disks, loop devices and optical
// drives, each with its mounted filesystems (its partitions' included) and whether it holds the
// running system (/, /boot, /boot/efi, /usr or swap on it or on one of its partitions).
// macOS (diskutil) and Windows (Get-Disk): drives-darwin-win32.ts; other OSes answer [].

import { readFileSync } from 'node:fs';
import { listDarwinDrives, listWindowsDrives } from './drives-darwin-win32.ts';
import { nodeChildProcess } from './lazy-node-modules.ts';

export interface HostDrive {
  /** /dev/sdb, /dev/loop3, /dev/sr0 */
  path: string;
  name: string;
  type: 'disk' | 'loop' | 'rom';
  size: number;
  /** The vendor's model name; for a loop device "Loop device (<backing file>)". */
  model: string;
  removable: boolean;
  readOnly: boolean;
  /** Filesystems mounted from it or its partitions (swap shows as "[SWAP]"). */
  mountpoints: string[];
  /** It holds the running system: never written, whatever the user confirms. */
  system: boolean;
}

/** Mount points that make a disk the system disk. */
const SYSTEM_MOUNTS = new Set(['/', '/boot', '/boot/efi', '/usr', '/var', '[SWAP]']);
const TYPES = new Set(['disk', 'loop', 'rom']);

interface LsblkDevice {
  name?: unknown;
  path?: unknown;
  type?: unknown;
  size?: unknown;
  model?: unknown;
  vendor?: unknown;
  rm?: unknown;
  ro?: unknown;
  mountpoints?: unknown;
  mountpoint?: unknown;
  children?: unknown;
}

function mountsOf(d: LsblkDevice): string[] {
  const list = Array.isArray(d.mountpoints) ? d.mountpoints : [d.mountpoint];
  const own = list.filter((m): m is string => typeof m === 'string' && m !== '');
  const kids = Array.isArray(d.children) ? (d.children as LsblkDevice[]).flatMap(mountsOf) : [];
  return [...new Set([...own, ...kids])];
}

const flag = (v: unknown) => v === true || v === '1' || v === 1;

/** lsblk --json --bytes output to drives (whole devices only; zero-sized ones left out). */
export function parseLsblk(json: string, backingFile: (name: string) => string | undefined = loopBackingFile): HostDrive[] {
  let doc: { blockdevices?: unknown };
  try {
    doc = JSON.parse(json) as { blockdevices?: unknown };
  } catch {
    return [];
  }
  const out: HostDrive[] = [];
  for (const d of Array.isArray(doc.blockdevices) ? (doc.blockdevices as LsblkDevice[]) : []) {
    const type = typeof d.type === 'string' ? d.type : '';
    const name = typeof d.name === 'string' ? d.name : '';
    const size = typeof d.size === 'number' ? d.size : Number(d.size);
    if (!TYPES.has(type) || !name || !Number.isSafeInteger(size) || size <= 0) continue;
    const mountpoints = mountsOf(d);
    const vendorModel = [d.vendor, d.model].filter((s): s is string => typeof s === 'string' && s.trim() !== '' && !/^0x/.test(s.trim())).map((s) => s.trim()).join(' ');
    const back = type === 'loop' ? backingFile(name) : undefined;
    const model = vendorModel || (type === 'loop' ? `Loop device${back ? ` (${back})` : ''}` : type === 'rom' ? 'Optical drive' : 'Disk');
    out.push({
      path: typeof d.path === 'string' ? d.path : `/dev/${name}`,
      name,
      type: type as HostDrive['type'],
      size,
      model,
      removable: flag(d.rm),
      readOnly: flag(d.ro),
      mountpoints,
      system: mountpoints.some((m) => SYSTEM_MOUNTS.has(m)),
    });
  }
  return out;
}

function loopBackingFile(name: string): string | undefined {
  try {
    return readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The host's drives; [] where the OS's tool is missing or on other OSes. */
export function listHostDrives(): Promise<HostDrive[]> {
  if (process.platform === 'darwin') return listDarwinDrives();
  if (process.platform === 'win32') return listWindowsDrives();
  if (process.platform !== 'linux') return Promise.resolve([]);
  return new Promise((resolve) => {
    nodeChildProcess().execFile('lsblk', ['--json', '--bytes', '-o', 'NAME,PATH,TYPE,SIZE,MODEL,VENDOR,RM,RO,MOUNTPOINTS'], { timeout: 10_000, maxBuffer: 4 << 20 }, (err, stdout) => {
      resolve(err ? [] : parseLsblk(stdout));
    });
  });
}

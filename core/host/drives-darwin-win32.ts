// The Drives view's listing on macOS and Windows (core/host/drives.ts has Linux's), written from
// the tools' documented output and untested on those systems; the parsers are unit-tested on
// Linux with hand-written samples.
// - macOS: `diskutil list -plist` (WholeDisks, AllDisksAndPartitions with each disk's Partitions,
//   APFS containers with their APFSPhysicalStores and APFSVolumes, each with its MountPoint),
//   then `diskutil info -plist diskN` per whole disk (DeviceNode, MediaName, TotalSize/Size,
//   Removable/RemovableMedia/Ejectable, WritableMedia, OpticalDeviceType). A synthesized APFS
//   container is no drive of its own: its volumes' mount points count for the physical disk
//   holding its store, so the internal SSD that holds "/" (through disk3 -> disk0s2) is the
//   system disk.
// - Windows: one PowerShell run: Get-Disk (Number, FriendlyName, Size, BusType, IsBoot, IsSystem,
//   IsReadOnly), Get-Partition (DiskNumber, DriveLetter, IsBoot, IsSystem) and the
//   Win32_CDROMDrive class (Drive, Caption, Size), as JSON. A disk is \\.\PhysicalDriveN, an
//   optical drive \\.\D: (host_device opens both); drive letters are its mount points; the boot
//   or system disk, or the one holding %SystemDrive%, is the system disk.

import type { HostDrive } from './drives.ts';
import { isDict, parsePlist, type PlistValue } from './plist.ts';
import { nodeChildProcess } from './lazy-node-modules.ts';

type Dict = { [key: string]: PlistValue };
const str = (v: PlistValue | undefined): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const num = (v: PlistValue | undefined): number | undefined => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined);
const list = (v: PlistValue | undefined): PlistValue[] => (Array.isArray(v) ? v : []);

/** Mount points macOS uses for the running system (/ and its APFS companions, swap). */
const DARWIN_SYSTEM_MOUNTS = new Set(['/', '/System/Volumes/Data', '/System/Volumes/Preboot', '/System/Volumes/VM', '/System/Volumes/Update', '/private/var/vm']);

/** The whole disk a BSD name belongs to: disk0s2 -> disk0. */
const wholeOf = (id: string) => /^(disk\d+)/.exec(id)?.[1];

function safePlist(text: string): PlistValue | undefined {
  try {
    return parsePlist(text);
  } catch {
    return undefined;
  }
}

/**
 * `diskutil list -plist` and each whole disk's `diskutil info -plist` (by its identifier) to
 * drives. Synthesized APFS containers are folded into the disks that hold their stores.
 */
export function parseDiskutil(listXml: string, infoXml: (id: string) => string | undefined): HostDrive[] {
  const doc = safePlist(listXml);
  if (!isDict(doc)) return [];
  const entries = list(doc['AllDisksAndPartitions']).filter(isDict);
  // Mount points per whole disk, with APFS volumes credited to their stores' disks.
  const mounts = new Map<string, string[]>();
  const credit = (disk: string | undefined, mp: string | undefined) => {
    if (!disk || !mp) return;
    const l = mounts.get(disk) ?? [];
    if (!l.includes(mp)) l.push(mp);
    mounts.set(disk, l);
  };
  const containers = new Set<string>();
  for (const e of entries) {
    const id = str(e['DeviceIdentifier']);
    if (!id) continue;
    const stores = list(e['APFSPhysicalStores']).filter(isDict).map((s) => wholeOf(str(s['DeviceIdentifier']) ?? '')).filter((s): s is string => Boolean(s));
    const owners = stores.length ? stores : [id];
    if (stores.length) containers.add(id);
    for (const owner of owners) {
      credit(owner, str(e['MountPoint']));
      for (const p of [...list(e['Partitions']), ...list(e['APFSVolumes'])].filter(isDict)) {
        credit(owner, str(p['MountPoint']));
        // A sealed system volume is mounted through a snapshot (macOS 11 and later).
        for (const snap of list(p['MountedSnapshots']).filter(isDict)) credit(owner, str(snap['SnapshotMountPoint']));
      }
    }
  }
  const whole = list(doc['WholeDisks']).map((v) => str(v)).filter((s): s is string => Boolean(s));
  const out: HostDrive[] = [];
  for (const id of whole) {
    if (containers.has(id) || !/^disk\d+$/.test(id)) continue;
    const info = safePlist(infoXml(id) ?? '');
    if (!isDict(info)) continue;
    const size = num(info['TotalSize']) ?? num(info['Size']) ?? 0;
    if (size <= 0) continue;
    const optical = str(info['OpticalDeviceType']) !== undefined || str(info['OpticalMediaType']) !== undefined;
    const mountpoints = mounts.get(id) ?? [];
    out.push({
      path: str(info['DeviceNode']) ?? `/dev/${id}`,
      name: id,
      type: optical ? 'rom' : 'disk',
      size,
      model: (str(info['MediaName']) ?? str(info['IORegistryEntryName']) ?? (optical ? 'Optical drive' : 'Disk')).trim(),
      removable: info['Removable'] === true || info['RemovableMedia'] === true || info['Ejectable'] === true,
      readOnly: info['WritableMedia'] === false || info['Writable'] === false,
      mountpoints,
      system: mountpoints.some((m) => DARWIN_SYSTEM_MOUNTS.has(m)),
    });
  }
  return out;
}

/** The PowerShell script whose JSON parseWindowsDisks reads. Letters and bus types are made
 *  strings in the script (ConvertTo-Json writes a [char] as a number in Windows PowerShell). */
export const WINDOWS_DISKS_SCRIPT = [
  "$ErrorActionPreference = 'SilentlyContinue'",
  "$d = @(Get-Disk | Select-Object Number, FriendlyName, Size, @{n='BusType';e={[string]$_.BusType}}, IsBoot, IsSystem, IsReadOnly)",
  "$p = @(Get-Partition | Select-Object DiskNumber, @{n='DriveLetter';e={if ($_.DriveLetter) { [string]$_.DriveLetter } else { '' }}}, IsBoot, IsSystem)",
  '$c = @(Get-CimInstance Win32_CDROMDrive | Select-Object Drive, Caption, Size)',
  "ConvertTo-Json -Depth 4 -Compress @{ disks = $d; partitions = $p; cdroms = $c; systemDrive = [string]$env:SystemDrive }",
].join('; ');

/** MSFT_Disk BusType values that are removable media (USB 7, SD 12, MMC 13), by name or number. */
const REMOVABLE_BUS = new Set(['USB', 'SD', 'MMC', '7', '12', '13']);

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
const jarr = (v: Json | undefined): { [k: string]: Json }[] => (Array.isArray(v) ? v : v && typeof v === 'object' ? [v] : []).filter((x): x is { [k: string]: Json } => typeof x === 'object' && x !== null && !Array.isArray(x));
const jstr = (v: Json | undefined) => (typeof v === 'string' ? v.trim() : undefined);
const jnum = (v: Json | undefined) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined);

/** WINDOWS_DISKS_SCRIPT's JSON to drives (one object or an array where there is one item). */
export function parseWindowsDisks(json: string): HostDrive[] {
  let doc: Json;
  try {
    doc = JSON.parse(json) as Json;
  } catch {
    return [];
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return [];
  const systemDrive = (jstr(doc['systemDrive']) ?? 'C:').toUpperCase();
  const parts = jarr(doc['partitions']);
  const out: HostDrive[] = [];
  for (const d of jarr(doc['disks'])) {
    const n = jnum(d['Number']);
    const size = jnum(d['Size']);
    if (n === undefined || !size) continue;
    const mine = parts.filter((p) => p['DiskNumber'] === n);
    const mountpoints = mine.map((p) => jstr(p['DriveLetter'])).filter((l): l is string => Boolean(l && /^[A-Za-z]$/.test(l))).map((l) => `${l.toUpperCase()}:`);
    out.push({
      path: `\\\\.\\PhysicalDrive${n}`,
      name: `PhysicalDrive${n}`,
      type: 'disk',
      size,
      model: jstr(d['FriendlyName']) || 'Disk',
      removable: REMOVABLE_BUS.has(jstr(d['BusType']) ?? String(d['BusType'])),
      readOnly: d['IsReadOnly'] === true,
      mountpoints,
      system: d['IsBoot'] === true || d['IsSystem'] === true || mine.some((p) => p['IsBoot'] === true || p['IsSystem'] === true) || mountpoints.includes(systemDrive),
    });
  }
  for (const c of jarr(doc['cdroms'])) {
    const drive = jstr(c['Drive']);
    const size = jnum(c['Size']) ?? (typeof c['Size'] === 'string' ? Number(c['Size']) : undefined);
    if (!drive || !/^[A-Za-z]:$/.test(drive) || !size || !Number.isSafeInteger(size)) continue;
    out.push({ path: `\\\\.\\${drive.toUpperCase()}`, name: drive.toUpperCase(), type: 'rom', size, model: jstr(c['Caption']) || 'Optical drive', removable: true, readOnly: true, mountpoints: [], system: false });
  }
  return out;
}

function run(file: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    nodeChildProcess().execFile(file, args, { timeout: 20_000, maxBuffer: 8 << 20, windowsHide: true }, (err, stdout) => resolve(err ? undefined : stdout));
  });
}

/** macOS: diskutil list, then diskutil info per whole disk. */
export async function listDarwinDrives(): Promise<HostDrive[]> {
  const listXml = await run('/usr/sbin/diskutil', ['list', '-plist']);
  if (!listXml) return [];
  const doc = safePlist(listXml);
  const ids = isDict(doc) ? list((doc as Dict)['WholeDisks']).map((v) => str(v)).filter((s): s is string => Boolean(s && /^disk\d+$/.test(s))) : [];
  const infos = new Map<string, string | undefined>();
  for (const id of ids) infos.set(id, await run('/usr/sbin/diskutil', ['info', '-plist', id]));
  return parseDiskutil(listXml, (id) => infos.get(id));
}

/** Windows: the one PowerShell run. */
export async function listWindowsDrives(): Promise<HostDrive[]> {
  const out = await run('powershell.exe', ['-NoProfile', '-NonInteractive', '-Command', WINDOWS_DISKS_SCRIPT]);
  return out ? parseWindowsDisks(out) : [];
}

// Turning what a user typed into a protocol options tree (QEMU's bdrv_parse_filename and
// bdrv_find_protocol). Every URI and prefix form of qemu-block-drivers(7) is recognised here, so a
// protocol missing a driver answers "not yet supported" instead of being mistaken for a file.

import { isAbsolute } from 'node:path';
import { unsupported } from '../errors.ts';
import type { OptionsTree } from './options-tree.ts';

/** Protocol prefixes of the seed, with the driver name QEMU gives each. */
export const KNOWN_PROTOCOLS: Record<string, string> = {
  file: 'file',
  nbd: 'nbd',
  'nbd+tcp': 'nbd',
  'nbd+unix': 'nbd',
  ssh: 'ssh',
  iscsi: 'iscsi',
  iser: 'iscsi',
  gluster: 'gluster',
  'gluster+tcp': 'gluster',
  'gluster+unix': 'gluster',
  'gluster+rdma': 'gluster',
  sheepdog: 'sheepdog',
  'sheepdog+tcp': 'sheepdog',
  'sheepdog+unix': 'sheepdog',
  nvme: 'nvme',
  fat: 'vvfat',
  http: 'http',
  https: 'https',
  ftp: 'ftp',
  ftps: 'ftps',
  rbd: 'rbd',
  nfs: 'nfs',
  host_device: 'host_device',
  host_cdrom: 'host_cdrom',
  'null-co': 'null-co',
  'null-aio': 'null-aio',
  blkdebug: 'blkdebug',
};

/** The protocol prefix of a filename ("nbd" of "nbd://h/x", "fat" of "fat:rw:/d"), or undefined
 *  for a plain path. Like QEMU, a prefix must be followed by ':' and contain no '/' before it;
 *  Windows drive letters ("c:\x") are paths. */
export function protocolPrefix(filename: string): string | undefined {
  const m = /^([A-Za-z][A-Za-z0-9+._-]*):/.exec(filename);
  if (!m) return undefined;
  const p = m[1]!;
  if (p.length === 1) return undefined; // a Windows drive letter
  return p.toLowerCase();
}

/**
 * The path a "file:" name stands for (QEMU's bdrv_parse_filename_strip_prefix): the prefix
 * dropped, and "./" put in front when what is left would itself look like a protocol prefix
 * ("file:image:top.qcow2" is the file "./image:top.qcow2"). Other names are returned as they are.
 */
export function stripFilePrefix(filename: string): string {
  if (protocolPrefix(filename) !== 'file') return filename;
  const rest = filename.slice('file:'.length);
  return protocolPrefix(rest) !== undefined ? `./${rest}` : rest;
}

/** Is this a Windows device path (\\.\PhysicalDrive0, \\.\d:)? */
export function isWindowsDevicePath(filename: string): boolean {
  return /^\\\\\.\\/.test(filename);
}

/**
 * QEMU's is_windows_drive (block.c): "d:" alone, or a name under "\\.\" or "//./"
 * (\\.\d:, \\.\PhysicalDrive0, \\.\CdRom0). On Windows these, and "/dev/cdrom", are host
 * devices (file-win32.c hdev_probe_device); elsewhere plain names.
 */
export function isWindowsDrive(filename: string): boolean {
  return /^[A-Za-z]:$/.test(filename) || filename.startsWith('\\\\.\\') || filename.startsWith('//./');
}

/** The driver Windows' host_device probe gives a name (undefined on other OSes, where drivers
 *  probe the device itself through ProtocolDriver.probeDevice). */
export function hostDeviceDriverFor(filename: string, platform: NodeJS.Platform = process.platform): string | undefined {
  if (platform === 'win32' && (isWindowsDrive(filename) || filename.startsWith('/dev/cdrom'))) return 'host_device';
  return undefined;
}

/**
 * The options tree for one protocol-level filename. `protocols` is the set of protocol driver
 * names Platter implements; a known but unimplemented protocol gets a clear Unsupported error.
 */
export function protocolTreeForFilename(filename: string, implemented: (name: string) => { parseFilename?(f: string): OptionsTree } | undefined, probeDevice?: (filename: string) => string | undefined): OptionsTree {
  // As QEMU's bdrv_find_protocol: the device probes run first, even on names with a prefix.
  const dev = hostDeviceDriverFor(filename) ?? probeDevice?.(filename);
  if (dev) {
    const d = implemented(dev);
    if (!d) throw unsupported(`The '${dev}' protocol is not yet supported by Platter (for '${filename}')`, { path: filename });
    return { driver: dev, filename };
  }
  const prefix = protocolPrefix(filename);
  if (prefix === undefined) return { driver: 'file', filename };
  const driverName = KNOWN_PROTOCOLS[prefix];
  if (driverName === undefined) {
    throw unsupported(`Unknown protocol '${prefix}'`, { path: filename });
  }
  if (driverName === 'file') return { driver: 'file', filename: stripFilePrefix(filename) };
  const d = implemented(driverName);
  if (!d) throw unsupported(`The '${driverName}' protocol is not yet supported by Platter (for '${filename}')`, { path: filename });
  if (d.parseFilename) return { driver: driverName, ...d.parseFilename(filename) };
  return { driver: driverName, filename };
}

/** QEMU's path_combine: a relative name recorded in an image (backing file, vmdk extent, data
 *  file) is relative to the image's directory as the image was named (not made absolute). */
export function pathCombine(imageName: string, name: string): string {
  if (isAbsolute(name)) return name;
  // The image's name up to its last separator, kept as typed ("./sub/a.vmdk" -> "./sub/").
  const cut = Math.max(imageName.lastIndexOf('/'), process.platform === 'win32' ? imageName.lastIndexOf('\\') : -1);
  return cut < 0 ? name : imageName.slice(0, cut + 1) + name;
}

// host_device on Windows (QEMU block/file-win32.c hdev_open): "d:" / "\\.\d:" volumes,
// "\\.\PhysicalDriveN" disks and "/dev/cdrom" for the first CD-ROM drive. The handle is Node's
// own (libuv opens it with CreateFileW); the size comes from IOCTL_DISK_GET_LENGTH_INFO (else the
// DISK_GEOMETRY_EX size) and the request alignment from the geometry's sector size (512 as
// QEMU's hdev_refresh_limits when unknown): raw disk handles take only whole sectors. QEMU takes
// no image locks on Windows, nor does this. UNTESTED ON REAL WINDOWS HARDWARE: written against
// the documented APIs; the path rules, IOCTL codes, structure layouts and error words are
// unit-tested (test/unit/host-device-paths.test.ts).

import { open as fsOpen, type FileHandle } from 'node:fs/promises';
import { constants } from 'node:fs';
import { BlockError } from '../../errors.ts';
import type { ProtocolOpenContext } from '../../block/types.ts';
import { optString } from '../../block/options-tree.ts';
import { hostOps } from '../../host/index.ts';
import { win32OpenErrorText } from '../../host/win32-device.ts';
import { FileNode } from '../file/index.ts';
import { parseWindowsDevice } from './paths.ts';

/** QEMU's hdev_refresh_limits on Windows: request_alignment 512. */
const WINDOWS_SECTOR = 512;

/** The path CreateFileW gets for a name the user gave (undefined: no CD-ROM drive for /dev/cdrom). */
export function windowsOpenPath(given: string, firstCdrom: () => string | undefined): string | undefined {
  const dev = parseWindowsDevice(given);
  if (!dev) return given;
  return dev.kind === 'cdrom-alias' ? firstCdrom() : dev.path;
}

export async function openWindowsDevice(ctx: ProtocolOpenContext): Promise<FileNode> {
  const given = optString(ctx.options, 'filename') ?? ctx.filename;
  const host = hostOps();
  const path = windowsOpenPath(given, () => host.device?.firstCdrom?.());
  if (path === undefined) throw new BlockError('NotFound', 'Could not open CD-ROM drive', { path: given, op: 'open' }, { code: 'ProtocolWorded' });
  let fh: FileHandle;
  try {
    fh = await fsOpen(path, ctx.readOnly ? constants.O_RDONLY : constants.O_RDWR);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    const denied = code === 'EPERM' || code === 'EACCES';
    throw new BlockError(denied ? 'Permission' : 'InvalidArgument', win32OpenErrorText(code), { path: given, op: 'open' }, { code: 'ProtocolWorded', cause: e });
  }
  const size = host.deviceSize(fh.fd) ?? (await fh.stat().then((s) => s.size, () => 0));
  const alignment = host.deviceBlockSize(fh.fd) ?? WINDOWS_SECTOR;
  return new FileNode({ fh, size, name: given, readOnly: ctx.readOnly, lock: undefined, direct: false, alignment, noFlush: false, regular: false });
}

// host_device on macOS (QEMU 7.2 block/file-posix.c hdev_open, __APPLE__ part): the name
// "/dev/cdrom" opens the optical drive found in the I/O Registry (core/host/darwin-cdrom.ts),
// /dev/rdiskN when cache.direct=on; any other name opens as given. When a /dev/ node fails to
// open, QEMU first prints how to unmount it (a mounted disk is held by the system): the same
// lines come before the error here. Untested on a real Mac; the lookup is unit-tested.

import type { ProtocolOpenContext } from '../../block/types.ts';
import { optString } from '../../block/options-tree.ts';
import { BlockError } from '../../errors.ts';
import { DARWIN_CDROM_ALIAS, resolveDarwinCdrom, unmountingDirections, type CdromLookup } from '../../host/darwin-cdrom.ts';
import { cacheOptions, openPosix, type FileNode } from '../file/index.ts';

export async function openDarwinDevice(ctx: ProtocolOpenContext, lookup?: CdromLookup): Promise<FileNode> {
  const given = optString(ctx.options, 'filename') ?? ctx.filename;
  const path = given === DARWIN_CDROM_ALIAS ? await resolveDarwinCdrom(cacheOptions(ctx.options).direct, lookup) : given;
  const opened = path === given ? ctx : { ...ctx, filename: path, options: { ...ctx.options, filename: path } };
  try {
    return await openPosix(opened, 'host_device');
  } catch (e) {
    if (!(e instanceof BlockError) || !path.startsWith('/dev/') || e.reportedBefore) throw e;
    throw new BlockError(e.kind, e.message, e.context, {
      cause: e,
      reportedBefore: unmountingDirections(path),
      ...(e.hint !== undefined ? { hint: e.hint } : {}),
      ...(e.errno !== undefined ? { errno: e.errno } : {}),
      ...(e.code !== undefined ? { code: e.code } : {}),
    });
  }
}

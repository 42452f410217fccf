// Internal snapshot jobs (qemu-img snapshot -l/-c/-a/-d; block/snapshot.c): list, create, apply
// and delete through the driver's SnapshotCapability. Formats without one get qemu-img's words.

import type { SnapshotInfoJson } from '../api/types.ts';
import { BlockError, errnoText } from '../errors.ts';
import { withImage, type ImageSpec, type JobControl, type JobEnv } from './common.ts';
import { snapshotToJson } from './info.ts';

export type SnapshotAction = 'create' | 'apply' | 'delete';

const ACTION_WORDS: Record<SnapshotAction, string> = { create: 'create', apply: 'apply', delete: 'delete' };

/** "-95 (Operation not supported)": qemu-img prints -errno then strerror for these. */
const ENOTSUP_TEXT = '-95 (Operation not supported)';

export async function snapshotList(image: ImageSpec, env: JobEnv): Promise<SnapshotInfoJson[]> {
  return withImage(image, env, { readOnly: true, noBacking: true }, async (node) => {
    if (!node.snapshots) return [];
    return (await node.snapshots.list()).map(snapshotToJson);
  });
}

export async function snapshotAction(action: SnapshotAction, image: ImageSpec, name: string, env: JobEnv, ctl: JobControl = {}): Promise<void> {
  void ctl;
  await withImage(image, env, { readOnly: false, noBacking: true }, async (node) => {
    const snaps = node.snapshots;
    const fail = (why: string) => new BlockError('Unsupported', `Could not ${ACTION_WORDS[action]} snapshot '${name}': ${why}`, {}, { code: 'Worded' });
    if (!snaps) throw fail(ENOTSUP_TEXT);
    try {
      if (action === 'create') {
        const now = Date.now();
        await snaps.create({ name, dateSec: Math.floor(now / 1000), dateNsec: (now % 1000) * 1e6, vmClockNsec: 0, vmStateSize: 0 });
      } else if (action === 'apply') {
        await snaps.apply(name);
      } else {
        await snaps.delete(name);
      }
    } catch (e) {
      // qemu-img prints a failed creation's error code, not a message (img_snapshot).
      if (e instanceof BlockError && action === 'create' && e.errno) {
        throw new BlockError(e.kind, `Could not create snapshot '${name}': ${errnoText(e.errno)}`, e.context, { cause: e, code: 'Worded', ...(e.reportedBefore ? { reportedBefore: e.reportedBefore } : {}) });
      }
      if (e instanceof BlockError && e.code !== 'Worded' && e.code !== 'OpenFailed') {
        throw new BlockError(e.kind, `Could not ${ACTION_WORDS[action]} snapshot '${name}': ${e.message}`, e.context, { cause: e, code: 'Worded', ...(e.reportedBefore ? { reportedBefore: e.reportedBefore } : {}) });
      }
      throw e;
    }
    await node.flush();
  });
}

// The commit job (qemu-img commit; block/commit.c, qemu-img.c img_commit): copy every range the
// layers above the base define into the base (growing the base if the top is larger), then,
// unless -d (or -b, which implies it), empty the top by discarding its data so reads fall
// through to the base again (QEMU's bdrv_make_empty).

import { LeakyBucket } from '../util/leaky-bucket.ts';
import { BlockNode } from '../block/node.ts';
import { openImage } from '../drivers/open.ts';
import type { OptionsTree } from '../block/options-tree.ts';
import { PERM_RESIZE } from '../block/types.ts';
import { BlockError, cancelled, invalidArgument } from '../errors.ts';
import { openSpec, progressReporter, type ImageSpec, type JobControl, type JobEnv } from './common.ts';
import { realpathSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { pathCombine, protocolPrefix } from '../block/filename.ts';

export interface CommitOptions {
  image: ImageSpec;
  /** -b: the base image in the chain (default: the top's backing). */
  base?: string;
  /** -d: keep the top's data. */
  drop?: boolean;
  /** -r: the copy into the base limited to this many bytes per second (0 or absent: no limit). */
  rateLimit?: number;
}

/** Bytes per copy request. */
const CHUNK = 4 << 20;

function realPath(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Is `base` (a name as the user typed it) the backing node `node` of `overlay`? As QEMU's
 * bdrv_find_backing_image: a json: or protocol name is compared as text with the name the
 * overlay records; a path is taken relative to the overlay's directory, as backing names are,
 * and compared by real path with the file under `node`.
 */
function sameImage(overlay: BlockNode, node: BlockNode, base: string): boolean {
  const recorded = overlay.backingFile?.filename;
  if (base.startsWith('json:') || protocolPrefix(base) !== undefined || (recorded !== undefined && (recorded.startsWith('json:') || protocolPrefix(recorded) !== undefined))) {
    return base === recorded || base === node.filename;
  }
  const dir = overlay.baseFile?.filename;
  if (dir === undefined && !isAbsolute(base)) return false;
  const want = realPath(isAbsolute(base) ? base : pathCombine(dir!, base));
  const have = node.baseFile ? realPath(node.baseFile.filename) : undefined;
  return want !== undefined && want === have;
}

export async function commit(o: CommitOptions, env: JobEnv, ctl: JobControl = {}): Promise<{ base: string; bytesCopied: number; emptied: boolean }> {
  const top = await openSpec(o.image, env, { readOnly: false });
  let base: BlockNode | undefined;
  try {
    if (!top.backing) throw invalidArgument('Image does not have a backing file');
    // Find the base in the chain, and how many layers sit above it.
    let roBase: BlockNode | undefined;
    let depthOfBase = 0;
    let d = 0;
    let overlay: BlockNode | undefined;
    for (const n of top.chain()) {
      if (overlay && (o.base === undefined ? d === 1 : sameImage(overlay, n, o.base))) {
        roBase = n;
        depthOfBase = d;
        break;
      }
      overlay = n;
      d++;
    }
    if (!roBase) throw invalidArgument(`Did not find '${o.base}' in the backing chain of '${top.filename}'`);
    // The chain opened the base read-only: open it again for writing, unlocked from the chain's
    // read lock by closing the chain's copy first (it stays reachable through ours).
    const baseName = roBase.file?.filename ?? roBase.filename;
    // A base whose format was probed is opened by probing again, so a probed raw base keeps its
    // guard on block 0 (QEMU: commit then fails with "Operation not permitted").
    const baseFormat = roBase.options['x-probed'] === true ? undefined : roBase.format;
    // Reopened with the options it was opened with (its encrypt.key-secret, say), as QEMU
    // reopens the node read-write.
    const { 'x-probed': _probed, ...baseOptions } = roBase.options;
    const baseFile = roBase.file ? { driver: roBase.file.driver.name, ...roBase.file.options } : { filename: baseName };
    const parent = [...top.chain()][depthOfBase - 1]!;
    // Opened again from the same options (a json: backing keeps its filters: QEMU reopens the
    // node itself read-write).
    await roBase.close();
    base = await openImage(roBase.openedWith ?? ({ ...baseOptions, file: baseFile } as OptionsTree), { ...(baseFormat ? { format: baseFormat } : {}), ...(o.image.cache ? { fileOptions: { cache: o.image.cache } } : {}), readOnly: false, reopen: true, extraPerm: PERM_RESIZE, secrets: env.secrets, warn: env.warn });
    parent.backing = base;

    if (base.size < top.size) await base.truncate(top.size, {});
    const progress = progressReporter(ctl, top.size, 'committing');
    const throttle = o.rateLimit ? new LeakyBucket(o.rateLimit) : undefined;
    const copied = await copyDown(top, base, depthOfBase, progress, ctl, throttle).catch((e) => {
      // qemu-img reports a failed commit as its block job's error: "Block job failed: <errno>".
      throw e instanceof BlockError && e.kind !== 'Cancelled' ? new BlockError(e.kind, `Block job failed: ${e.message}`, e.context, { cause: e }) : e;
    });
    await base.flush();
    const emptied = !(o.drop ?? false) && o.base === undefined && top.canMakeEmpty;
    if (emptied) {
      // Empty the top so it reads through to the base (bdrv_make_empty). Discard is no substitute:
      // it may leave zero clusters that hide the base. A format without it (qed, vmdk) keeps its
      // data, which still reads the same: qemu-img ignores ENOTSUP there too.
      try {
        await top.makeEmpty();
        await top.flush();
      } catch (e) {
        // QEMU's bdrv_make_empty: "Failed to empty <node>: <errno>".
        throw e instanceof BlockError && e.kind !== 'Cancelled' ? new BlockError(e.kind, `Failed to empty ${top.filename}: ${e.message}`, e.context, { cause: e }) : e;
      }
    }
    progress.finish();
    return { base: baseName, bytesCopied: copied, emptied };
  } finally {
    await top.close().catch(() => {});
  }
}

/** Copy what the layers above the base define into it; returns the bytes copied. */
async function copyDown(top: BlockNode, base: BlockNode, depthOfBase: number, progress: ReturnType<typeof progressReporter>, ctl: JobControl, throttle: LeakyBucket | undefined): Promise<number> {
  let copied = 0;
  for (let off = 0; off < top.size; ) {
    if (ctl.signal?.aborted) throw cancelled();
    // Is this range defined by a layer above the base?
    let len = top.size - off;
    let above = false;
    let zero = false;
    let n: BlockNode | undefined = top;
    for (let i = 0; i < depthOfBase && n; i++, n = n.backing) {
      if (off >= n.size) continue;
      const st = await n.blockStatus(off, Math.min(len, n.size - off));
      len = st.length;
      if (st.allocated) {
        above = true;
        zero = st.zero && !st.data;
        break;
      }
    }
    // Zeros without data above the base become a zero write that may deallocate, where the
    // range covers whole clusters of the base (QEMU's commit is a mirror job with unmap on: its
    // MIRROR_METHOD_ZERO); otherwise the zeros are copied as data.
    const granule = Math.max(4096, base.clusterSize ?? 0);
    const zeroLen = above && zero && off % granule === 0 ? len - (len % granule) : 0;
    if (zeroLen > 0) {
      await throttle?.take(zeroLen, ctl.signal);
      await base.writeZeroes(off, zeroLen, { mayUnmap: true });
      copied += zeroLen;
      len = zeroLen; // the rest is looked at again
    } else if (above) {
      for (let p = off; p < off + len; p += CHUNK) {
        const m = Math.min(CHUNK, off + len - p);
        const buf = await top.read(p, m);
        await throttle?.take(m, ctl.signal);
        await base.write(p, buf);
        copied += m;
      }
    }
    off += len;
    progress.add(len);
  }
  return copied;
}

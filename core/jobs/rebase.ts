// The rebase job (qemu-img rebase; qemu-img.c img_rebase). Safe mode: for every range the image
// does not define itself, compare what the old backing chain and the new one read there, and
// copy the old contents into the image where they differ (a sector at a time), so the guest sees
// the same disk after the switch; then rewrite the header. -u (unsafe) only rewrites the header.

import type { BlockNode } from '../block/node.ts';
import { openImage } from '../drivers/open.ts';
import { pathCombine } from '../block/filename.ts';
import { BlockError, cancelled, invalidArgument, unsupported } from '../errors.ts';
import type { CacheMode } from '../block/cache-mode.ts';
import { openSpec, progressReporter, type ImageSpec, type JobControl, type JobEnv } from './common.ts';

export interface RebaseOptions {
  image: ImageSpec;
  /** New backing file as it will be recorded ("" removes it). */
  backingFile: string;
  backingFormat?: string;
  unsafe?: boolean;
  /** -T src_cache: how the new backing file is cached while the old and new contents are
   *  compared (the image itself and its old chain open with image.cache, qemu-img's -t). */
  backingCache?: CacheMode;
}

/** Bytes compared per step (qemu-img rebase works in chunks of its I/O buffer). */
const CHUNK = 1 << 20;
const SECTOR = 512;

/** Read through a backing node, with zeros where there is none or past its end. */
async function readOrZero(node: BlockNode | undefined, offset: number, length: number): Promise<Buffer> {
  const out = Buffer.alloc(length);
  if (!node || offset >= node.size) return out;
  const n = Math.min(length, node.size - offset);
  (await node.read(offset, n)).copy(out, 0);
  return out;
}

export async function rebase(o: RebaseOptions, env: JobEnv, ctl: JobControl = {}): Promise<{ image: string; backingFile: string | null; bytesCopied: number }> {
  const unsafe = o.unsafe ?? false;
  const img = await openSpec(o.image, env, { readOnly: false, noBacking: unsafe });
  let newBacking: BlockNode | undefined;
  try {
    if (!img.canSetBackingFile) throw unsupported(`Could not change the backing file to '${o.backingFile}': Operation not supported`, {}, { code: 'Worded' });
    const removing = o.backingFile === '';
    let fmt = o.backingFormat;
    // qemu-img records no backing file without its format (bdrv_change_backing_file with
    // require=true); -u opens nothing that could name it. (Safe mode opens the new backing file
    // and records the format it was opened with.)
    if (unsafe && !removing && fmt === undefined) {
      throw invalidArgument(`Could not change the backing file to '${o.backingFile}': backing format must be specified`, {}, { code: 'Worded' });
    }
    let copied = 0;
    if (!unsafe) {
      if (!removing) {
        const file = img.file?.filename ?? img.filename;
        // QEMU's path_combine: relative to the image's name as given (its errors name that path).
        const full = pathCombine(file, o.backingFile);
        try {
          newBacking = await openImage(full, { ...(fmt ? { format: fmt } : {}), ...(o.backingCache ? { fileOptions: { cache: o.backingCache } } : {}), readOnly: true, secrets: env.secrets, warn: env.warn });
        } catch (e) {
          const msg = e instanceof Error ? e.message : String(e);
          throw new BlockError(e instanceof BlockError ? e.kind : 'Io', `Could not open new backing file '${o.backingFile}': ${msg}`, {}, { code: 'OpenFailed' });
        }
        fmt ??= newBacking.format;
      }
      const oldBacking = img.backing;
      const progress = progressReporter(ctl, img.size, 'rebasing');
      for (let off = 0; off < img.size; ) {
        if (ctl.signal?.aborted) throw cancelled();
        const st = await img.blockStatus(off, img.size - off);
        if (!st.allocated) {
          for (let p = off, n = 0; p < off + st.length; p += n) {
            n = Math.min(CHUNK, off + st.length - p);
            // As qemu-img: a chunk stops at the end of the old backing file; past it (or with
            // none) the old contents are zeros, and written as zeros (blk_pwrite_zeroes).
            const oldIsZero = !oldBacking || p >= oldBacking.size;
            if (!oldIsZero && p + n > oldBacking.size) n = oldBacking.size - p;
            const [a, b] = await Promise.all([readOrZero(oldBacking, p, n), readOrZero(newBacking, p, n)]);
            if (a.equals(b)) continue;
            // Write the differing sectors (merged into runs) with the old contents.
            let runStart = -1;
            for (let q = 0; q <= n; q += SECTOR) {
              const differs = q < n && !a.subarray(q, Math.min(n, q + SECTOR)).equals(b.subarray(q, Math.min(n, q + SECTOR)));
              if (differs && runStart < 0) runStart = q;
              if (!differs && runStart >= 0) {
                if (oldIsZero) await img.writeZeroes(p + runStart, q - runStart);
                else await img.write(p + runStart, a.subarray(runStart, q));
                copied += q - runStart;
                runStart = -1;
              }
            }
          }
        }
        off += st.length;
        progress.add(st.length);
      }
      progress.finish();
    }
    await img.setBackingFile(removing ? undefined : o.backingFile, removing ? undefined : fmt);
    await img.flush();
    return { image: img.filename, backingFile: removing ? null : o.backingFile, bytesCopied: copied };
  } finally {
    await newBacking?.close().catch(() => {});
    await img.close().catch(() => {});
  }
}

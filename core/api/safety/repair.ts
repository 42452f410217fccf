// Repair with a backup (#16 item 7): check (read-only), copy the image file beside itself (a
// reflink clone where the file system has one, FICLONE through fs.copyFile, else a sparse copy
// with progress), then qemu-img check -r, and answer what changed (the counts before and after).
// When the repair leaves errors, the answer says so and names a target for salvage (convert
// --salvage into a new image, the engine's convert job). The backup is never overwritten
// (COPYFILE_EXCL / 'wx'); a cancelled copy removes its partial file.

import { constants as fsc } from 'node:fs';
import { copyFile, open, rm, stat } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { z } from 'zod';
import { check as checkJob } from '../../jobs/check.ts';
import { openSpec, type JobControl, type JobEnv } from '../../jobs/common.ts';
import { cancelled, invalidArgument } from '../../errors.ts';
import type { CheckReport } from '../types.ts';
import { imageRef, secretInput } from '../schemas.ts';

export const repairInput = z.object({
  image: imageRef,
  /** -r leaks | all */
  repair: z.enum(['leaks', 'all']),
  /** Where the backup goes (default: beside the image, "<name>.backup-<time><ext>"). */
  backup: z.string().min(1).optional(),
  secrets: z.array(secretInput).optional(),
  objects: z.array(z.string()).optional(),
});

export interface CheckCounts {
  corruptions: number;
  leaks: number;
  checkErrors: number;
}

export interface RepairOutcome {
  image: string;
  backup: { path: string; method: 'reflink' | 'copy'; bytes: number };
  before: CheckCounts;
  after: CheckCounts;
  repaired: { corruptions: number; leaks: number };
  /** Nothing left to fix. */
  fixed: boolean;
  /** The repair's report (qemu-img check -r's). */
  report: CheckReport;
  /** When the repair could not fix it: a new file for convert --salvage. */
  salvageTarget?: string;
}

const CHUNK = 4 << 20;

const counts = (r: CheckReport): CheckCounts => ({ corruptions: r.corruptions ?? 0, leaks: r.leaks ?? 0, checkErrors: r['check-errors'] });

function stamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** "disk.qcow2" -> "disk.backup-20260103-101500.qcow2" beside it. */
export function backupName(path: string, d = new Date()): string {
  const ext = extname(path);
  return join(dirname(path), `${basename(path, ext)}.backup-${stamp(d)}${ext}`);
}

/** Copy `src` to the new file `dst`: a reflink clone if the file system makes one, else a
 *  sparse copy (all-zero chunks left as holes) with progress. */
export async function backupFile(src: string, dst: string, ctl: JobControl = {}): Promise<{ method: 'reflink' | 'copy'; bytes: number }> {
  const size = (await stat(src)).size;
  try {
    await copyFile(src, dst, fsc.COPYFILE_FICLONE_FORCE | fsc.COPYFILE_EXCL);
    ctl.onProgress?.({ done: size, total: size, phase: 'backup (reflink)' });
    return { method: 'reflink', bytes: size };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw invalidArgument(`The backup file ${dst} exists already`);
    await rm(dst, { force: true }).catch(() => {});
  }
  const input = await open(src, 'r');
  let output;
  try {
    output = await open(dst, 'wx');
  } catch (e) {
    await input.close();
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw invalidArgument(`The backup file ${dst} exists already`);
    throw e;
  }
  const buf = Buffer.alloc(CHUNK);
  let ok = false;
  try {
    for (let off = 0; off < size; ) {
      if (ctl.signal?.aborted) throw cancelled();
      const { bytesRead } = await input.read(buf, 0, Math.min(CHUNK, size - off), off);
      if (bytesRead === 0) break;
      const chunk = buf.subarray(0, bytesRead);
      if (chunk.some((b) => b !== 0)) await output.write(chunk, 0, bytesRead, off);
      off += bytesRead;
      ctl.onProgress?.({ done: off, total: size, phase: 'backup (copy)' });
    }
    await output.truncate(size);
    await output.sync();
    ok = true;
  } finally {
    await input.close();
    await output.close();
    if (!ok) await rm(dst, { force: true }).catch(() => {});
  }
  return { method: 'copy', bytes: size };
}

export async function repairWithBackup(i: z.output<typeof repairInput>, env: JobEnv, ctl: JobControl = {}): Promise<RepairOutcome> {
  const spec = { filename: i.image.filename, ...(i.image.format ? { format: i.image.format } : {}), ...(i.image.imageOpts ? { imageOpts: true } : {}) };
  // The image's file (a json:/--image-opts spec names it inside).
  const probe = await openSpec(spec, env, { readOnly: true, noBacking: true, forCheck: true, forceShare: true });
  const file = probe.baseFile?.filename ?? probe.filename;
  await probe.close();
  const before = await checkJob({ image: { ...spec, forceShare: true } }, env, {});
  // Hold the image while it is copied (read-only, sharing no write), so nobody writes to it
  // meanwhile and nothing is written to it before the copy is taken.
  const held = await openSpec(spec, env, { readOnly: true, noBacking: true, forCheck: true, noShare: true });
  const target = i.backup ?? backupName(file);
  let backup;
  try {
    backup = await backupFile(file, target, ctl);
  } finally {
    await held.close();
  }
  ctl.onProgress?.({ done: 0, total: 1, phase: 'repairing' });
  const report = await checkJob({ image: spec, repair: i.repair }, env, {});
  ctl.onProgress?.({ done: 1, total: 1, phase: 'repairing' });
  const after = counts(report);
  const fixed = after.corruptions === 0 && after.checkErrors === 0 && after.leaks === 0 && !report.failed;
  const ext = extname(file);
  return {
    image: file,
    backup: { path: target, ...backup },
    before: counts(before),
    after,
    repaired: report.repaired ?? { corruptions: 0, leaks: 0 },
    fixed,
    report,
    ...(fixed ? {} : { salvageTarget: join(dirname(file), `${basename(file, ext)}.salvaged${ext || '.qcow2'}`) }),
  };
}

// Staged targets: a new image is written under a temporary name beside its final one and gets
// its final name by rename only once complete (a rename within one directory is atomic), so a
// convert or create that is killed, cancelled or fails never leaves a file under the target's
// name that opens as a finished image; an image that was there before stays untouched until the
// new one replaces it. Files an image names by its final name (vmdk extents, a qcow2 external
// data file) are created under their final names; only the file that makes the image openable
// (the image file itself, or the vmdk descriptor) is staged.
//
// Staging applies to plain paths whose final name is absent or a regular file with one link.
// Symlinks, hard links, devices and protocol names are written in place, as qemu-img does.

import { closeSync, fsyncSync, lstatSync, openSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { BlockError } from '../errors.ts';

/** Marks a staged file: leftovers of a killed process carry it (and a leading dot). */
export const STAGING_MARK = '.platter-partial-';

export interface StagedTarget {
  /** Where the image is written until it is complete. */
  readonly path: string;
  /** The name it gets at commit. */
  readonly finalName: string;
  /** Give the image its final name (replacing what was there); `durable` also syncs the
   *  directory so the rename survives a power loss. */
  commit(durable: boolean): void;
  /** Remove the staged file (the final name is not touched). */
  discard(): void;
}

/** A protocol or pseudo-protocol name ("nbd://", "json:", "fat:"), not a Windows drive path. */
function hasProtocolPrefix(filename: string): boolean {
  return /^[A-Za-z][A-Za-z0-9+.-]*:/.test(filename) && !/^[A-Za-z]:[\\/]/.test(filename);
}

/** Is this the name of a file Platter's staging leaves behind when killed? */
export function isStagingLeftover(name: string): boolean {
  return name.startsWith('.') && name.includes(STAGING_MARK);
}

/** Stage a new image for `filename`, or undefined where it must be written in place. */
/** Staging names need to differ between the targets one process stages, and from stale files a
 *  crash left behind (the pid is in the name too); nothing about them is secret. */
let stagings = 0;
function stagingSuffix(): string {
  return `${(++stagings).toString(16)}${Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0')}`;
}

export function stageTarget(filename: string): StagedTarget | undefined {
  if (filename === '' || hasProtocolPrefix(filename)) return undefined;
  const finalName = resolve(filename);
  try {
    const st = lstatSync(finalName);
    if (!st.isFile() || st.nlink !== 1) return undefined;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return undefined;
  }
  const dir = dirname(finalName);
  const path = join(dir, `.${basename(finalName)}${STAGING_MARK}${process.pid}-${stagingSuffix()}`);
  return {
    path,
    finalName,
    commit(durable: boolean) {
      renameSync(path, finalName);
      if (durable) syncDirectory(dir);
    },
    discard() {
      rmSync(path, { force: true });
    },
  };
}

/** fsync a directory (where the platform allows opening one; elsewhere the rename is left to the
 *  filesystem's own ordering). */
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Windows cannot open a directory this way; NTFS journals the rename itself.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** An error about the staged file, reworded to name the target the user gave. */
export function renamePath(e: unknown, stagedPath: string, finalName: string): unknown {
  if (!(e instanceof BlockError) || (!e.message.includes(stagedPath) && e.context.path !== stagedPath)) return e;
  const context = e.context.path === stagedPath ? { ...e.context, path: finalName } : e.context;
  return new BlockError(e.kind, e.message.split(stagedPath).join(finalName), context, { cause: e, ...e.extras });
}

// The Drives view's methods (issue #19): list the host's disks, loop devices and optical drives;
// image a drive into any format (convert, then verify with compare); write an image onto a drive
// with balenaEtcher's safety: the system disk and drives with mounted filesystems are refused, the
// caller must echo the drive's model and exact size as the user confirmed them (a different stick
// under the same name is refused), and the written range is verified against the image.
// Raw devices need privileges: a drive the server's user cannot open is listed with its access,
// and the refusal says plainly that this user lacks access. In the desktop app a call may ask for
// `elevate`: the job then runs in a helper process with the OS's administrator rights (the app
// lends `app.elevate`, electron/elevate.ts; the helper, core/cli/elevated-worker.ts, runs the
// same imageDrive/writeDrive below after checking everything again).
// Test seam: setDriveLister replaces the OS listing (e2e tests inject a fake system disk and a
// fake mounted disk; a real mount is not possible there).

import { z } from 'zod';
import { access, constants, stat } from 'node:fs/promises';
import { job, query, type CallContext } from './router.ts';
import { imageRef, optionsInput } from './schemas.ts';
import { BlockError, invalidArgument } from '../errors.ts';
import { listHostDrives, type HostDrive } from '../host/drives.ts';
import { convert as convertJob } from '../jobs/convert.ts';
import { compare as compareJob } from '../jobs/compare.ts';
import { info as infoJob } from '../jobs/info.ts';
import type { ImageInfo } from './types.ts';
import type { ImageSpec, JobControl, JobEnv } from '../jobs/common.ts';
import type { CacheMode } from '../block/cache-mode.ts';
import { canAlignBuffers } from '../host/index.ts';

export type DriveAccess = 'read-write' | 'read-only' | 'none';
export interface DriveView extends HostDrive {
  /** What the server's user may do with the device node. */
  access: DriveAccess;
}

/** A listed drive; a test's fake list may also say what access this user has. */
type ListedDrive = HostDrive & { access?: DriveAccess };
let lister: () => Promise<ListedDrive[]> = listHostDrives;

/** Replace the OS listing (tests); undefined restores it. */
export function setDriveLister(fn: (() => Promise<ListedDrive[]>) | undefined): void {
  lister = fn ?? listHostDrives;
}

async function accessOf(path: string): Promise<DriveAccess> {
  const can = (mode: number) => access(path, mode).then(() => true, () => false);
  if (await can(constants.R_OK | constants.W_OK)) return 'read-write';
  return (await can(constants.R_OK)) ? 'read-only' : 'none';
}

export async function listDrives(): Promise<DriveView[]> {
  const drives = await lister();
  return Promise.all(drives.map(async (d) => ({ ...d, access: d.access ?? (await accessOf(d.path)) })));
}

function userName(): string {
  const uid = process.getuid?.();
  return uid === undefined ? 'the server\'s user' : `the server's user (uid ${uid})`;
}

/** The drive by path from a fresh listing; refused when it is not a listed drive. */
export async function findDrive(path: string): Promise<DriveView> {
  const d = (await listDrives()).find((x) => x.path === path);
  if (!d) throw new BlockError('NotFound', `'${path}' is not one of this computer's drives (it may have been removed)`, { path });
  return d;
}

export function noAccess(d: DriveView, what: 'read' | 'write'): BlockError {
  return new BlockError('Permission', `${userName()} lacks access to ${d.path} (${what}): start Platter as a user who may open raw disks (root, or a member of the 'disk' group)`, { path: d.path, op: what === 'read' ? 'open' : 'write' });
}

/** Why writing onto this drive is refused, or undefined when it may be written. */
export function writeRefusal(d: DriveView, confirm: { model: string; size: number }): string | undefined {
  if (d.system) return `${d.path} holds the running system (${d.mountpoints.join(', ') || 'system disk'}): Platter never writes onto it`;
  if (d.mountpoints.length > 0) return `${d.path} has mounted filesystems (${d.mountpoints.join(', ')}): unmount them first`;
  if (d.readOnly) return `${d.path} is read-only`;
  if (confirm.model !== d.model || confirm.size !== d.size) return `The confirmation does not match ${d.path} (${d.model}, ${d.size} bytes): the drive may have changed; look again and confirm`;
  return undefined;
}

export const drivesListInput = z.object({}).optional();
export const drivesImageInput = z.object({
  drive: z.string().min(1),
  target: z.object({ filename: z.string().min(1), format: z.string().min(1).default('qcow2'), options: optionsInput.optional() }),
  /** Compare the image with the drive afterwards (qemu-img compare). */
  verify: z.boolean().default(true),
  /** Desktop app: run it with administrator rights when this user lacks access (asks the OS). */
  elevate: z.boolean().default(false),
});
export const drivesWriteInput = z.object({
  image: imageRef,
  drive: z.string().min(1),
  /** The drive as the user confirmed it: its model and size in bytes. */
  confirm: z.object({ model: z.string(), size: z.number().int().nonnegative() }),
  verify: z.boolean().default(true),
  elevate: z.boolean().default(false),
});
export type DrivesImageInput = z.output<typeof drivesImageInput>;
export type DrivesWriteInput = z.output<typeof drivesWriteInput>;

export interface DriveJobResult {
  /** undefined when verification was not asked for. */
  verified?: boolean;
  message?: string;
}

/** One drive job as the elevated helper runs it. */
export type ElevatedDriveJob = { kind: 'image'; input: DrivesImageInput } | { kind: 'write'; input: DrivesWriteInput };
/** Runs a drive job with administrator rights (the desktop app lends it; browser mode has none). */
export type DriveElevator = (job: ElevatedDriveJob, ctl: JobControl) => Promise<DriveJobResult>;

/** The drive must open with the size it was listed with: a device whose size this process cannot
 *  read (no native device calls: the size would be 0) would image as an empty, "identical" file. */
async function checkOpenedSize(d: DriveView, env: JobEnv): Promise<void> {
  const opened = ((await infoJob({ image: { filename: d.path, format: 'raw' } }, env)) as ImageInfo)['virtual-size'];
  if (opened !== d.size) throw new BlockError('Io', `${d.path} opens with ${opened} bytes, but the drive was listed with ${d.size} bytes (it changed, or this process cannot read its size): nothing was copied`, { path: d.path, op: 'open' });
}

/** How a drive job writes and verifies the drive: past the page cache (cache none, O_DIRECT),
 *  which would show what was written, not what the media holds. Elsewhere than Linux (direct
 *  device I/O untested on a real Mac or Windows) and without aligned buffers (no koffi):
 *  buffered, flushed at the end. */
function driveCache(): CacheMode {
  return process.platform === 'linux' && canAlignBuffers() ? 'none' : 'writeback';
}

/** The drive as verification reads it. */
function driveSpec(d: DriveView): ImageSpec {
  return { filename: d.path, format: 'raw', cache: driveCache() };
}

/** Image drive `d` into a new image (convert -O FMT DRIVE TARGET), then verify it. */
export async function imageDrive(d: DriveView, i: DrivesImageInput, env: JobEnv, ctl: JobControl): Promise<DriveJobResult> {
  await checkOpenedSize(d, env);
  const existing = await stat(i.target.filename).catch(() => undefined);
  if (existing && !existing.isFile()) throw invalidArgument(`'${i.target.filename}' is not a regular file: choose a new image file to write the drive's contents into`, { path: i.target.filename });
  // The drive is read past the page cache (convert's default for a block device source).
  await convertJob({ sources: [{ filename: d.path, format: 'raw' }], target: { filename: i.target.filename, format: i.target.format, ...(i.target.options !== undefined ? { options: i.target.options } : {}) } }, env, ctl);
  if (!i.verify) return {};
  const r = await compareJob({ a: driveSpec(d), b: { filename: i.target.filename, format: i.target.format } }, env, ctl);
  return { verified: r.identical, ...(r.message ? { message: r.message } : {}) };
}

/** Write an image onto drive `d` (convert -n IMAGE DRIVE) after the refusals, then verify the
 *  written range. The caller has checked that it may open the drive. */
export async function writeDrive(d: DriveView, i: DrivesWriteInput, env: JobEnv, ctl: JobControl): Promise<DriveJobResult> {
  const refusal = writeRefusal(d, i.confirm);
  if (refusal) throw new BlockError('Permission', refusal, { path: d.path, op: 'write' });
  const image = { filename: i.image.filename, ...(i.image.format ? { format: i.image.format } : {}), ...(i.image.imageOpts ? { imageOpts: true } : {}) };
  const meta = (await infoJob({ image }, env)) as ImageInfo;
  const size = meta['virtual-size'];
  if (size > d.size) throw invalidArgument(`The image (${size} bytes) is larger than ${d.path} (${d.size} bytes)`, { path: d.path });
  await checkOpenedSize(d, env);
  // Written past the page cache and flushed, as the media must hold it when the job says done:
  // the user may pull the stick out then.
  await convertJob({ sources: [image], target: { filename: d.path, format: 'raw' }, noCreate: true, cache: driveCache() }, env, ctl);
  if (!i.verify) return {};
  // Only the image's range: the rest of the drive keeps what it held. (`length` rather than a raw
  // node with size=, which QEMU would take only as whole sectors.)
  const r = await compareJob({ a: image, b: driveSpec(d), length: size }, env, ctl);
  return { verified: r.identical, ...(r.message ? { message: r.message } : {}) };
}

/** Run `job` elevated when the call asked for it and the app can; else the plain refusal. */
function elevated(ctx: CallContext, job: ElevatedDriveJob, refusal: BlockError): Promise<DriveJobResult> {
  const elevate = (ctx as CallContext & { app?: { elevate?: DriveElevator } }).app?.elevate;
  if (!job.input.elevate || !elevate) throw refusal;
  return elevate(job, ctx.ctl);
}

export const drivesRoutes = {
  /** The host's drives with model, size, removable, mounted filesystems, system disk, access. */
  drivesList: query(drivesListInput, () => listDrives()),
  /** Image a drive into a new image file (convert -O FMT DRIVE TARGET), then verify it. */
  drivesImage: job(drivesImageInput, (i) => `Image drive ${String(i?.drive ?? '?')} -> ${String(i?.target?.filename ?? '?')}`, async (i, ctx: CallContext): Promise<DriveJobResult> => {
    const d = await findDrive(i.drive);
    if (d.access === 'none') return elevated(ctx, { kind: 'image', input: i }, noAccess(d, 'read'));
    return imageDrive(d, i, ctx.env, ctx.ctl);
  }),
  /** Write an image onto a drive (convert -n IMAGE DRIVE), refused for the system disk, mounted
   *  drives and a confirmation that does not match, then verify the written range. */
  drivesWrite: job(drivesWriteInput, (i) => `Write ${String(i?.image?.filename ?? '?')} to drive ${String(i?.drive ?? '?')}`, async (i, ctx: CallContext): Promise<DriveJobResult> => {
    const d = await findDrive(i.drive);
    const refusal = writeRefusal(d, i.confirm);
    if (refusal) throw new BlockError('Permission', refusal, { path: d.path, op: 'write' });
    if (d.access !== 'read-write') return elevated(ctx, { kind: 'write', input: i }, noAccess(d, 'write'));
    return writeDrive(d, i, ctx.env, ctx.ctl);
  }),
};

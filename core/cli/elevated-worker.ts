// The elevated drive helper (docs/architecture.md "Elevated drive jobs"): the process the desktop
// app starts with administrator rights (pkexec, the UAC prompt, macOS's authorization dialog;
// electron/elevate.ts) when its user may not open a drive. It runs ONE drive job, the same
// imageDrive/writeDrive the app runs itself (core/api/routes-drives.ts), and talks to the app over
// the private channel of core/api/elevated-protocol.ts:
//   platter-elevated-worker --channel DIR
// It trusts nothing it is given: the channel directory must be private to one user (that user
// is who asked), the token is checked by the app, every message is validated, and the job is
// checked again here: the drive must be one of this computer's drives in a fresh listing, a
// write keeps every refusal (system disk, mounted, confirmation), an image is written only into
// a folder the asking user owns (and then given to that user), and an image to write must be a
// plain file (with its backing files) that user may read. The helper ends when the job ends,
// when the app cancels, or when the channel closes (the app is gone).

import { connect, type Socket } from 'node:net';
import { chown, lstat, readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { appMessage, elevatedJob, PIPE_FILE, PIPE_NAME, PROTOCOL_VERSION, readMessages, sendMessage, SOCKET_FILE, TOKEN, TOKEN_FILE, type AppMessage, type HelperMessage } from '../api/elevated-protocol.ts';
import { findDrive, imageDrive, writeDrive, writeRefusal, type DriveJobResult, type ElevatedDriveJob } from '../api/routes-drives.ts';
import { info as infoJob } from '../jobs/info.ts';
import { defaultEnv } from '../jobs/common.ts';
import { BlockError, serializeError } from '../errors.ts';

/** The user who asked (the owner of the channel directory); none on Windows. */
export interface Requester {
  uid: number;
  gid: number;
}

export interface Channel {
  token: string;
  /** The unix socket's path or the named pipe's name. */
  address: string;
  requester?: Requester;
}

const refuse = (message: string, path?: string) => new BlockError('Permission', `Elevated helper: ${message}`, path !== undefined ? { path } : {});

/** Read the channel directory the app made, checking that it is private to one user. */
export async function openChannel(dir: string, platform: NodeJS.Platform = process.platform): Promise<Channel> {
  if (!isAbsolute(dir)) throw refuse(`the channel directory must be an absolute path, not '${dir}'`);
  const st = await lstat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw refuse(`'${dir}' is not a directory`, dir);
  const posix = platform !== 'win32';
  if (posix && (st.mode & 0o077) !== 0) throw refuse(`'${dir}' is open to other users (mode ${(st.mode & 0o777).toString(8)}): it must be 0700`, dir);
  const tokenPath = join(dir, TOKEN_FILE);
  const ts = await lstat(tokenPath).catch(() => undefined);
  if (!ts?.isFile()) throw refuse(`no token file in '${dir}'`, dir);
  if (posix && (ts.uid !== st.uid || (ts.mode & 0o077) !== 0)) throw refuse(`the token file in '${dir}' is not private to the directory's owner`, tokenPath);
  const token = (await readFile(tokenPath, 'utf8')).trim();
  if (!TOKEN.test(token)) throw refuse(`the token file in '${dir}' does not hold a token`, tokenPath);
  if (!posix) {
    const address = (await readFile(join(dir, PIPE_FILE), 'utf8').catch(() => '')).trim();
    if (!PIPE_NAME.test(address)) throw refuse(`'${dir}' names no Platter pipe`, dir);
    return { token, address };
  }
  const address = join(dir, SOCKET_FILE);
  const ss = await lstat(address).catch(() => undefined);
  if (!ss?.isSocket() || ss.uid !== st.uid) throw refuse(`no socket of the directory's owner in '${dir}'`, address);
  return { token, address, requester: { uid: st.uid, gid: st.gid } };
}

/** May `who` read this file (by its mode bits; root may read everything)? */
function readableBy(s: { uid: number; gid: number; mode: number }, who: Requester): boolean {
  if (who.uid === 0) return true;
  if (s.uid === who.uid) return (s.mode & 0o400) !== 0;
  if (s.gid === who.gid) return (s.mode & 0o040) !== 0;
  return (s.mode & 0o004) !== 0;
}

/** A new image goes only into a folder the requester owns, never onto someone else's file. */
export async function checkImageTarget(target: string, who: Requester | undefined): Promise<void> {
  if (!isAbsolute(target)) throw refuse(`the new image must be named by an absolute path, not '${target}'`, target);
  if (!who || who.uid === 0) return;
  const dir = await stat(dirname(target)).catch(() => undefined);
  if (!dir?.isDirectory()) throw refuse(`the folder of '${target}' does not exist`, target);
  if (dir.uid !== who.uid) throw refuse(`'${dirname(target)}' is not your folder: with administrator rights Platter writes a drive's image only into a folder you own`, target);
  const existing = await lstat(target).catch(() => undefined);
  if (existing && (!existing.isFile() || existing.uid !== who.uid)) throw refuse(`'${target}' exists and is not your file`, target);
}

/** Every file an image to write reads (the image and its backing chain) must be a plain file
 *  the requester may read: administrator rights never read someone else's files onto a drive. */
export async function checkImageSources(files: readonly string[], who: Requester | undefined): Promise<void> {
  for (const f of files) {
    if (!isAbsolute(f)) throw refuse(`'${f}' is not a plain file path`, f);
    const s = await stat(f).catch(() => undefined);
    if (!s?.isFile()) throw refuse(`'${f}' is not a regular file`, f);
    if (who && !readableBy(s, who)) throw refuse(`you may not read '${f}'`, f);
  }
}

/** Run the one job after checking it again (see the head of this file). */
export async function runCheckedJob(job: ElevatedDriveJob, who: Requester | undefined, signal: AbortSignal, onProgress: (done: number, total: number, phase?: string) => void): Promise<DriveJobResult> {
  const env = { ...defaultEnv(), warn: () => {} };
  const ctl = { signal, onProgress: (p: { done: number; total: number; phase?: string }) => onProgress(p.done, p.total, p.phase) };
  const d = await findDrive(job.input.drive);
  if (job.kind === 'image') {
    await checkImageTarget(job.input.target.filename, who);
    const r = await imageDrive(d, job.input, env, ctl);
    if (who && who.uid !== 0 && process.getuid?.() === 0) await chown(job.input.target.filename, who.uid, who.gid);
    return r;
  }
  const refusal = writeRefusal(d, job.input.confirm);
  if (refusal) throw new BlockError('Permission', refusal, { path: d.path, op: 'write' });
  const image = job.input.image;
  if (image.imageOpts || !isAbsolute(image.filename)) throw refuse('the image to write must be a plain file named by an absolute path', image.filename);
  await checkImageSources([image.filename], who);
  const chain = await infoJob({ image: { filename: image.filename, ...(image.format ? { format: image.format } : {}) }, backingChain: true }, env);
  await checkImageSources((Array.isArray(chain) ? chain : [chain]).map((l) => l.filename), who);
  return writeDrive(d, job.input, env, ctl);
}

function errorMessage(e: unknown): Extract<HelperMessage, { t: 'error' }> {
  const s = serializeError(e);
  const c = s.context ?? {};
  const kinds = ['InvalidImage', 'Unsupported', 'Corrupt', 'Locked', 'NotFound', 'Permission', 'Cancelled', 'InvalidArgument', 'Io'] as const;
  const kind = (kinds as readonly string[]).includes(s.kind) ? (s.kind as (typeof kinds)[number]) : 'Io';
  const context = {
    ...(c.path !== undefined ? { path: c.path.slice(0, 4096) } : {}),
    ...(c.offset !== undefined ? { offset: c.offset } : {}),
    ...(c.op !== undefined ? { op: c.op.slice(0, 100) } : {}),
    ...(c.node !== undefined ? { node: c.node.slice(0, 200) } : {}),
  };
  return { t: 'error', error: { kind, message: s.message.slice(0, 4000), ...(s.code ? { code: s.code.slice(0, 100) } : {}), context } };
}

/** How long the helper waits for its job after connecting. */
const START_TIMEOUT_MS = 30_000;

/** The helper's whole life; resolves to its exit status (0: the job succeeded). */
export async function runElevatedWorker(argv: readonly string[]): Promise<number> {
  if (argv.length !== 2 || argv[0] !== '--channel' || !argv[1]) {
    process.stderr.write('usage: platter-elevated-worker --channel DIR\n');
    return 2;
  }
  let channel: Channel;
  try {
    channel = await openChannel(argv[1]);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 2;
  }
  const socket: Socket = connect(channel.address);
  const connected = await new Promise<boolean>((resolve) => {
    socket.once('connect', () => resolve(true));
    socket.once('error', () => resolve(false));
  });
  if (!connected) {
    process.stderr.write(`Elevated helper: cannot reach the app at ${channel.address}\n`);
    return 2;
  }
  sendMessage(socket, { t: 'hello', v: PROTOCOL_VERSION, token: channel.token });

  const abort = new AbortController();
  return new Promise<number>((resolve) => {
    let started = false;
    let finished = false;
    const finish = (message: HelperMessage | undefined, code: number) => {
      if (finished) return;
      finished = true;
      clearTimeout(startTimer);
      abort.abort();
      if (message && !socket.destroyed) {
        socket.end(`${JSON.stringify(message)}\n`, () => resolve(code));
        setTimeout(() => resolve(code), 2000).unref();
      } else {
        socket.destroy();
        resolve(code);
      }
    };
    const startTimer = setTimeout(() => finish(errorMessage(refuse('no job arrived')), 2), START_TIMEOUT_MS);
    socket.on('error', () => finish(undefined, 1));
    // The app is gone (closed, crashed, cancelled by closing): stop writing at once.
    socket.on('close', () => finish(undefined, 1));
    readMessages<AppMessage>(
      socket,
      appMessage,
      (m) => {
        if (m.t === 'cancel') {
          abort.abort();
          return;
        }
        if (started) return finish(errorMessage(refuse('a second job was refused: this helper runs one job')), 2);
        started = true;
        clearTimeout(startTimer);
        const job = elevatedJob.parse(m.job) as ElevatedDriveJob;
        runCheckedJob(job, channel.requester, abort.signal, (done, total, phase) => {
          sendMessage(socket, { t: 'progress', done: Math.max(0, Math.round(done)), total: Math.max(0, Math.round(total)), ...(phase ? { phase: phase.slice(0, 200) } : {}) });
        }).then(
          (result) => finish({ t: 'result', result: { ...(result.verified !== undefined ? { verified: result.verified } : {}), ...(result.message !== undefined ? { message: result.message.slice(0, 4000) } : {}) } }, 0),
          (e) => finish(errorMessage(e), 1),
        );
      },
      (why) => finish(errorMessage(refuse(`refused ${why} from the app`)), 2),
    );
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // The worker pool and open handles must not keep a root process alive. (No top-level await:
  // the app bundles this file as CommonJS.)
  void runElevatedWorker(process.argv.slice(2)).then((code) => process.exit(code));
}

// libgfapi (GlusterFS's client library, glusterfs-common / libgfapi0) through koffi: the calls
// QEMU 7.2's block/gluster.c makes, each run as a koffi async call on koffi's worker threads, so
// the blocking library never stalls the event loop (koffi keeps each async call's errno). The
// library is loaded on first use; where it is missing, one line says what to install. Signatures
// are those of <glusterfs/api/glfs.h> at the default symbol versions of GlusterFS >= 6 (GFAPI_6.0
// pread/pwrite/fsync/ftruncate take stat out-arguments, passed as NULL).
// A glfs_t is shared by every node of one volume, as QEMU's glfs_find_preopened does.

import { BlockError, fromSystemError, unsupported } from '../../errors.ts';
import { koffi } from '../../host/ffi.ts';
import { errnoError } from '../../host/errno.ts';
import { abandonNativeCall } from '../../util/abandoned-calls.ts';
import { checkedPort, type GlusterConfig } from './options.ts';

/** Opaque pointers from the library (glfs_t *, glfs_fd_t *). */
export type Ptr = unknown;

/** A call's result and the errno it left (koffi captures errno per call). */
export interface CallResult<T> {
  ret: T;
  errno: number;
}

/** An async-callable foreign function. */
interface AsyncFn {
  async(...args: unknown[]): void;
}

export interface Gfapi {
  new_(volume: string): Promise<CallResult<Ptr>>;
  setVolfileServer(fs: Ptr, transport: string, host: string, port: number): Promise<CallResult<number>>;
  setLogging(fs: Ptr, logfile: string, level: number): Promise<CallResult<number>>;
  init(fs: Ptr): Promise<CallResult<number>>;
  fini(fs: Ptr): Promise<CallResult<number>>;
  setXlatorOption(fs: Ptr, xlator: string, key: string, value: string): Promise<CallResult<number>>;
  open(fs: Ptr, path: string, flags: number): Promise<CallResult<Ptr>>;
  creat(fs: Ptr, path: string, flags: number, mode: number): Promise<CallResult<Ptr>>;
  close(fd: Ptr): Promise<CallResult<number>>;
  pread(fd: Ptr, buf: Buffer, count: number, offset: number): Promise<CallResult<number>>;
  pwrite(fd: Ptr, buf: Buffer, count: number, offset: number): Promise<CallResult<number>>;
  fsync(fd: Ptr): Promise<CallResult<number>>;
  ftruncate(fd: Ptr, length: number): Promise<CallResult<number>>;
  discard(fd: Ptr, offset: number, length: number): Promise<CallResult<number>>;
  zerofill(fd: Ptr, offset: number, length: number): Promise<CallResult<number>>;
  fallocate(fd: Ptr, keepSize: number, offset: number, length: number): Promise<CallResult<number>>;
  lseek(fd: Ptr, offset: number, whence: number): Promise<CallResult<number>>;
  /** st_blocks * 512 from glfs_fstat (QEMU's allocated file size). */
  allocated(fd: Ptr): Promise<CallResult<number>>;
}

/** The library's file name (the SONAME libgfapi0 installs), or another one from
 *  PLATTER_GFAPI_LIBRARY (a GlusterFS installed elsewhere). */
export const GFAPI_LIBRARY = process.env.PLATTER_GFAPI_LIBRARY || 'libgfapi.so.0';
/** The one line a user without libgfapi reads. */
export const GFAPI_MISSING = `GlusterFS support needs libgfapi (${GFAPI_LIBRARY}), which could not be loaded: install glusterfs-common (Debian, Ubuntu) or glusterfs-api (Fedora, RHEL)`;

/** Linux lseek whence values. */
export const SEEK_END = 2;
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;
/** Linux open flags. */
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_TRUNC = 0o1000;
export const O_DIRECT = 0o40000;
/** sizeof(struct stat) and the offset of st_blocks on Linux x86-64 and arm64 (asm-generic). */
const STAT_SIZE = 144;
const ST_BLOCKS = 64;

function call<T>(fn: AsyncFn, ...args: unknown[]): Promise<CallResult<T>> {
  const ffi = koffi();
  return new Promise((resolve, reject) => {
    fn.async(...args, (err: unknown, ret: T) => {
      if (err) reject(err instanceof Error ? err : new Error(String(err)));
      else resolve({ ret: typeof ret === 'bigint' ? (Number(ret) as T) : ret, errno: ffi.errno() });
    });
  });
}

let loaded: Gfapi | undefined;
let loadError: BlockError | undefined;

/** libgfapi, loaded on first use; Unsupported with GFAPI_MISSING where it cannot be. */
export function gfapi(): Gfapi {
  if (loaded) return loaded;
  if (loadError) throw loadError;
  let lib: ReturnType<ReturnType<typeof koffi>['load']>;
  try {
    if (process.platform === 'win32') throw new Error('no libgfapi on Windows');
    lib = koffi().load(GFAPI_LIBRARY);
  } catch (e) {
    loadError = unsupported(GFAPI_MISSING, { op: 'open' });
    (loadError as { cause?: unknown }).cause = e;
    throw loadError;
  }
  const f = (decl: string): AsyncFn => lib.func(decl) as unknown as AsyncFn;
  const glfsNew = f('void *glfs_new(const char *volname)');
  const setVolfileServer = f('int glfs_set_volfile_server(void *fs, const char *transport, const char *host, int port)');
  const setLogging = f('int glfs_set_logging(void *fs, const char *logfile, int loglevel)');
  const init = f('int glfs_init(void *fs)');
  const fini = f('int glfs_fini(void *fs)');
  const setXlatorOption = f('int glfs_set_xlator_option(void *fs, const char *xlator, const char *key, const char *value)');
  const open = f('void *glfs_open(void *fs, const char *path, int flags)');
  const creat = f('void *glfs_creat(void *fs, const char *path, int flags, uint32_t mode)');
  const close = f('int glfs_close(void *fd)');
  const pread = f('int64_t glfs_pread(void *fd, void *buf, size_t count, int64_t offset, int flags, void *poststat)');
  const pwrite = f('int64_t glfs_pwrite(void *fd, const void *buf, size_t count, int64_t offset, int flags, void *prestat, void *poststat)');
  const fsync = f('int glfs_fsync(void *fd, void *prestat, void *poststat)');
  const ftruncate = f('int glfs_ftruncate(void *fd, int64_t length, void *prestat, void *poststat)');
  const discard = f('int glfs_discard(void *fd, int64_t offset, size_t len)');
  const zerofill = f('int glfs_zerofill(void *fd, int64_t offset, int64_t len)');
  const fallocate = f('int glfs_fallocate(void *fd, int keep_size, int64_t offset, size_t len)');
  const lseek = f('int64_t glfs_lseek(void *fd, int64_t offset, int whence)');
  const fstat = f('int glfs_fstat(void *fd, void *buf)');
  loaded = {
    new_: (volume) => call(glfsNew, volume),
    setVolfileServer: (fs, transport, host, port) => call(setVolfileServer, fs, transport, host, port),
    setLogging: (fs, logfile, level) => call(setLogging, fs, logfile, level),
    init: (fs) => call(init, fs),
    fini: (fs) => call(fini, fs),
    setXlatorOption: (fs, xlator, key, value) => call(setXlatorOption, fs, xlator, key, value),
    open: (fs, path, flags) => call(open, fs, path, flags),
    creat: (fs, path, flags, mode) => call(creat, fs, path, flags, mode),
    close: (fd) => call(close, fd),
    pread: (fd, buf, count, offset) => call(pread, fd, buf, count, offset, 0, null),
    pwrite: (fd, buf, count, offset) => call(pwrite, fd, buf, count, offset, 0, null, null),
    fsync: (fd) => call(fsync, fd, null, null),
    ftruncate: (fd, length) => call(ftruncate, fd, length, null, null),
    discard: (fd, offset, length) => call(discard, fd, offset, length),
    zerofill: (fd, offset, length) => call(zerofill, fd, offset, length),
    fallocate: (fd, keepSize, offset, length) => call(fallocate, fd, keepSize, offset, length),
    lseek: (fd, offset, whence) => call(lseek, fd, offset, whence),
    allocated: async (fd) => {
      const st = Buffer.alloc(STAT_SIZE);
      const r = await call<number>(fstat, fd, st);
      return { ret: r.ret < 0 ? r.ret : Number(st.readBigInt64LE(ST_BLOCKS)) * 512, errno: r.errno };
    },
  };
  return loaded;
}

/** A failed call as a BlockError with strerror's text (QEMU's -errno). */
export function gfapiError(errno: number, op: string, path?: string): BlockError {
  return fromSystemError(errnoError(errno || 5, `glfs_${op}`), { op, ...(path !== undefined ? { path } : {}) });
}

/** How long glfs_init may take before the open gives up (a dead or firewalled server: libgfapi
 *  retries the volfile server for a long time). QEMU waits as long as the library does. */
export const GLUSTER_CONNECT_TIMEOUT_MS = Number(process.env.PLATTER_GLUSTER_TIMEOUT_MS ?? '') || 60_000;

interface Preopened {
  fs: Ptr;
  ref: number;
  ready: Promise<void>;
  /** Set while unused: glfs_fini runs when it fires, unless an open takes the handle again. */
  linger?: NodeJS.Timeout;
}

/** How long an unused glfs_t is kept for the next open of its volume in this process (create,
 *  then the open that formats the image, then convert's open). Each new glfs_t costs a volfile
 *  fetch and each glfs_fini ~10 s on GlusterFS 10; QEMU finishes it at once. */
const LINGER_MS = 1000;
/** One glfs_t per volume name, shared and reference counted (QEMU's glfs_list). */
const preopened = new Map<string, Preopened>();

/** QEMU's "Gluster connection ... failed to connect" and its hint naming every server. */
function connectError(cfg: GlusterConfig, detail?: string): BlockError {
  const where = cfg.servers.map((s) => (s.type === 'unix' ? `hint: failed on socket ${s.socket} ` : `hint: failed on host ${s.host} and port ${s.port} `)).join('');
  return new BlockError('Io', `Gluster connection for volume ${cfg.volume}, path ${cfg.path} failed to connect${detail ? ` (${detail})` : ''}`, { op: 'open' }, { hint: `${where}Please refer to gluster logs for more info\n` });
}

/**
 * The volume's glfs_t, connected (QEMU's qemu_gluster_glfs_init): reused when this process has
 * the volume open already, else made, pointed at every server, given the log settings and
 * initialised, within GLUSTER_CONNECT_TIMEOUT_MS.
 */
export async function glfsAcquire(cfg: GlusterConfig): Promise<Ptr> {
  const existing = preopened.get(cfg.volume);
  if (existing) {
    if (existing.linger) clearTimeout(existing.linger);
    delete existing.linger;
    existing.ref++;
    try {
      await existing.ready;
    } catch (e) {
      existing.ref--;
      throw e;
    }
    return existing.fs;
  }
  const api = gfapi();
  // The ports first: QEMU checks each before it connects.
  for (const s of cfg.servers) if (s.type === 'tcp') checkedPort(s);
  const made = await api.new_(cfg.volume);
  if (!made.ret) throw gfapiError(made.errno, 'new');
  const fs = made.ret;
  let settle!: { ok: () => void; fail: (e: unknown) => void };
  const ready = new Promise<void>((ok, fail) => (settle = { ok, fail }));
  ready.catch(() => {});
  const entry: Preopened = { fs, ref: 1, ready };
  preopened.set(cfg.volume, entry);
  try {
    for (const s of cfg.servers) {
      const r = s.type === 'unix' ? await api.setVolfileServer(fs, 'unix', s.socket, 0) : await api.setVolfileServer(fs, 'tcp', s.host, checkedPort(s));
      if (r.ret < 0) throw gfapiError(r.errno, 'set_volfile_server');
    }
    const lg = await api.setLogging(fs, cfg.logfile, cfg.debug);
    if (lg.ret < 0) throw gfapiError(lg.errno, 'set_logging');
    let timer: NodeJS.Timeout | undefined;
    const init = api.init(fs);
    const outcome = await Promise.race([
      init.then((r) => r.ret),
      new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), GLUSTER_CONNECT_TIMEOUT_MS);
        timer.unref?.();
      }),
    ]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      // The library call cannot be interrupted: release the handle once it returns.
      preopened.delete(cfg.volume);
      abandonNativeCall(init.then(() => api.fini(fs)).catch(() => {}));
      throw connectError(cfg, `no answer within ${Math.round(GLUSTER_CONNECT_TIMEOUT_MS / 1000)} s`);
    }
    if (outcome !== 0) throw connectError(cfg);
    // Keep write-behind's cache after a failed fsync so a retry can succeed (QEMU sets the same).
    const xo = await api.setXlatorOption(fs, '*-write-behind', 'resync-failed-syncs-after-fsync', 'on');
    if (xo.ret < 0) throw new BlockError('Io', `Unable to set xlator key/value pair: ${gfapiError(xo.errno, 'set_xlator_option').message}`, { op: 'open' });
    settle.ok();
    return fs;
  } catch (e) {
    settle.fail(e);
    if (preopened.get(cfg.volume) === entry) {
      preopened.delete(cfg.volume);
      if (!(e instanceof BlockError && / within \d+ s\)$/.test(e.message))) await api.fini(fs).catch(() => {});
    }
    throw e;
  }
}

/** Drop one reference to a volume's glfs_t; after the last one it is finished (glfs_fini)
 *  LINGER_MS later, unless an open of the volume takes it again first. */
export async function glfsRelease(fs: Ptr): Promise<void> {
  for (const [volume, entry] of preopened) {
    if (entry.fs !== fs) continue;
    if (--entry.ref > 0) return;
    entry.linger = setTimeout(() => {
      if (preopened.get(volume) !== entry || entry.ref > 0) return;
      preopened.delete(volume);
      void gfapi()
        .fini(fs)
        .catch(() => {});
    }, LINGER_MS);
    return;
  }
}

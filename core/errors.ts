// The one error type of Platter's core. Every failure a user can meet is a
// BlockError with a fixed kind, a message in qemu-img's words where users know them, and context
// {path, offset, op}. Errors are plain data across IPC (toJSON) and never carry secrets.

export type BlockErrorKind =
  | 'InvalidImage' // the bytes on disk break the format's rules
  | 'Unsupported' // valid, but a feature/option Platter (or the format) does not do
  | 'Corrupt' // metadata inconsistent in a way check/repair may fix
  | 'Locked' // another process holds a conflicting image lock
  | 'NotFound' // file, snapshot, secret, ... does not exist
  | 'Permission' // OS denied access, or the node was opened read-only
  | 'Cancelled' // an AbortSignal fired
  | 'InvalidArgument' // bad option, size, format name, ... from the caller
  | 'Io'; // an OS I/O error

/**
 * Stable codes for the failures callers act on (the CLI's exit statuses and extra lines, the
 * GUI's dialogs, the jobs' rewording): code matches code, never message text.
 */
export type BlockErrorCode =
  | 'WrongPassphrase' // no LUKS key slot opens with the passphrase given
  | 'LockHeld' // another process holds a conflicting image lock
  | 'NoCheck' // the format has no consistency check (qemu-img check exits 63)
  | 'ShrinkNeedsFlag' // a resize would shrink the image and --shrink was not given
  | 'BadSize' // a size argument qemu-img's cvtnum rejects
  | 'BackingLoop' // a backing chain refers back to itself
  | 'OpenFailed' // already worded "Could not open 'x': cause": no further prefix
  | 'ProtocolWorded' // a protocol's open failure QEMU words without the node's "Could not open
  | 'NoSpace' // the storage is full (ENOSPC): servers answer it as such (NBD_ENOSPC)
  | 'Worded' // already a whole "Could not <do> ..." sentence of qemu-img's: no further prefix
  | 'Usage'; // the command line is wrong (qemu-img's error_exit: exit status 1 in every command)

export interface BlockErrorContext {
  path?: string;
  offset?: number;
  op?: string;
  node?: string;
}

export class BlockError extends Error {
  readonly kind: BlockErrorKind;
  readonly context: BlockErrorContext;
  /** What qemu-img prints after some errors (e.g. the lock hint), verbatim: it ends its own
   *  line, or (as QEMU's "Detected format of X.") does not. Trim it to show it elsewhere. */
  readonly hint?: string;
  /** The errno QEMU's code returns for this failure ('EINVAL', 'EFBIG', ...), where qemu-img
   *  prints a number and strerror instead of a message (snapshot creation). */
  readonly errno?: ErrnoName;
  /** Errors QEMU reports on their own lines before this one (error_report inside the
   *  operation, then the operation's own failure): printed first, each as an error line. */
  readonly reportedBefore?: readonly string[];
  /** What the failure is, for callers that act on it (BlockErrorCode). */
  readonly code?: BlockErrorCode;

  constructor(kind: BlockErrorKind, message: string, context: BlockErrorContext = {}, options?: BlockErrorOptions) {
    super(redactSecrets(message), options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'BlockError';
    this.kind = kind;
    this.context = context.path !== undefined ? { ...context, path: redactSecrets(context.path) } : context;
    if (options?.hint !== undefined) this.hint = options.hint;
    if (options?.errno !== undefined) this.errno = options.errno;
    if (options?.reportedBefore !== undefined) this.reportedBefore = options.reportedBefore;
    if (options?.code !== undefined) this.code = options.code;
  }

  /** The optional parts (hint, errno, earlier reports, code), to build a reworded copy. */
  get extras(): Omit<BlockErrorOptions, 'cause'> {
    return { ...(this.hint !== undefined ? { hint: this.hint } : {}), ...(this.errno ? { errno: this.errno } : {}), ...(this.reportedBefore ? { reportedBefore: this.reportedBefore } : {}), ...(this.code ? { code: this.code } : {}) };
  }

  toJSON(): SerializedBlockError {
    return { name: this.name, kind: this.kind, message: this.message, context: this.context, ...this.extras };
  }

  /** A copy with more context (outer layers add the path they know). */
  withContext(extra: BlockErrorContext): BlockError {
    const e = new BlockError(this.kind, this.message, { ...extra, ...this.context }, { cause: this.cause, ...this.extras });
    e.stack = this.stack;
    return e;
  }

  /** The same failure in other words (an outer layer's prefix), keeping hint, errno and code
   *  unless `options` replaces them. */
  reworded(message: string, options: BlockErrorOptions = {}): BlockError {
    return new BlockError(this.kind, message, this.context, { cause: this, ...this.extras, ...options });
  }
}

export interface BlockErrorOptions {
  cause?: unknown;
  hint?: string;
  errno?: ErrnoName;
  reportedBefore?: readonly string[];
  code?: BlockErrorCode;
}

/** A BlockError as plain data (IPC, the WebSocket transport, job results). */
export interface SerializedBlockError {
  name: string;
  kind: BlockErrorKind;
  message: string;
  context: BlockErrorContext;
  hint?: string;
  errno?: ErrnoName;
  reportedBefore?: readonly string[];
  code?: BlockErrorCode;
}

/**
 * Text with every password a user may type taken out: the one in an iscsi:// or iser:// URL
 * ("iscsi://user%pw@h" becomes "iscsi://user@h"; libiscsi also takes ':' as the separator), a
 * `password=...` option ("driver=iscsi,...,password=pw") and a json: `"password": "..."`. Errors
 * and the CLI's output pass through this, so a typed password is never shown or logged.
 */
export function redactSecrets(text: string): string {
  if (!/password|:\/\//i.test(text)) return text;
  return text
    .replace(/\b(iscsi|iser):\/\/([^%:@/\s'"]*)[%:][^@\s'"]*@/gi, '$1://$2@')
    .replace(/("password"\s*:\s*)"(?:[^"\\]|\\.)*"/g, '$1"******"')
    .replace(/(^|[,\s'"])((?:[\w-]+\.)*password)=(?:[^,\s'"]|,,)*/g, '$1$2=******');
}

export const isBlockError = (e: unknown): e is BlockError => e instanceof BlockError;

/** Any failure as plain data for IPC, the WebSocket and job events: a BlockError as it is
 *  (kind, message, context, hint, code; never a stack or a secret), anything else as an Io error
 *  with its message. The one serializer of errors. */
export function serializeError(e: unknown): SerializedBlockError {
  if (e instanceof BlockError) return e.toJSON();
  const err = e as { name?: unknown; message?: unknown } | undefined;
  return { name: typeof err?.name === 'string' ? err.name : 'Error', kind: 'Io', message: typeof err?.message === 'string' ? err.message : String(e), context: {} };
}

/** Named constructors: one per kind, so call sites read as the failure they report. */
export const invalidImage = (message: string, context?: BlockErrorContext, options?: BlockErrorOptions) => new BlockError('InvalidImage', message, context, options);
export const unsupported = (message: string, context?: BlockErrorContext, options?: BlockErrorOptions) => new BlockError('Unsupported', message, context, options);
export const corrupt = (message: string, context?: BlockErrorContext, options?: BlockErrorOptions) => new BlockError('Corrupt', message, context, options);
export const notFound = (message: string, context?: BlockErrorContext, options?: BlockErrorOptions) => new BlockError('NotFound', message, context, options);
export const invalidArgument = (message: string, context?: BlockErrorContext, options?: BlockErrorOptions) => new BlockError('InvalidArgument', message, context, options);
export const cancelled = (context?: BlockErrorContext) => new BlockError('Cancelled', 'Operation cancelled', context);

/** Throw Cancelled if the signal fired; call between units of work. */
export function throwIfAborted(signal: AbortSignal | undefined, context?: BlockErrorContext): void {
  if (signal?.aborted) throw cancelled(context);
}

/** Turn a Node/OS error into a BlockError with the errno text qemu-img would print. */
export function fromSystemError(err: unknown, context: BlockErrorContext): BlockError {
  if (err instanceof BlockError) return err.withContext(context);
  const e = err as NodeJS.ErrnoException;
  const code = e?.code;
  // An errno this OS has no name for reads as glibc's strerror shows it.
  const unnamed = code ? /^E(\d+)$/.exec(code) : null;
  const text = code ? (SYSTEM_ERROR_TEXT[code] ?? (unnamed ? `Unknown error ${unnamed[1]}` : e.message)) : String(e?.message ?? err);
  const kind: BlockErrorKind =
    code === 'ENOENT' ? 'NotFound' : code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? 'Permission' : code === 'EAGAIN' ? 'Locked' : 'Io';
  return new BlockError(kind, text, context, { cause: err, ...(code === 'ENOSPC' ? { code: 'NoSpace' as const } : {}) });
}

/** Linux errno numbers of the errors QEMU reports as "-N (text)". */
export const ERRNO_NUMBER = { EIO: 5, EAGAIN: 11, EINVAL: 22, EFBIG: 27, ENOSPC: 28 } as const;
export type ErrnoName = keyof typeof ERRNO_NUMBER;

/** strerror() of an errno QEMU reports ("Invalid argument"). */
export function strerror(name: ErrnoName): string {
  return SYSTEM_ERROR_TEXT[name]!;
}

/** "-22 (Invalid argument)": how qemu-img prints a bare error code. */
export function errnoText(name: ErrnoName): string {
  return `-${ERRNO_NUMBER[name]} (${SYSTEM_ERROR_TEXT[name]})`;
}

/** strerror() texts (glibc's, by errno name), as QEMU prints them after "Could not open 'x': "
 *  or for an errno a blkdebug rule injects. */
const SYSTEM_ERROR_TEXT: Record<string, string> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  ESRCH: 'No such process',
  EINTR: 'Interrupted system call',
  EIO: 'Input/output error',
  ENXIO: 'No such device or address',
  E2BIG: 'Argument list too long',
  ENOEXEC: 'Exec format error',
  EBADF: 'Bad file descriptor',
  ECHILD: 'No child processes',
  EAGAIN: 'Resource temporarily unavailable',
  EWOULDBLOCK: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EFAULT: 'Bad address',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  EXDEV: 'Invalid cross-device link',
  ENODEV: 'No such device',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EINVAL: 'Invalid argument',
  ENFILE: 'Too many open files in system',
  EMFILE: 'Too many open files',
  ENOTTY: 'Inappropriate ioctl for device',
  ETXTBSY: 'Text file busy',
  EFBIG: 'File too large',
  ENOSPC: 'No space left on device',
  ESPIPE: 'Illegal seek',
  EROFS: 'Read-only file system',
  EMLINK: 'Too many links',
  EPIPE: 'Broken pipe',
  EDOM: 'Numerical argument out of domain',
  ERANGE: 'Numerical result out of range',
  EDEADLK: 'Resource deadlock avoided',
  ENAMETOOLONG: 'File name too long',
  ENOLCK: 'No locks available',
  ENOSYS: 'Function not implemented',
  ENOTEMPTY: 'Directory not empty',
  ELOOP: 'Too many levels of symbolic links',
  ENOMSG: 'No message of desired type',
  EIDRM: 'Identifier removed',
  ENOSTR: 'Device not a stream',
  ENODATA: 'No data available',
  ETIME: 'Timer expired',
  ENOSR: 'Out of streams resources',
  ENOLINK: 'Link has been severed',
  EPROTO: 'Protocol error',
  EMULTIHOP: 'Multihop attempted',
  EBADMSG: 'Bad message',
  EOVERFLOW: 'Value too large for defined data type',
  EILSEQ: 'Invalid or incomplete multibyte or wide character',
  ENOTSOCK: 'Socket operation on non-socket',
  EDESTADDRREQ: 'Destination address required',
  EMSGSIZE: 'Message too long',
  EPROTOTYPE: 'Protocol wrong type for socket',
  ENOPROTOOPT: 'Protocol not available',
  EPROTONOSUPPORT: 'Protocol not supported',
  ENOTSUP: 'Operation not supported',
  EOPNOTSUPP: 'Operation not supported',
  EAFNOSUPPORT: 'Address family not supported by protocol',
  EADDRINUSE: 'Address already in use',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  ENETDOWN: 'Network is down',
  ENETUNREACH: 'Network is unreachable',
  ENETRESET: 'Network dropped connection on reset',
  ECONNABORTED: 'Software caused connection abort',
  ECONNRESET: 'Connection reset by peer',
  ENOBUFS: 'No buffer space available',
  EISCONN: 'Transport endpoint is already connected',
  ENOTCONN: 'Transport endpoint is not connected',
  ETIMEDOUT: 'Connection timed out',
  ECONNREFUSED: 'Connection refused',
  EHOSTUNREACH: 'No route to host',
  EALREADY: 'Operation already in progress',
  EINPROGRESS: 'Operation now in progress',
  ESTALE: 'Stale file handle',
  EDQUOT: 'Disk quota exceeded',
  ECANCELED: 'Operation canceled',
  // Linux errnos libuv has no name for.
  ENOMEDIUM: 'No medium found',
  EMEDIUMTYPE: 'Wrong medium type',
};

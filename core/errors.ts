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

  constructor(kind: BlockErrorKind, message: string, context: BlockErrorContext = {}, options?: { cause?: unknown; hint?: string; errno?: ErrnoName; reportedBefore?: readonly string[] }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'BlockError';
    this.kind = kind;
    this.context = context;
    if (options?.hint !== undefined) this.hint = options.hint;
    if (options?.errno !== undefined) this.errno = options.errno;
    if (options?.reportedBefore !== undefined) this.reportedBefore = options.reportedBefore;
  }

  toJSON(): { name: string; kind: BlockErrorKind; message: string; context: BlockErrorContext; hint?: string; errno?: ErrnoName; reportedBefore?: readonly string[] } {
    return { name: this.name, kind: this.kind, message: this.message, context: this.context, ...(this.hint ? { hint: this.hint } : {}), ...(this.errno ? { errno: this.errno } : {}), ...(this.reportedBefore ? { reportedBefore: this.reportedBefore } : {}) };
  }

  /** A copy with more context (outer layers add the path they know). */
  withContext(extra: BlockErrorContext): BlockError {
    const e = new BlockError(this.kind, this.message, { ...extra, ...this.context }, { cause: this.cause, ...(this.hint ? { hint: this.hint } : {}), ...(this.errno ? { errno: this.errno } : {}), ...(this.reportedBefore ? { reportedBefore: this.reportedBefore } : {}) });
    e.stack = this.stack;
    return e;
  }
}

export const isBlockError = (e: unknown): e is BlockError => e instanceof BlockError;

/** Named constructors: one per kind, so call sites read as the failure they report. */
export const invalidImage = (message: string, context?: BlockErrorContext) => new BlockError('InvalidImage', message, context);
export const unsupported = (message: string, context?: BlockErrorContext) => new BlockError('Unsupported', message, context);
export const corrupt = (message: string, context?: BlockErrorContext) => new BlockError('Corrupt', message, context);
export const notFound = (message: string, context?: BlockErrorContext) => new BlockError('NotFound', message, context);
export const invalidArgument = (message: string, context?: BlockErrorContext) => new BlockError('InvalidArgument', message, context);
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
  const text = code ? (SYSTEM_ERROR_TEXT[code] ?? e.message) : String(e?.message ?? err);
  const kind: BlockErrorKind =
    code === 'ENOENT' ? 'NotFound' : code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? 'Permission' : code === 'EAGAIN' ? 'Locked' : 'Io';
  return new BlockError(kind, text, context, { cause: err });
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

/** strerror() texts, as QEMU prints them after "Could not open 'x': ". */
const SYSTEM_ERROR_TEXT: Record<string, string> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  EISDIR: 'Is a directory',
  EROFS: 'Read-only file system',
  ENOSPC: 'No space left on device',
  EIO: 'Input/output error',
  EINVAL: 'Invalid argument',
  EFBIG: 'File too large',
  ENOTDIR: 'Not a directory',
  EBUSY: 'Device or resource busy',
  ENOMEDIUM: 'No medium found',
  EAGAIN: 'Resource temporarily unavailable',
  ENOTSUP: 'Operation not supported',
  EOPNOTSUPP: 'Operation not supported',
};

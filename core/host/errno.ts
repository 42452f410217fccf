// errno numbers from FFI calls turned into Node-style system errors (code, errno, syscall), so
// core/errors.ts fromSystemError maps them to BlockError kinds and strerror texts as for fs calls.
import { constants as osConstants } from 'node:os';

/** Linux errnos libuv (os.constants.errno) leaves out, with their names. */
const LINUX_EXTRA_ERRNOS: Record<number, string> = { 123: 'ENOMEDIUM', 124: 'EMEDIUMTYPE' };

const ERRNO_NAMES = new Map<number, string>([
  ...(process.platform === 'linux' ? Object.entries(LINUX_EXTRA_ERRNOS).map(([v, k]) => [Number(v), k] as [number, string]) : []),
  ...Object.entries(osConstants.errno).map(([k, v]) => [v, k] as [number, string]),
]);

/** An Error shaped like Node's system errors for `errno` (this OS's numbering). */
export function errnoError(errno: number, syscall: string): NodeJS.ErrnoException {
  const code = ERRNO_NAMES.get(errno) ?? `E${errno}`;
  const err: NodeJS.ErrnoException = new Error(`${syscall} failed: ${code}`);
  err.code = code;
  err.errno = -errno;
  err.syscall = syscall;
  return err;
}

// Native calls given up on: a library call that cannot be interrupted (libgfapi's glfs_init on a
// server that accepts connections and never answers) keeps the process alive until it returns,
// which may be never. The command line's entry points exit at once when such a call is pending
// and the command is done; the app keeps running and the call finishes or not in the background.

import { koffi } from '../host/ffi.ts';

let pending = 0;

/** Record a call whose result nobody waits for any more. */
export function abandonNativeCall(call: Promise<unknown>): void {
  pending++;
  call.then(
    () => pending--,
    () => pending--,
  );
}

/** How many abandoned calls have not returned yet. */
export function abandonedNativeCalls(): number {
  return pending;
}

/**
 * End the process now with `code`, skipping the C library's exit handlers: a process with such a
 * call pending cannot exit normally (libgfapi's exit-time cleanup waits for it, and so do exit()
 * and process.exit). Standard output and error are written synchronously on Linux and macOS
 * (files and pipes), so nothing printed is lost.
 */
export function exitSkippingHandlers(code: number): never {
  if (process.platform !== 'win32') {
    try {
      const libc = koffi().load(process.platform === 'darwin' ? '/usr/lib/libSystem.B.dylib' : 'libc.so.6');
      const exit = libc.func('void _exit(int status)') as unknown as (status: number) => void;
      exit(code);
    } catch {
      // fall through
    }
  }
  process.exit(code);
}

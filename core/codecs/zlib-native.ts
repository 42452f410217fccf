// zlib's uncompress(3) through koffi: one whole zlib stream inflated straight into the caller's
// buffer, as a koffi async call on libuv's thread pool. node:zlib cannot write into a given
// buffer: every stream it inflates lands in a fresh allocation (page faults and zeroing for each
// MiB) that is then copied, which cost four times the inflating itself for a dmg of hdiutil's
// 1 MiB chunks. The zlib is the process's own where its binary exports one (Node's does: the
// Chromium zlib behind node:zlib, with its SIMD inflate), else the system's (libz.so.1 bound with
// RTLD_DEEPBIND, so its own calls stay inside it; libz.1.dylib on macOS). Where neither loads
// (Windows ships no zlib; koffi may be missing) `nativeZlib()` is undefined and callers use
// node:zlib.
import { koffi } from '../host/ffi.ts';

/** zlib.h's Z_OK. */
const Z_OK = 0;
/** Calls handed to koffi at once; the rest wait here. koffi keeps 8 calls' stacks resident
 *  (allocating for more) and throws past 256 queued; 8 keep a pool of up to 4 threads busy. */
const IN_FLIGHT = 8;
/** Where uncompress is looked for, in order; null is this process's own binary. */
const LIBRARIES: Partial<Record<NodeJS.Platform, (string | null)[]>> = {
  linux: [null, 'libz.so.1'],
  darwin: [null, '/usr/lib/libz.1.dylib'],
  win32: [null],
};
const UNCOMPRESS = 'int uncompress(uint8_t *dest, void *destLen, const uint8_t *source, unsigned long sourceLen)';

interface AsyncFn {
  async(...args: unknown[]): void;
}

export interface NativeZlib {
  /**
   * uncompress(3) of `data` into `into`: resolves with the number of bytes written, or with
   * zlib's negative return code (Z_DATA_ERROR; Z_BUF_ERROR when the output does not fit or the
   * stream is cut off). Bytes after the stream's end are ignored. The caller owns both buffers
   * and must not touch them until the promise settles.
   */
  uncompressInto(data: Uint8Array, into: Uint8Array): Promise<number>;
}

let loaded: NativeZlib | null | undefined;

/** A zlib's uncompress, loaded on first use; undefined where none can be (then: node:zlib). */
export function nativeZlib(): NativeZlib | undefined {
  if (loaded === undefined) loaded = load() ?? null;
  return loaded ?? undefined;
}

function load(): NativeZlib | undefined {
  try {
    const ffi = koffi();
    // destLen is an in/out unsigned long: a cell of our own in the host's size and byte order.
    const ulong = ffi.sizeof('unsigned long');
    const cell = ulong === 8 ? (n: number) => new BigUint64Array([BigInt(n)]) : ulong === 4 ? (n: number) => new Uint32Array([n]) : undefined;
    if (!cell) return undefined;
    for (const path of LIBRARIES[process.platform] ?? []) {
      let fn: AsyncFn;
      try {
        fn = ffi.load(path, { deep: path !== null }).func(UNCOMPRESS) as unknown as AsyncFn;
      } catch {
        continue; // Not exported there, or no such library: the next.
      }
      return limited((data, into) => {
        const destLen = cell(into.length);
        return new Promise((resolve, reject) => {
          fn.async(into, Buffer.from(destLen.buffer), data, data.length, (err: unknown, ret: number) => {
            if (err) reject(err instanceof Error ? err : new Error(String(err)));
            else resolve(ret === Z_OK ? Number(destLen[0]) : Math.min(ret, -1));
          });
        });
      });
    }
  } catch {
    // No koffi here.
  }
  return undefined;
}

/** At most IN_FLIGHT calls at once; a finished call hands its place to the next one waiting. */
function limited(call: NativeZlib['uncompressInto']): NativeZlib {
  let running = 0;
  const waiting: (() => void)[] = [];
  return {
    async uncompressInto(data, into) {
      if (running < IN_FLIGHT) running++;
      else await new Promise<void>((go) => waiting.push(go));
      try {
        return await call(data, into);
      } finally {
        const next = waiting.shift();
        if (next) next();
        else running--;
      }
    },
  };
}

// Image locking, bit-compatible with QEMU 7.2 file-posix (block/file-posix.c raw_apply_lock_bytes,
// raw_check_lock_bytes, raw_handle_perm_lock; docs/system/qemu-block-drivers "Image locking").
//
// The protocol, as QEMU and Platter both run it on the image file itself:
//   - for each permission bit i the node HOLDS, a shared (read) lock on byte 100 + i;
//   - for each permission bit i the node does NOT SHARE, a shared (read) lock on byte 200 + i;
//   - after taking its bytes, an opener tests (F_OFD_GETLK with a write lock) that nobody else
//     holds byte 200 + i for a bit it wants ('Failed to get "write" lock'), nor byte 100 + i for a
//     bit it refuses to share ('Failed to get shared "write" lock'), and backs out on conflict.
// Bits (include/block/block-common.h, BLK_PERM_*; QEMU 7.2 has four, "graph-mod" is gone):
// consistent read 0x1, write 0x2, write unchanged 0x4, resize 0x8, so bytes 100-103 and 200-203.
// Locks are open-file-description locks where the kernel has them (Linux >= 3.15), otherwise
// POSIX process locks (locking=on only, with QEMU's warning; locking=auto then takes none).
import { BlockError } from '../../errors.ts';
import { PERM_ALL } from '../../block/types.ts';
import { permName } from '../../block/permissions.ts';
import { hostOps, type HostOps } from '../../host/index.ts';

export type LockingMode = 'on' | 'off' | 'auto';

/** First byte of the "permission held" locks (RAW_LOCK_PERM_BASE). */
export const LOCK_PERM_BASE = 100;
/** First byte of the "permission not shared" locks (RAW_LOCK_SHARED_BASE). */
export const LOCK_SHARED_BASE = 200;
/** Number of permission bits QEMU 7.2 encodes (BLK_PERM_ALL = 0xf). */
export const LOCK_PERM_BITS = 4;

/** QEMU's warning when locking=on must use POSIX locks (raw_open_common). */
export const POSIX_LOCK_WARNING =
  'warning: File lock requested but OFD locking syscall is unavailable, falling back to POSIX file locks\n' +
  'Due to the implementation, locks can be lost unexpectedly.';

/** The second line qemu-img prints under a lock conflict. */
export function lockHint(filename: string): string {
  return `Is another process using the image [${filename}]?\n`;
}

/** Bytes to lock for a (perm, shared) pair, in QEMU's order: held bits, then unshared bits. */
export function lockBytesFor(perm: number, shared: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < LOCK_PERM_BITS; i++) if (perm & (1 << i)) out.push(LOCK_PERM_BASE + i);
  for (let i = 0; i < LOCK_PERM_BITS; i++) if (~shared & PERM_ALL & (1 << i)) out.push(LOCK_SHARED_BASE + i);
  return out;
}

function lockedError(message: string, filename: string, cause?: unknown): BlockError {
  return new BlockError('Locked', message, { path: filename, op: 'lock' }, { hint: lockHint(filename), code: 'LockHeld', ...(cause !== undefined ? { cause } : {}) });
}

/** The lock bytes one open file holds; `update` moves between permission sets as QEMU's
 *  raw_handle_perm_lock does (prepare: add new bytes and test; commit: drop old bytes). */
export class FileLock {
  readonly #fd: number;
  readonly #name: string;
  readonly #ofd: boolean;
  readonly #host: HostOps;
  #held = new Set<number>();
  #perm = 0;
  #shared = PERM_ALL;

  private constructor(fd: number, name: string, ofd: boolean, host: HostOps) {
    this.#fd = fd;
    this.#name = name;
    this.#ofd = ofd;
    this.#host = host;
  }

  /**
   * Take the lock bytes for (perm, shared) on `fd` and check nobody conflicts. Returns undefined
   * when locking is off (or impossible here). Throws BlockError 'Locked' on conflict, with
   * QEMU's message ('Failed to get "write" lock') and hint.
   */
  static acquire(fd: number, name: string, mode: LockingMode, perm: number, shared: number, warn: (m: string) => void, host: HostOps = hostOps()): FileLock | undefined {
    const ofd = FileLock.useOfd(mode, host, warn);
    if (ofd === undefined) return undefined;
    const lock = new FileLock(fd, name, ofd, host);
    lock.update(perm, shared);
    return lock;
  }

  /** Whether to lock and how: true = OFD, false = POSIX, undefined = no locking. */
  static useOfd(mode: LockingMode, host: HostOps, warn: (m: string) => void): boolean | undefined {
    if (mode === 'off' || !host.locksSupported) return undefined;
    if (host.ofdLocksSupported) return true;
    if (mode === 'auto') return undefined; // QEMU: locking=auto uses locks only when OFD exists
    warn(POSIX_LOCK_WARNING);
    return false;
  }

  /** The bytes currently locked (sorted), for tests and diagnostics. */
  get bytes(): number[] {
    return [...this.#held].sort((a, b) => a - b);
  }

  get ofd(): boolean {
    return this.#ofd;
  }

  /** Move to a new permission pair: take the extra bytes, test for conflicts, then drop the
   *  bytes no longer needed. On conflict the previous state is restored and 'Locked' thrown. */
  update(perm: number, shared: number): void {
    const want = lockBytesFor(perm, shared);
    const union = new Set([...this.#held, ...want]);
    if (this.#host.testSeesOwnLocks) {
      // (Windows) our own locks would look like conflicts, so test before taking them. A later
      // update that re-tests a byte this handle already holds would see itself: on Windows only
      // the first acquire is exact (nothing calls update there today).
      this.#check(perm, shared);
      this.#apply(union);
    } else {
      try {
        this.#apply(union);
        this.#check(perm, shared);
      } catch (e) {
        this.#apply(new Set(lockBytesFor(this.#perm, this.#shared)));
        throw e;
      }
    }
    this.#apply(new Set(want));
    this.#perm = perm;
    this.#shared = shared;
  }

  /** Lock exactly `bytes` (unlocking the others held). */
  #apply(bytes: Set<number>): void {
    for (const b of [...bytes].sort((x, y) => x - y)) {
      if (this.#held.has(b)) continue;
      let ok: boolean;
      try {
        ok = this.#host.setLock(this.#fd, b, 1, 'read', this.#ofd);
      } catch (e) {
        throw lockedError(`Failed to lock byte ${b}`, this.#name, e);
      }
      if (!ok) throw lockedError(`Failed to lock byte ${b}`, this.#name);
      this.#held.add(b);
    }
    for (const b of [...this.#held]) {
      if (bytes.has(b)) continue;
      this.#host.setLock(this.#fd, b, 1, 'unlock', this.#ofd);
      this.#held.delete(b);
    }
  }

  /** QEMU's raw_check_lock_bytes: wanted bits against others' "unshared" bytes, then unshared
   *  bits against others' "held" bytes. */
  #check(perm: number, shared: number): void {
    for (let i = 0; i < LOCK_PERM_BITS; i++) {
      const bit = 1 << i;
      if (perm & bit && this.#conflicts(LOCK_SHARED_BASE + i)) {
        throw lockedError(`Failed to get "${permName(bit)}" lock`, this.#name);
      }
    }
    for (let i = 0; i < LOCK_PERM_BITS; i++) {
      const bit = 1 << i;
      if (!(shared & bit) && this.#conflicts(LOCK_PERM_BASE + i)) {
        throw lockedError(`Failed to get shared "${permName(bit)}" lock`, this.#name);
      }
    }
  }

  #conflicts(byte: number): boolean {
    try {
      return this.#host.testLock(this.#fd, byte, 1, 'write', this.#ofd);
    } catch (e) {
      throw lockedError(`Failed to test lock byte ${byte}`, this.#name, e);
    }
  }

  /** Drop every byte (closing the fd would too, but the node may close later than it unlocks). */
  release(): void {
    for (const b of this.#held) {
      try {
        this.#host.setLock(this.#fd, b, 1, 'unlock', this.#ofd);
      } catch {
        // closing the fd releases it anyway
      }
    }
    this.#held.clear();
  }
}

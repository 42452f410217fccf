// Image locking compatible with QEMU's file-posix (raw_apply_lock_bytes / raw_check_lock_bytes).
// PLACEHOLDER: takes no locks yet; the locking work replaces this with the byte-range protocol.
export type LockingMode = 'on' | 'off' | 'auto';

export class FileLock {
  static acquire(_fd: number, _name: string, _mode: LockingMode, _perm: number, _shared: number, _warn: (m: string) => void): FileLock | undefined {
    return undefined;
  }

  release(): void {}
}

// The lock-byte protocol of core/protocols/file/lock.ts and the permission rules feeding it
// (core/block/permissions.ts): which bytes each (perm, shared) pair locks, the root/storage/
// backing rules of QEMU 7.2, the locking=on|off|auto choice between OFD and POSIX locks (with
// QEMU's warning), and that probing a format takes no locks before the real ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, closeSync, writeFileSync, readFileSync, statSync } from 'node:fs';
import { FileLock, lockBytesFor, POSIX_LOCK_WARNING } from '../../core/protocols/file/lock.ts';
import { backingChildPerms, filterChildPerms, rootPerms, storageChildPerms } from '../../core/block/permissions.ts';
import { PERM_ALL, PERM_CONSISTENT_READ, PERM_RESIZE, PERM_WRITE, PERM_WRITE_UNCHANGED } from '../../core/block/types.ts';
import { openImage } from '../../core/drivers/open.ts';
import { hostOps } from '../../core/host/index.ts';
import { BlockError } from '../../core/errors.ts';
import { tempDir } from '../helpers/qemu.ts';

const SKIP_NOT_LINUX = process.platform === 'linux' ? false : 'needs Linux /proc/locks';
const CR = PERM_CONSISTENT_READ;
const W = PERM_WRITE;
const WU = PERM_WRITE_UNCHANGED;
const R = PERM_RESIZE;

/** Lock bytes on `path` in /proc/locks, with the lock kind (OFDLCK or POSIX). */
function procLocks(path: string): { kind: string; byte: number }[] {
  const ino = String(statSync(path).ino);
  const out: { kind: string; byte: number }[] = [];
  for (const line of readFileSync('/proc/locks', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || f[1] === '->' || f[5]!.split(':')[2] !== ino) continue;
    for (let b = Number(f[6]); b <= Number(f[7]); b++) out.push({ kind: f[1]!, byte: b });
  }
  return out.sort((a, b) => a.byte - b.byte);
}

test('lock bytes: 100 + bit for each held permission, 200 + bit for each one not shared', () => {
  assert.deepEqual(lockBytesFor(CR, PERM_ALL), [100]);
  assert.deepEqual(lockBytesFor(CR | W, PERM_ALL), [100, 101]);
  assert.deepEqual(lockBytesFor(CR | W | R, CR | WU), [100, 101, 103, 201, 203]);
  assert.deepEqual(lockBytesFor(0, 0), [200, 201, 202, 203]);
  assert.deepEqual(lockBytesFor(PERM_ALL, PERM_ALL), [100, 101, 102, 103]);
});

test('QEMU 7.2 permission rules: raw passes the root through, a format child unshares write and resize', () => {
  // qemu-io / qemu-img info share everything; read-write Platter opens share only reads.
  assert.deepEqual(rootPerms(true, false), { perm: CR, shared: PERM_ALL });
  assert.deepEqual(rootPerms(false, false), { perm: CR | W, shared: CR | WU });
  assert.deepEqual(rootPerms(false, false, 0, false), { perm: CR | W, shared: PERM_ALL });
  assert.deepEqual(rootPerms(false, false, R, false), { perm: CR | W | R, shared: PERM_ALL }, 'qemu-img resize');
  assert.deepEqual(rootPerms(true, true, 0, true), { perm: CR, shared: PERM_ALL }, '-U wins');
  assert.deepEqual(filterChildPerms(rootPerms(true, false, 0, true)), { perm: CR, shared: CR | WU }, 'convert source');
  assert.deepEqual(storageChildPerms(rootPerms(false, false, 0, false), true, false), { perm: CR | W | R, shared: CR | WU });
  assert.deepEqual(storageChildPerms(rootPerms(true, false), false, false), { perm: CR, shared: CR | WU });
  assert.deepEqual(storageChildPerms(rootPerms(true, true), false, true), { perm: CR, shared: PERM_ALL });
  // A backing file: read only; writers tolerated when the overlay's user tolerates them.
  assert.deepEqual(backingChildPerms(rootPerms(false, false, 0, false)), { perm: CR, shared: PERM_ALL });
  assert.deepEqual(backingChildPerms(rootPerms(false, false)), { perm: CR, shared: CR | WU });
});

test('locking=on without OFD locks falls back to POSIX locks with QEMU\'s warning; auto then takes none', { skip: SKIP_NOT_LINUX }, () => {
  const t = tempDir();
  const p = t.path('posix.img');
  writeFileSync(p, Buffer.alloc(4096));
  const fd = openSync(p, 'r+');
  const noOfd = { ...hostOps(), ofdLocksSupported: false };
  const warnings: string[] = [];
  try {
    assert.equal(FileLock.acquire(fd, p, 'auto', CR | W, PERM_ALL, (m) => warnings.push(m), noOfd), undefined);
    assert.equal(warnings.length, 0);
    const lock = FileLock.acquire(fd, p, 'on', CR | W, PERM_ALL, (m) => warnings.push(m), noOfd)!;
    assert.deepEqual(warnings, [POSIX_LOCK_WARNING]);
    assert.equal(lock.ofd, false);
    assert.deepEqual(procLocks(p), [{ kind: 'POSIX', byte: 100 }, { kind: 'POSIX', byte: 101 }]);
    lock.release();
    assert.deepEqual(procLocks(p), []);
    assert.equal(FileLock.acquire(fd, p, 'off', CR | W, PERM_ALL, () => {}), undefined);
  } finally {
    closeSync(fd);
    t.cleanup();
  }
});

test('update moves between permission sets, and a refused update keeps the old bytes', { skip: SKIP_NOT_LINUX }, () => {
  const t = tempDir();
  const p = t.path('u.img');
  writeFileSync(p, Buffer.alloc(4096));
  const a = openSync(p, 'r+');
  const b = openSync(p, 'r+');
  try {
    const mine = FileLock.acquire(a, p, 'auto', CR, PERM_ALL, () => {})!;
    const other = FileLock.acquire(b, p, 'auto', CR, PERM_ALL & ~R, () => {})!; // refuses resize
    assert.deepEqual(other.bytes, [100, 203]);
    mine.update(CR | W, PERM_ALL);
    assert.deepEqual(mine.bytes, [100, 101]);
    assert.throws(() => mine.update(CR | W | R, PERM_ALL), (e: BlockError) => e.kind === 'Locked' && e.message === 'Failed to get "resize" lock');
    assert.deepEqual(mine.bytes, [100, 101], 'rolled back');
    other.release();
    mine.update(CR | W | R, CR);
    assert.deepEqual(mine.bytes, [100, 101, 103, 201, 202, 203]);
    mine.release();
  } finally {
    closeSync(a);
    closeSync(b);
    t.cleanup();
  }
});

test('opening a raw image by probing holds only the final raw bytes, not the probe\'s', { skip: SKIP_NOT_LINUX }, async () => {
  const t = tempDir();
  const p = t.path('probe.img');
  writeFileSync(p, Buffer.alloc(65536));
  try {
    const rw = await openImage(p, { warn: () => {} });
    assert.deepEqual(procLocks(p).map((x) => x.byte), [100, 101, 201, 203]);
    await rw.close();
    const ro = await openImage(p, { readOnly: true, warn: () => {} });
    assert.deepEqual(procLocks(p).map((x) => x.byte), [100]);
    await ro.close();
    assert.deepEqual(procLocks(p), []);
  } finally {
    t.cleanup();
  }
});

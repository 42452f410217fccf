// The Linux host layer (core/host/linux.ts) against the real kernel: SEEK_DATA/SEEK_HOLE,
// fallocate punch-hole / zero-range, posix_fallocate (allocated size read from stat blocks, as du
// does), OFD and POSIX byte-range locks and their struct flock layout, block device queries on a
// regular file, aligned buffers for O_DIRECT, and SCHED_BATCH for helper threads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, closeSync, writeSync, readFileSync, fstatSync, ftruncateSync, readdirSync, existsSync } from 'node:fs';
import { hostOps, alignedBuffer, isAligned } from '../../core/host/index.ts';
import { encodeFlock, decodeFlockType, FLOCK_SIZE, F_WRLCK, F_UNLCK } from '../../core/host/flock.ts';
import { spawnSync } from 'node:child_process';
import { tempDir } from '../helpers/qemu.ts';

const SKIP_NOT_LINUX = process.platform === 'linux' ? false : 'Linux-only host operations';
const MiB = 1 << 20;
/** st_blocks counts 512-byte units (stat(2)). */
const STAT_BLOCK = 512;

function allocatedBytes(fd: number): number {
  return fstatSync(fd).blocks * STAT_BLOCK;
}

/** A file of `size` bytes with 1 MiB of 0xAA at `dataAt`, the rest a hole. */
function sparseFile(path: string, size: number, dataAt: number): number {
  const fd = openSync(path, 'w+');
  ftruncateSync(fd, size);
  writeSync(fd, Buffer.alloc(MiB, 0xaa), 0, MiB, dataAt);
  return fd;
}

test('struct flock is encoded with the Linux LP64 layout (type@0, whence@2, start@8, len@16)', () => {
  const b = encodeFlock(F_WRLCK, 0x1234, 7);
  assert.equal(b.length, FLOCK_SIZE);
  assert.equal(b.readInt16LE(0), F_WRLCK);
  assert.equal(b.readInt16LE(2), 0);
  assert.equal(b.readBigInt64LE(8), 0x1234n);
  assert.equal(b.readBigInt64LE(16), 7n);
  assert.equal(b.readInt32LE(24), 0, 'l_pid must be 0 for OFD commands');
  assert.equal(decodeFlockType(encodeFlock(F_UNLCK, 0, 1)), F_UNLCK);
});

test('SEEK_DATA and SEEK_HOLE find a data run in a sparse file, -1 past the last data', { skip: SKIP_NOT_LINUX }, () => {
  const t = tempDir();
  const fd = sparseFile(t.path('s'), 8 * MiB, 4 * MiB);
  try {
    const h = hostOps();
    assert.equal(h.seekData(fd, 0), 4 * MiB);
    assert.equal(h.seekHole(fd, 4 * MiB), 5 * MiB);
    assert.equal(h.seekData(fd, 5 * MiB), -1, 'trailing hole: ENXIO');
    assert.equal(h.seekHole(fd, 6 * MiB), 6 * MiB);
  } finally {
    closeSync(fd);
    t.cleanup();
  }
});

test('punchHole deallocates the range, keeps the size, and the range reads as zeros', { skip: SKIP_NOT_LINUX }, async () => {
  const t = tempDir();
  const fd = sparseFile(t.path('p'), 2 * MiB, 0);
  try {
    const before = allocatedBytes(fd);
    assert.ok(before >= MiB, `1 MiB allocated before (got ${before})`);
    assert.equal(await hostOps().punchHole(fd, 0, MiB), true);
    assert.ok(allocatedBytes(fd) < before - MiB / 2, `allocation drops after punching (${allocatedBytes(fd)})`);
    assert.equal(fstatSync(fd).size, 2 * MiB);
    assert.ok(readFileSync(t.path('p')).subarray(0, MiB).every((x) => x === 0));
  } finally {
    closeSync(fd);
    t.cleanup();
  }
});

test('zeroRange zeroes a range in place without changing the size', { skip: SKIP_NOT_LINUX }, async () => {
  const t = tempDir();
  const fd = sparseFile(t.path('z'), 2 * MiB, 0);
  try {
    const ok = await hostOps().zeroRange(fd, 4096, 65536);
    if (!ok) return; // filesystem without FALLOC_FL_ZERO_RANGE: the caller falls back, nothing to see
    const data = readFileSync(t.path('z'));
    assert.equal(data.length, 2 * MiB);
    assert.ok(data.subarray(4096, 4096 + 65536).every((x) => x === 0));
    assert.equal(data[4095], 0xaa);
    assert.equal(data[4096 + 65536], 0xaa);
  } finally {
    closeSync(fd);
    t.cleanup();
  }
});

test('allocate (posix_fallocate) grows the file with every block allocated', { skip: SKIP_NOT_LINUX }, async () => {
  const t = tempDir();
  const fd = openSync(t.path('a'), 'w+');
  try {
    assert.equal(await hostOps().allocate(fd, 0, 3 * MiB), true);
    assert.equal(fstatSync(fd).size, 3 * MiB);
    assert.ok(allocatedBytes(fd) >= 3 * MiB, `3 MiB allocated (got ${allocatedBytes(fd)})`);
  } finally {
    closeSync(fd);
    t.cleanup();
  }
});

test('a large punch runs on the FFI thread pool and still deallocates', { skip: SKIP_NOT_LINUX }, async () => {
  const t = tempDir();
  const fd = openSync(t.path('big'), 'w+');
  try {
    const h = hostOps();
    assert.equal(await h.allocate(fd, 0, 80 * MiB), true);
    assert.ok(allocatedBytes(fd) >= 80 * MiB);
    assert.equal(await h.punchHole(fd, 0, 80 * MiB), true);
    assert.ok(allocatedBytes(fd) < MiB, `nearly nothing left allocated (${allocatedBytes(fd)})`);
    assert.equal(fstatSync(fd).size, 80 * MiB);
  } finally {
    closeSync(fd);
    t.cleanup();
  }
});

test('fallocate errors other than "unsupported" surface as errno-coded errors (EBADF)', { skip: SKIP_NOT_LINUX }, async () => {
  const t = tempDir();
  const fd = openSync(t.path('ro'), 'w+');
  closeSync(fd);
  const ro = openSync(t.path('ro'), 'r');
  try {
    await assert.rejects(hostOps().allocate(ro, 0, 4096), (e: NodeJS.ErrnoException) => e.code === 'EBADF');
    await assert.rejects(hostOps().punchHole(ro, 0, 4096), (e: NodeJS.ErrnoException) => e.code === 'EBADF');
  } finally {
    closeSync(ro);
    t.cleanup();
  }
});

test('OFD locks conflict between two opens of one file in one process, never with their own fd', { skip: SKIP_NOT_LINUX }, () => {
  const h = hostOps();
  if (!h.ofdLocksSupported) return;
  const t = tempDir();
  const a = openSync(t.path('l'), 'w+');
  const b = openSync(t.path('l'), 'r+');
  try {
    assert.equal(h.setLock(a, 100, 1, 'read', true), true);
    assert.equal(h.testLock(a, 100, 1, 'write', true), false, 'own lock is no conflict');
    assert.equal(h.testLock(b, 100, 1, 'write', true), true, 'other description sees it');
    assert.equal(h.testLock(b, 100, 1, 'read', true), false, 'read locks share');
    assert.equal(h.testLock(b, 101, 1, 'write', true), false, 'only byte 100 is locked');
    assert.equal(h.setLock(b, 100, 1, 'write', true), false, 'exclusive lock refused (EAGAIN)');
    assert.equal(h.setLock(a, 100, 1, 'unlock', true), true);
    assert.equal(h.testLock(b, 100, 1, 'write', true), false);
  } finally {
    closeSync(a);
    closeSync(b);
    t.cleanup();
  }
});

test('POSIX (F_SETLK) locks of this process are invisible to its own F_GETLK', { skip: SKIP_NOT_LINUX }, () => {
  const h = hostOps();
  const t = tempDir();
  const a = openSync(t.path('p'), 'w+');
  const b = openSync(t.path('p'), 'r+');
  try {
    assert.equal(h.setLock(a, 200, 1, 'read', false), true);
    assert.equal(h.testLock(b, 200, 1, 'write', false), false);
    assert.equal(h.setLock(a, 200, 1, 'unlock', false), true);
  } finally {
    closeSync(a);
    closeSync(b);
    t.cleanup();
  }
});

test('deviceSize and deviceBlockSize answer undefined for a regular file; setNoCow is false off btrfs', { skip: SKIP_NOT_LINUX }, () => {
  const t = tempDir();
  const fd = openSync(t.path('d'), 'w+');
  try {
    const h = hostOps();
    assert.equal(h.deviceSize(fd), undefined);
    assert.equal(h.deviceBlockSize(fd), undefined);
    const fsType = spawnSync('stat', ['-f', '-c', '%T', t.dir], { encoding: 'utf8' }).stdout.trim();
    if (fsType !== 'btrfs') assert.equal(h.setNoCow(fd), false, `nocow does not apply on ${fsType}`);
    else assert.equal(h.setNoCow(fd), true);
  } finally {
    closeSync(fd);
    t.cleanup();
  }
});

test('alignedBuffer returns zeroed memory at the asked alignment', () => {
  for (const size of [1, 512, 4096, 100_000, 3 * MiB]) {
    const b = alignedBuffer(size, 4096);
    assert.equal(b.length, size);
    assert.ok(isAligned(b, 4096), `aligned for ${size}`);
    assert.ok(b.every((x) => x === 0));
  }
  assert.equal(isAligned(alignedBuffer(4096, 4096).subarray(1), 4096), false);
  // Unzeroed (bulk read buffers): aligned the same way.
  for (const size of [65536, MiB]) assert.ok(isAligned(alignedBuffer(size, 4096, false), 4096), `unzeroed aligned for ${size}`);
});

/** Scheduling policy of a thread of this process: field 41 of /proc/self/task/TID/stat (proc(5)). */
function threadPolicy(tid: string): number {
  const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may itself hold spaces.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(rest[41 - 3]);
}

test('batchHelperThreads makes every thread but the main one SCHED_BATCH, and the main one keeps its policy', { skip: SKIP_NOT_LINUX }, async () => {
  const SCHED_OTHER = 0;
  const SCHED_BATCH = 3;
  await new Promise((r) => setImmediate(r));
  const tids = readdirSync('/proc/self/task');
  const helpers = tids.filter((t) => Number(t) !== process.pid);
  assert.ok(helpers.length > 0, 'a Node process has helper threads (V8 platform workers, libuv pool)');
  assert.equal(threadPolicy(String(process.pid)), SCHED_OTHER);
  const changed = hostOps().batchHelperThreads();
  assert.ok(changed >= helpers.length, `changed ${changed} of ${helpers.length} helper threads`);
  for (const t of helpers) if (existsSync(`/proc/self/task/${t}`)) assert.equal(threadPolicy(t), SCHED_BATCH, `thread ${t}`);
  assert.equal(threadPolicy(String(process.pid)), SCHED_OTHER, 'the main thread keeps SCHED_OTHER');
});

test('koffi is loaded straight from its native addon (not through its entry module), and works', { skip: SKIP_NOT_LINUX }, async () => {
  const ffi = await import('../../core/host/ffi.ts');
  const k = ffi.koffi();
  assert.equal(ffi.koffiLoadedFrom, 'addon', "koffi's package layout changed: core/host/ffi.ts falls back to the slower entry module");
  assert.equal(typeof k.address(Buffer.alloc(8)), 'bigint');
  assert.equal(ffi.koffi(), k, 'loaded once');
});

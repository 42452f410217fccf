// The file protocol (core/protocols/file): preallocation off/falloc/full (allocated size from stat
// blocks, as du reports it), write-zeroes and discard through hole punching, block status over
// holes, resize rules, direct I/O (cache.direct=on and the cache=none shorthand) with aligned
// buffers under concurrent requests, and the locking option (on/off/auto, conflicts inside one
// process as between two QEMU processes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync, truncateSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { fileDriver } from '../../core/protocols/file/index.ts';
import { BlockNode } from '../../core/block/node.ts';
import { openImage } from '../../core/drivers/open.ts';
import { BlockError } from '../../core/errors.ts';
import { PERM_ALL, PERM_CONSISTENT_READ, PERM_WRITE } from '../../core/block/types.ts';
import { rootPerms, filterChildPerms } from '../../core/block/permissions.ts';
import type { OptionsTree } from '../../core/block/options-tree.ts';
import { tempDir } from '../helpers/qemu.ts';
import { isAligned } from '../../core/host/index.ts';

const MiB = 1 << 20;
const STAT_BLOCK = 512;
const allocated = (path: string) => statSync(path).blocks * STAT_BLOCK;

async function openFile(path: string, o: { readOnly?: boolean; options?: OptionsTree; perm?: number; shared?: number } = {}): Promise<BlockNode> {
  const readOnly = o.readOnly ?? false;
  const p = filterChildPerms(rootPerms(readOnly, false));
  const impl = await fileDriver.open({
    filename: path,
    options: { filename: path, ...(o.options ?? {}) },
    readOnly,
    perm: o.perm ?? p.perm,
    sharedPerm: o.shared ?? p.shared,
    warn: () => {},
  });
  return new BlockNode({ driver: fileDriver, impl, filename: path, readOnly });
}

const noWarn = { warn: () => {} };

test('create with preallocation=off makes a sparse file, falloc and full allocate every byte', async () => {
  const t = tempDir();
  try {
    for (const prealloc of ['off', 'falloc', 'full'] as const) {
      const p = t.path(`${prealloc}.raw`);
      await fileDriver.create!(p, 4 * MiB, { preallocation: prealloc }, noWarn);
      assert.equal(statSync(p).size, 4 * MiB, prealloc);
      if (prealloc === 'off') assert.ok(allocated(p) < 64 * 1024, `off: sparse (${allocated(p)})`);
      else assert.ok(allocated(p) >= 4 * MiB, `${prealloc}: allocated (${allocated(p)})`);
      assert.ok(readFileSync(p).every((x) => x === 0));
    }
  } finally {
    t.cleanup();
  }
});

test('create empties an existing file first, and nocow is accepted where it does not apply', async () => {
  const t = tempDir();
  try {
    const p = t.path('old.raw');
    writeFileSync(p, Buffer.alloc(MiB, 0x55));
    await fileDriver.create!(p, 2 * MiB, { nocow: true }, noWarn);
    const data = readFileSync(p);
    assert.equal(data.length, 2 * MiB);
    assert.ok(data.every((x) => x === 0), 'old contents gone');
  } finally {
    t.cleanup();
  }
});

test('writeZeroes with mayUnmap punches a hole; without it the range still reads as zeros', async () => {
  const t = tempDir();
  const p = t.path('z.raw');
  writeFileSync(p, randomBytes(4 * MiB));
  const node = await openFile(p);
  try {
    const before = allocated(p);
    await node.writeZeroes(0, 2 * MiB, { mayUnmap: true });
    assert.ok(allocated(p) <= before - 2 * MiB + 64 * 1024, `2 MiB deallocated (${before} -> ${allocated(p)})`);
    await node.writeZeroes(2 * MiB + 512, 4096, {});
    const data = readFileSync(p);
    assert.equal(data.length, 4 * MiB);
    assert.ok(data.subarray(0, 2 * MiB).every((x) => x === 0));
    assert.ok(data.subarray(2 * MiB + 512, 2 * MiB + 512 + 4096).every((x) => x === 0));
    assert.notEqual(data.subarray(2 * MiB, 2 * MiB + 512).reduce((a, b) => a | b, 0), 0, 'bytes before the range untouched');
  } finally {
    await node.close();
    t.cleanup();
  }
});

test('writeZeroes past the end grows the file as a hole', async () => {
  const t = tempDir();
  const p = t.path('g.raw');
  writeFileSync(p, Buffer.alloc(4096, 1));
  const node = await openFile(p);
  try {
    await node.writeZeroes(4096, 8 * MiB, {});
    assert.equal(node.size, 4096 + 8 * MiB);
    assert.equal(statSync(p).size, 4096 + 8 * MiB);
    assert.ok(allocated(p) < MiB);
  } finally {
    await node.close();
    t.cleanup();
  }
});

test('discard punches holes and block status then reports the hole as zero, the rest as data', async () => {
  const t = tempDir();
  const p = t.path('d.raw');
  writeFileSync(p, randomBytes(4 * MiB));
  const node = await openFile(p);
  try {
    await node.discard(MiB, 2 * MiB);
    const a = await node.blockStatus(0, 4 * MiB);
    assert.deepEqual([a.data, a.zero, a.length], [true, false, MiB]);
    const b = await node.blockStatus(MiB, 3 * MiB);
    assert.deepEqual([b.data, b.zero, b.length], [false, true, 2 * MiB]);
    const c = await node.blockStatus(3 * MiB, MiB);
    assert.deepEqual([c.data, c.zero, c.length], [true, false, MiB]);
    assert.ok(readFileSync(p).subarray(MiB, 3 * MiB).every((x) => x === 0));
  } finally {
    await node.close();
    t.cleanup();
  }
});

test('block status of a trailing hole covers the whole request (QEMU: ENXIO means zeros to EOF)', async () => {
  const t = tempDir();
  const p = t.path('h.raw');
  writeFileSync(p, Buffer.alloc(4096, 7));
  truncateSync(p, 16 * MiB);
  const node = await openFile(p, { readOnly: true });
  try {
    const s = await node.blockStatus(MiB, 15 * MiB);
    assert.deepEqual([s.data, s.zero, s.length, s.hostOffset], [false, true, 15 * MiB, MiB]);
  } finally {
    await node.close();
    t.cleanup();
  }
});

test('truncate grows sparse or preallocated, shrinks only without preallocation', async () => {
  const t = tempDir();
  const p = t.path('t.raw');
  writeFileSync(p, Buffer.alloc(0));
  const node = await openFile(p);
  try {
    await node.truncate(MiB, { preallocation: 'falloc' });
    assert.equal(statSync(p).size, MiB);
    assert.ok(allocated(p) >= MiB);
    await node.truncate(3 * MiB, { preallocation: 'full' });
    assert.ok(allocated(p) >= 3 * MiB);
    await assert.rejects(node.truncate(MiB, { shrink: true, preallocation: 'falloc' }), /Cannot use preallocation for shrinking files/);
    await node.truncate(MiB, { shrink: true });
    assert.equal(statSync(p).size, MiB);
  } finally {
    await node.close();
    t.cleanup();
  }
});

test('cache.direct=on opens with O_DIRECT: 4 KiB request alignment, unaligned user I/O still exact', { skip: process.platform === 'linux' ? false : 'O_DIRECT is Linux-only' }, async () => {
  const t = tempDir();
  const p = t.path('direct.raw');
  const content = randomBytes(3 * MiB + 1000);
  writeFileSync(p, content);
  let node: BlockNode;
  try {
    node = await openFile(p, { options: { cache: { direct: 'on' } } });
  } catch (e) {
    t.cleanup();
    if (e instanceof BlockError && /Invalid argument/.test(e.message)) return; // fs without O_DIRECT (tmpfs)
    throw e;
  }
  try {
    assert.equal(node.alignment, 4096);
    assert.ok(content.subarray(12345, 12345 + 70000).equals(await node.read(12345, 70000)));
    assert.ok(content.subarray(3 * MiB, 3 * MiB + 1000).equals(await node.read(3 * MiB, 1000)), 'short tail read past an unaligned EOF');
    // Eight unaligned writes in flight at once, as convert -m 8 issues them.
    const patches = Array.from({ length: 8 }, (_, i) => ({ off: i * 300_001 + 17, data: randomBytes(5000 + i * 777) }));
    await Promise.all(patches.map((x) => node.write(x.off, x.data)));
    await node.flush();
    const after = readFileSync(p);
    for (const x of patches) {
      x.data.copy(content, x.off);
    }
    assert.ok(after.subarray(0, content.length).equals(content));
  } finally {
    await node.close();
    t.cleanup();
  }
});

test('preallocation=full through a direct-I/O node grows from an unaligned end of file', { skip: process.platform === 'linux' ? false : 'O_DIRECT is Linux-only' }, async () => {
  const t = tempDir();
  const p = t.path('full-direct.raw');
  const head = randomBytes(5000);
  writeFileSync(p, head);
  try {
    const node = await openFile(p, { options: { cache: { direct: 'on' } } }).catch((e) => {
      if (e instanceof BlockError && /Invalid argument/.test(e.message)) return undefined;
      throw e;
    });
    if (!node) return;
    await node.truncate(MiB, { preallocation: 'full' });
    await node.close();
    const data = readFileSync(p);
    assert.equal(data.length, MiB);
    assert.ok(data.subarray(0, 5000).equals(head));
    assert.ok(data.subarray(5000).every((x) => x === 0));
    assert.ok(allocated(p) >= MiB);
  } finally {
    t.cleanup();
  }
});

test('cache=none is the shorthand for cache.direct=on; an unknown cache mode is refused', { skip: process.platform === 'linux' ? false : 'O_DIRECT is Linux-only' }, async () => {
  const t = tempDir();
  const p = t.path('n.raw');
  writeFileSync(p, Buffer.alloc(MiB));
  try {
    const node = await openFile(p, { options: { cache: 'none' } }).catch((e) => {
      if (e instanceof BlockError && /Invalid argument/.test(e.message)) return undefined;
      throw e;
    });
    if (node) {
      assert.equal(node.alignment, 4096);
      await node.close();
    }
    const wb = await openFile(p, { options: { cache: 'writeback' } });
    assert.equal(wb.alignment, 1);
    await wb.close();
    await assert.rejects(openFile(p, { options: { cache: 'bogus' } }), /Invalid cache mode 'bogus'/);
  } finally {
    t.cleanup();
  }
});

test('two read-write opens in one process conflict as two QEMU processes would; read-only opens share', async () => {
  const t = tempDir();
  const p = t.path('l.raw');
  writeFileSync(p, Buffer.alloc(MiB));
  const rw = rootPerms(false, false);
  const first = await openFile(p, { perm: rw.perm, shared: rw.shared });
  try {
    await assert.rejects(openFile(p, { perm: rw.perm, shared: rw.shared }), (e: BlockError) => {
      assert.equal(e.kind, 'Locked');
      assert.match(e.message, /^Failed to get "write" lock$/);
      assert.equal(e.hint, `Is another process using the image [${p}]?\n`);
      return true;
    });
    await assert.rejects(openFile(p, { readOnly: true, perm: PERM_CONSISTENT_READ, shared: PERM_CONSISTENT_READ }), /Failed to get shared "write" lock/);
    const ro = await openFile(p, { readOnly: true, perm: PERM_CONSISTENT_READ, shared: PERM_ALL });
    await ro.close();
    const off = await openFile(p, { options: { locking: 'off' }, perm: rw.perm, shared: rw.shared });
    assert.deepEqual((off.impl as unknown as { lockedBytes: number[] }).lockedBytes, []);
    await off.close();
  } finally {
    await first.close();
  }
  const again = await openFile(p, { perm: rw.perm, shared: rw.shared });
  assert.deepEqual((again.impl as unknown as { lockedBytes: number[] }).lockedBytes, [100, 101, 201, 203]);
  await again.close();
  t.cleanup();
});

test('locking accepts on/off/auto and refuses anything else with the allowed values', async () => {
  const t = tempDir();
  const p = t.path('o.raw');
  writeFileSync(p, Buffer.alloc(4096));
  try {
    for (const mode of ['on', 'auto']) {
      const n = await openFile(p, { options: { locking: mode }, perm: PERM_CONSISTENT_READ | PERM_WRITE, shared: PERM_ALL });
      assert.deepEqual((n.impl as unknown as { lockedBytes: number[] }).lockedBytes, [100, 101], mode);
      await n.close();
    }
    await assert.rejects(openFile(p, { options: { locking: 'maybe' } }), /Parameter 'locking' does not accept value 'maybe'/);
  } finally {
    t.cleanup();
  }
});

test('create refuses a file another opener uses read-write, and leaves its contents alone', async () => {
  const t = tempDir();
  const p = t.path('busy.qcow2');
  const content = randomBytes(64 * 1024);
  writeFileSync(p, content);
  // A format's storage child holding the file read-write (bytes 100, 101, 103, 201, 203).
  const holder = await openFile(p, { perm: 0xb, shared: PERM_CONSISTENT_READ | 0x4 });
  try {
    await assert.rejects(fileDriver.create!(p, MiB, {}, noWarn), (e: BlockError) => e.kind === 'Locked' && /Failed to get "write" lock/.test(e.message));
    assert.ok(readFileSync(p).equals(content), 'not truncated');
  } finally {
    await holder.close();
    t.cleanup();
  }
});

test('cache=none given for the image (--image-opts) reaches the file node as direct I/O', { skip: process.platform === 'linux' ? false : 'O_DIRECT is Linux-only' }, async () => {
  const t = tempDir();
  const p = t.path('img.raw');
  writeFileSync(p, Buffer.alloc(MiB));
  try {
    const n = await openImage(`driver=raw,file.filename=${p},cache=none`, { imageOpts: true, readOnly: true, warn: () => {} }).catch((e) => {
      if (e instanceof BlockError && /Invalid argument/.test(e.message)) return undefined;
      throw e;
    });
    if (!n) return;
    try {
      assert.equal(n.protocolNode.alignment, 4096);
    } finally {
      await n.close();
    }
  } finally {
    t.cleanup();
  }
});

test('close waits for reads and writes in flight (they complete with their data); requests after close fail with a typed error', async () => {
  const t = tempDir();
  try {
    const path = t.path('inflight.raw');
    writeFileSync(path, Buffer.alloc(8 * MiB, 0x11));
    const impl = await fileDriver.open({ filename: path, options: { filename: path }, readOnly: false, perm: PERM_ALL, sharedPerm: PERM_ALL, warn: () => {} });
    const data = randomBytes(4 * MiB);
    const reads = [0, 1, 2].map((i) => impl.read(i * MiB, MiB));
    const write = impl.write!(4 * MiB, data, {});
    const into = Buffer.alloc(MiB);
    const readInto = impl.readInto!(3 * MiB, MiB, into);
    await impl.close!();
    for (const r of await Promise.all(reads)) assert.ok(r.equals(Buffer.alloc(MiB, 0x11)));
    await write;
    await readInto;
    assert.ok(into.equals(Buffer.alloc(MiB, 0x11)));
    assert.ok(readFileSync(path).subarray(4 * MiB).equals(data));
    await assert.rejects(impl.read(0, 4096), (e: unknown) => e instanceof BlockError && /closed/.test(e.message));
  } finally {
    t.cleanup();
  }
});

test('reads of 64 KiB or more land in page-aligned buffers (fast page-cache copies) and hold the file bytes', async () => {
  const t = tempDir();
  try {
    const p = t.path('a.bin');
    const data = randomBytes(2 * MiB);
    writeFileSync(p, data);
    const n = await openFile(p, { readOnly: true });
    try {
      for (const [off, len] of [[0, 65536], [4096, MiB], [12345, MiB + 7]] as const) {
        const b = await n.read(off, len);
        assert.ok(isAligned(b, 4096), `read(${off}, ${len}) is page-aligned`);
        assert.ok(b.equals(data.subarray(off, off + len)));
      }
    } finally {
      await n.close();
    }
  } finally {
    t.cleanup();
  }
});

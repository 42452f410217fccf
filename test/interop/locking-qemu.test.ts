// Image locking against real QEMU 7.2 processes (qemu-io, qemu-nbd, qemu-img info / resize /
// convert / create): Platter and QEMU must refuse each other exactly as two QEMU processes do, and
// Platter must lock the very same bytes (read from /proc/locks) as QEMU for the same kind of open.
// qcow2 opens go through the qcow2 driver when it is registered, otherwise through the file
// protocol with the permissions the generic layer computes for a format's storage child.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { openImage } from '../../core/drivers/open.ts';
import { findFormat } from '../../core/drivers/registry.ts';
import { BlockNode } from '../../core/block/node.ts';
import { BlockError } from '../../core/errors.ts';
import { fileDriver } from '../../core/protocols/file/index.ts';
import { rootPerms, storageChildPerms } from '../../core/block/permissions.ts';
import { hostOps } from '../../core/host/index.ts';
import { tempDir, run, have, qemuImg, SKIP_NO_QEMU } from '../helpers/qemu.ts';
import { HOLD_TIMEOUT_MS, lockedBytes } from './lock-matrix-harness.ts';

const SKIP = process.platform !== 'linux' ? 'needs Linux /proc/locks' : !existsSync('/proc/locks') ? 'no /proc/locks' : SKIP_NO_QEMU || (have('qemu-nbd') ? false : 'qemu-nbd not installed');
const SKIP_NBDKIT = SKIP || (have('nbdkit') ? false : 'nbdkit not installed (holds qemu-img convert open)');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A QEMU process holding an image; resolves once its lock bytes show in /proc/locks. */
async function holdWithQemu(cmd: string, args: string[], path: string): Promise<{ child: ChildProcess; bytes: number[]; kill(): Promise<void> }> {
  const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += String(d)));
  const kill = () =>
    new Promise<void>((res) => {
      if (child.exitCode !== null || child.signalCode !== null) return res();
      child.once('exit', () => res());
      child.kill('SIGKILL');
    });
  const deadline = Date.now() + HOLD_TIMEOUT_MS;
  let bytes: number[] = [];
  let stable = 0;
  // Wait until the set stops changing (QEMU takes its bytes one by one, then tests them).
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      await kill();
      throw new Error(`${cmd} exited early: ${stderr}`);
    }
    const now = lockedBytes(path);
    if (now.length > 0 && now.join() === bytes.join()) {
      if (++stable >= 3) return { child, bytes, kill };
    } else stable = 0;
    bytes = now;
    await sleep(30);
  }
  await kill();
  throw new Error(`${cmd} ${args.join(' ')} took no locks within ${HOLD_TIMEOUT_MS} ms: ${stderr}`);
}

/** qemu-io in interactive mode, kept open by its stdin pipe. */
const qemuIoHold = (path: string, fmt: string, flags: string[]) => holdWithQemu('qemu-io', [...flags, '-f', fmt, path], path);
/** qemu-nbd serving the image on a unix socket (-k), persistent. */
const qemuNbdHold = (path: string, fmt: string, sock: string, flags: string[] = []) => holdWithQemu('qemu-nbd', [...flags, '-k', sock, '-f', fmt, path], path);

interface Mode {
  readOnly: boolean;
  forceShare?: boolean;
  noShare?: boolean;
}

/** Platter holding an image: openImage where the format driver exists, else the file protocol
 *  with exactly the perms openImage would give the format's storage child. */
async function platterHold(path: string, fmt: 'raw' | 'qcow2', mode: Mode): Promise<BlockNode> {
  if (fmt === 'raw' || findFormat(fmt)) {
    return openImage(path, { format: fmt, readOnly: mode.readOnly, forceShare: mode.forceShare ?? false, ...(mode.noShare !== undefined ? { noShare: mode.noShare } : {}), warn: () => {} });
  }
  const root = rootPerms(mode.readOnly, mode.forceShare ?? false, 0, mode.noShare ?? !mode.readOnly);
  const p = storageChildPerms(root, !mode.readOnly, mode.forceShare ?? false);
  const impl = await fileDriver.open({ filename: path, options: { filename: path }, readOnly: mode.readOnly, perm: p.perm, sharedPerm: p.shared, warn: () => {} });
  return new BlockNode({ driver: fileDriver, impl, filename: path, readOnly: mode.readOnly });
}

function images(t: ReturnType<typeof tempDir>) {
  const raw = t.path('disk.raw');
  const qcow2 = t.path('disk.qcow2');
  qemuImg('create', '-q', '-f', 'raw', raw, '1M');
  qemuImg('create', '-q', '-f', 'qcow2', qcow2, '1M');
  return { raw, qcow2 };
}

function assertLocked(e: unknown, message: string, path: string): true {
  assert.ok(e instanceof BlockError, String(e));
  assert.equal(e.kind, 'Locked');
  assert.match(e.message, new RegExp(message.replace(/"/g, '"')));
  assert.equal(e.hint, `Is another process using the image [${path}]?\n`);
  return true;
}

test('OFD locks are available here (QEMU uses them; without them locking=auto takes none)', { skip: SKIP }, () => {
  assert.equal(hostOps().ofdLocksSupported, true);
});

test('while qemu-nbd -k serves an image read-write, Platter cannot open it for writing; read-only -U works', { skip: SKIP }, async () => {
  const t = tempDir();
  const { raw, qcow2 } = images(t);
  try {
    for (const [path, fmt, writeMsg] of [
      [raw, 'raw', 'Failed to get shared "write" lock'],
      [qcow2, 'qcow2', 'Failed to get "write" lock'],
    ] as const) {
      const nbd = await qemuNbdHold(path, fmt, t.path(`${fmt}.sock`));
      try {
        await assert.rejects(platterHold(path, fmt, { readOnly: false }), (e) => assertLocked(e, writeMsg, path));
        const shared = await platterHold(path, fmt, { readOnly: true, forceShare: true });
        assert.equal(shared.size > 0, true);
        await shared.close();
      } finally {
        await nbd.kill();
      }
      const free = await platterHold(path, fmt, { readOnly: false });
      await free.close();
    }
  } finally {
    t.cleanup();
  }
});

test('qemu-io holding a qcow2 read-only blocks Platter read-write ("write" lock); holding it read-write blocks Platter read-only ("shared write") unless -U', { skip: SKIP }, async () => {
  const t = tempDir();
  const { qcow2 } = images(t);
  try {
    const ro = await qemuIoHold(qcow2, 'qcow2', ['-r']);
    try {
      await assert.rejects(platterHold(qcow2, 'qcow2', { readOnly: false }), (e) => assertLocked(e, 'Failed to get "write" lock', qcow2));
      await (await platterHold(qcow2, 'qcow2', { readOnly: true })).close();
    } finally {
      await ro.kill();
    }
    const rw = await qemuIoHold(qcow2, 'qcow2', []);
    try {
      await assert.rejects(platterHold(qcow2, 'qcow2', { readOnly: true }), (e) => assertLocked(e, 'Failed to get shared "write" lock', qcow2));
      await (await platterHold(qcow2, 'qcow2', { readOnly: true, forceShare: true })).close();
    } finally {
      await rw.kill();
    }
  } finally {
    t.cleanup();
  }
});

test('while Platter holds images read-write, qemu-img info (qcow2), qemu-io write and qemu-img resize (raw) fail; after close they work', { skip: SKIP }, async () => {
  const t = tempDir();
  const { raw, qcow2 } = images(t);
  try {
    const q = await platterHold(qcow2, 'qcow2', { readOnly: false });
    const r = await platterHold(raw, 'raw', { readOnly: false });
    try {
      const info = run('qemu-img', ['info', qcow2]);
      assert.notEqual(info.status, 0);
      assert.equal(info.stderr, `qemu-img: Could not open '${qcow2}': Failed to get shared "write" lock\nIs another process using the image [${qcow2}]?\n`);
      const write = run('qemu-io', ['-f', 'raw', '-c', 'write 0 512', raw]);
      assert.notEqual(write.status, 0);
      assert.match(write.stderr, /Failed to get "write" lock\nIs another process using the image/);
      const resize = run('qemu-img', ['resize', '-f', 'raw', raw, '2M']);
      assert.notEqual(resize.status, 0);
      assert.match(resize.stderr, /Failed to get "write" lock/);
      assert.equal(run('qemu-img', ['info', '-U', qcow2]).status, 0, 'qemu-img info -U still works');
      assert.equal(run('qemu-io', ['-r', '-f', 'raw', '-c', 'read 0 512', raw]).status, 0, 'readers are welcome');
    } finally {
      await q.close();
      await r.close();
    }
    assert.equal(run('qemu-img', ['info', qcow2]).status, 0);
    assert.equal(run('qemu-io', ['-f', 'raw', '-c', 'write 0 512', raw]).status, 0);
    assert.equal(run('qemu-img', ['resize', '-f', 'raw', raw, '2M']).status, 0);
  } finally {
    t.cleanup();
  }
});

test('qemu-img create over an image Platter holds fails like over one QEMU holds, and the image survives', { skip: SKIP }, async () => {
  const t = tempDir();
  const { qcow2 } = images(t);
  try {
    const before = readFileSync(qcow2);
    const q = await platterHold(qcow2, 'qcow2', { readOnly: true });
    try {
      const r = run('qemu-img', ['create', '-f', 'qcow2', qcow2, '2M']);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /Failed to get "write" lock/);
    } finally {
      await q.close();
    }
    assert.ok(readFileSync(qcow2).equals(before));
  } finally {
    t.cleanup();
  }
});

const PROC_LOCK_CASES: { name: string; fmt: 'raw' | 'qcow2'; qemu: string[]; mode: Mode }[] = [
  { name: 'raw, read-only (qemu-io -r)', fmt: 'raw', qemu: ['-r'], mode: { readOnly: true } },
  { name: 'raw, read-only force-share (qemu-io -r -U)', fmt: 'raw', qemu: ['-r', '-U'], mode: { readOnly: true, forceShare: true } },
  { name: 'raw, read-write sharing all (qemu-io)', fmt: 'raw', qemu: [], mode: { readOnly: false, noShare: false } },
  { name: 'qcow2, read-only (qemu-io -r)', fmt: 'qcow2', qemu: ['-r'], mode: { readOnly: true } },
  { name: 'qcow2, read-only force-share (qemu-io -r -U)', fmt: 'qcow2', qemu: ['-r', '-U'], mode: { readOnly: true, forceShare: true } },
  { name: 'qcow2, read-write (qemu-io)', fmt: 'qcow2', qemu: [], mode: { readOnly: false } },
];

for (const c of PROC_LOCK_CASES) {
  test(`/proc/locks: Platter locks the same bytes as qemu-io for ${c.name}`, { skip: SKIP }, async () => {
    const t = tempDir();
    const imgs = images(t);
    const path = imgs[c.fmt];
    try {
      const q = await qemuIoHold(path, c.fmt, c.qemu);
      const qemuBytes = q.bytes;
      await q.kill();
      assert.deepEqual(lockedBytes(path), [], 'qemu-io gone');
      const n = await platterHold(path, c.fmt, c.mode);
      try {
        assert.deepEqual(lockedBytes(path), qemuBytes);
      } finally {
        await n.close();
      }
      assert.deepEqual(lockedBytes(path), [], 'Platter released every byte');
    } finally {
      t.cleanup();
    }
  });
}

test('/proc/locks: a default Platter read-write raw open holds qemu-io\'s write bytes (100-101) and unshares like a convert source (201, 203)', { skip: SKIP }, async () => {
  // No QEMU tool opens a raw image read-write without sharing writes, so compare bit by bit:
  // held bytes equal qemu-io's read-write open, unshared bytes equal qemu-img convert's source.
  const t = tempDir();
  const { raw } = images(t);
  try {
    const n = await platterHold(raw, 'raw', { readOnly: false });
    try {
      assert.deepEqual(lockedBytes(raw), [100, 101, 201, 203]);
    } finally {
      await n.close();
    }
  } finally {
    t.cleanup();
  }
});

test('/proc/locks: a no-share read-only open locks the same bytes as the source of qemu-img convert', { skip: SKIP_NBDKIT }, async () => {
  const t = tempDir();
  const { raw } = images(t);
  run('qemu-io', ['-f', 'raw', '-c', 'write -P 1 0 64k', raw]);
  const sock = t.path('slow.sock');
  // A target that takes seconds per write keeps convert (and its source lock) alive.
  const target = spawn('nbdkit', ['-f', '-U', sock, '--filter=delay', 'memory', '2M', 'wdelay=20'], { stdio: 'ignore' });
  let convert: Awaited<ReturnType<typeof holdWithQemu>> | undefined;
  try {
    const deadline = Date.now() + HOLD_TIMEOUT_MS;
    while (!existsSync(sock) && Date.now() < deadline) await sleep(20);
    convert = await holdWithQemu('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', raw, `nbd+unix:///?socket=${sock}`], raw);
    const qemuBytes = convert.bytes;
    await convert.kill();
    const n = await platterHold(raw, 'raw', { readOnly: true, noShare: true });
    try {
      assert.deepEqual(lockedBytes(raw), qemuBytes);
    } finally {
      await n.close();
    }
  } finally {
    await convert?.kill();
    await new Promise<void>((res) => {
      if (target.exitCode !== null) return res();
      target.once('exit', () => res());
      target.kill('SIGKILL');
    });
    t.cleanup();
  }
});

const SKIP_VMDK = SKIP;
for (const c of [
  { name: 'read-only (qemu-io -r)', qemu: ['-r'], mode: { readOnly: true } },
  { name: 'read-write sharing all (qemu-io)', qemu: [], mode: { readOnly: false, noShare: false } },
  { name: 'read-only force-share (qemu-io -r -U)', qemu: ['-r', '-U'], mode: { readOnly: true, forceShare: true } },
] as { name: string; qemu: string[]; mode: Mode }[]) {
  test(`/proc/locks: a vmdk descriptor and its flat extent (a data child) get qemu-io's bytes, ${c.name}`, { skip: SKIP_VMDK }, async () => {
    const t = tempDir();
    const desc = t.path('flat.vmdk');
    const extent = t.path('flat-flat.vmdk');
    qemuImg('create', '-q', '-f', 'vmdk', '-o', 'subformat=monolithicFlat', desc, '1M');
    try {
      // qemu-io is given the descriptor; wait until the extent (locked last) shows its bytes.
      const holder = await holdWithQemu('qemu-io', [...c.qemu, '-f', 'vmdk', desc], extent);
      const qemuBytes = [lockedBytes(desc), lockedBytes(extent)];
      await holder.kill();
      const n = await openImage(desc, { format: 'vmdk', readOnly: c.mode.readOnly, forceShare: c.mode.forceShare ?? false, ...(c.mode.noShare !== undefined ? { noShare: c.mode.noShare } : {}), warn: () => {} });
      try {
        assert.deepEqual([lockedBytes(desc), lockedBytes(extent)], qemuBytes);
      } finally {
        await n.close();
      }
    } finally {
      t.cleanup();
    }
  });
}

const SKIP_QED = SKIP;
for (const c of [
  { name: 'read-only (qemu-io -r)', qemu: ['-r'], mode: { readOnly: true } },
  { name: 'read-write sharing all (qemu-io)', qemu: [], mode: { readOnly: false, noShare: false } },
] as { name: string; qemu: string[]; mode: Mode }[]) {
  test(`/proc/locks: an overlay (qed) and its raw backing file get qemu-io's bytes, ${c.name}`, { skip: SKIP_QED }, async () => {
    const t = tempDir();
    const base = t.path('base.raw');
    const top = t.path('top.qed');
    qemuImg('create', '-q', '-f', 'raw', base, '1M');
    qemuImg('create', '-q', '-f', 'qed', '-b', base, '-F', 'raw', top, '1M');
    try {
      const holder = await holdWithQemu('qemu-io', [...c.qemu, '-f', 'qed', top], top);
      const qemuBytes = [lockedBytes(top), lockedBytes(base)];
      await holder.kill();
      const n = await openImage(top, { format: 'qed', readOnly: c.mode.readOnly, ...(c.mode.noShare !== undefined ? { noShare: c.mode.noShare } : {}), warn: () => {} });
      try {
        assert.deepEqual([lockedBytes(top), lockedBytes(base)], qemuBytes);
      } finally {
        await n.close();
      }
    } finally {
      t.cleanup();
    }
  });
}

// Crash consistency of whole-image jobs: platter commit, rebase, resize (with preallocation),
// amend, snapshot -a and convert -n are killed with SIGKILL at random points, on images qemu-img
// and qemu-io made. Afterwards qemu-img check finds no corruption (exit 0 or 3: leaks at most),
// and what the guest sees is what the job promises even half done: commit and rebase do not
// change the overlay's contents, resize and amend keep the data, snapshot -a leaves the old or the
// snapshot's contents, convert -n leaves an image qemu-img can check.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SKIP_NO_QEMU, md5File, qemuImg, qemuIo, qemuImgJson, run, tempDir } from '../helpers/qemu.ts';
import { Rng } from '../fuzz/rng.ts';
import { runPlatterAndKill, type KillTrigger } from './kill.ts';

const KILLS = Number(process.env.PLATTER_TEST_LONG ? 10 : 3);
const MiB = 1 << 20;

type Tmp = ReturnType<typeof tempDir>;

/** The guest contents of an image (through its backing chain), as qemu-img reads them. */
function contents(t: Tmp, image: string, fmt = 'qcow2'): string {
  const raw = t.path('contents.raw');
  qemuImg('convert', '-U', '-f', fmt, '-O', 'raw', image, raw);
  return md5File(raw);
}

/** qemu-img check: no corruption (0 = clean, 3 = leaks only). */
function assertNoCorruption(image: string, what: string, fmt = 'qcow2'): void {
  let r = run('qemu-img', ['check', '-f', fmt, image]);
  if (fmt === 'vhdx' && /contains a log that needs to be replayed/.test(r.stderr)) {
    // A killed vhdx writer's metadata log: replaying it is vhdx's crash recovery.
    run('qemu-img', ['check', '-q', '-r', 'all', '-f', fmt, image]);
    r = run('qemu-img', ['check', '-f', fmt, image]);
  }
  if (fmt === 'qcow2' && r.status === 2 && (qemuImgJson('info', '-U', '-f', fmt, image) as { 'dirty-flag'?: boolean })['dirty-flag'] === true) {
    // Killed inside a step that runs under qcow2's dirty bit (commit's make_completely_empty
    // rewrites the refcount structure): refcounts may be wrong on disk, and the next read-write
    // open rebuilds them (QEMU's qcow2_open repairs a dirty image). That repair is qcow2's crash
    // recovery, as the log replay is vhdx's (QEMU's iotest 098 leaves "ERROR cluster 0
    // refcount=0" the same way and repairs it with `qemu-io -c close`); after it the image must
    // check clean.
    run('qemu-io', ['-f', fmt, '-c', 'close', image]);
    r = run('qemu-img', ['check', '-f', fmt, image]);
  }
  assert.ok(r.status === 0 || r.status === 3, `${what}: qemu-img check exit ${r.status}: ${r.stdout}${r.stderr}`);
}

/** A 64 MiB base with 32 MiB of data and an overlay that rewrites 32 MiB of it (4 KiB clusters,
 *  so the jobs have thousands of clusters to work through). */
function chain(t: Tmp): { base: string; overlay: string } {
  const base = t.path('base.qcow2');
  const overlay = t.path('overlay.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', base, '64M');
  qemuIo('-f', 'qcow2', '-c', 'write -P 0x11 0 32M', base);
  qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', '-b', base, '-F', 'qcow2', overlay);
  qemuIo('-f', 'qcow2', '-c', 'write -P 0x22 16M 32M', overlay);
  return { base, overlay };
}

async function kill(args: string[], rng: Rng, trigger: KillTrigger): Promise<void> {
  const delay = 'started' in trigger ? 700 + rng.below(1500) : rng.below(300);
  const r = await runPlatterAndKill(args, delay, trigger);
  if (!r.killed) assert.equal(r.status, 0, `platter ${args.join(' ')}: ${r.stderr}`);
}

test(`commit -p killed ${KILLS} times: no corruption, the overlay still shows the same contents`, { skip: SKIP_NO_QEMU, timeout: 10 * 60_000 }, async () => {
  const rng = new Rng(1);
  for (let k = 0; k < KILLS; k++) {
    const t = tempDir();
    try {
      const { base, overlay } = chain(t);
      const before = contents(t, overlay);
      await kill(['commit', '-p', '-f', 'qcow2', overlay], rng, { progress: true });
      assertNoCorruption(base, `kill ${k}: base`);
      assertNoCorruption(overlay, `kill ${k}: overlay`);
      assert.equal(contents(t, overlay), before, `kill ${k}: the overlay's contents changed`);
    } finally {
      t.cleanup();
    }
  }
});

test(`rebase -p (safe) killed ${KILLS} times: no corruption, the overlay still shows the same contents`, { skip: SKIP_NO_QEMU, timeout: 10 * 60_000 }, async () => {
  const rng = new Rng(2);
  for (let k = 0; k < KILLS; k++) {
    const t = tempDir();
    try {
      const { overlay } = chain(t);
      const other = t.path('other.qcow2');
      qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', other, '64M');
      qemuIo('-f', 'qcow2', '-c', 'write -P 0x33 8M 48M', other);
      const before = contents(t, overlay);
      await kill(['rebase', '-p', '-f', 'qcow2', '-b', other, '-F', 'qcow2', overlay], rng, { progress: true });
      assertNoCorruption(overlay, `kill ${k}: overlay`);
      assert.equal(contents(t, overlay), before, `kill ${k}: the overlay's contents changed`);
    } finally {
      t.cleanup();
    }
  }
});

test(`resize --preallocation=full and amend killed ${KILLS} times each: no corruption, the data kept`, { skip: SKIP_NO_QEMU, timeout: 10 * 60_000 }, async () => {
  const rng = new Rng(3);
  const jobs: { args: (img: string) => string[]; trigger: KillTrigger }[] = [
    { args: (img) => ['resize', '--preallocation=full', '-f', 'qcow2', img, '+1G'], trigger: { started: true } },
    { args: (img) => ['amend', '-p', '-f', 'qcow2', '-o', 'refcount_bits=64', img], trigger: { started: true } },
    { args: (img) => ['amend', '-p', '-f', 'qcow2', '-o', 'compat=0.10', img], trigger: { started: true } },
  ];
  for (const job of jobs) {
    for (let k = 0; k < KILLS; k++) {
      const t = tempDir();
      try {
        const img = t.path('img.qcow2');
        qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', img, '64M');
        qemuIo('-f', 'qcow2', '-c', 'write -P 0x44 0 40M', '-c', 'write -z 40M 8M', img);
        const head = t.path('head.raw');
        const expected = (() => {
          qemuImg('convert', '-f', 'qcow2', '-O', 'raw', img, head);
          return md5File(head);
        })();
        await kill(job.args(img), rng, job.trigger);
        const what = `${job.args(img)[0]} kill ${k}`;
        assertNoCorruption(img, what);
        // The first 64 MiB still hold the data, whatever the size is now.
        const info = qemuImgJson<{ 'virtual-size': number }>('info', '-U', img);
        assert.ok(info['virtual-size'] === 64 * MiB || info['virtual-size'] === 64 * MiB + 1024 * MiB, `${what}: virtual size ${info['virtual-size']}`);
        const now = t.path('now.raw');
        run('qemu-img', ['convert', '-U', '-f', 'qcow2', '-O', 'raw', img, now]);
        run('truncate', ['-s', String(64 * MiB), now]);
        assert.equal(md5File(now), expected, `${what}: the data changed`);
      } finally {
        t.cleanup();
      }
    }
  }
});

test(`snapshot -a killed ${KILLS} times: no corruption, the old contents or the snapshot's`, { skip: SKIP_NO_QEMU, timeout: 10 * 60_000 }, async () => {
  const rng = new Rng(4);
  for (let k = 0; k < KILLS; k++) {
    const t = tempDir();
    try {
      const img = t.path('snap.qcow2');
      qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', img, '64M');
      qemuIo('-f', 'qcow2', '-c', 'write -P 0x55 0 32M', img);
      qemuImg('snapshot', '-c', 's1', img);
      const snap = contents(t, img);
      qemuIo('-f', 'qcow2', '-c', 'write -P 0x66 8M 48M', img);
      const active = contents(t, img);
      await kill(['snapshot', '-a', 's1', img], rng, { started: true });
      assertNoCorruption(img, `kill ${k}`);
      const now = contents(t, img);
      assert.ok(now === active || now === snap, `kill ${k}: neither the old contents nor the snapshot's`);
    } finally {
      t.cleanup();
    }
  }
});

test(`convert -n into existing qcow2, qed, vmdk, vdi, vhdx and vpc images killed ${KILLS} times each: no corruption`, { skip: SKIP_NO_QEMU, timeout: 10 * 60_000 }, async () => {
  const rng = new Rng(5);
  const t = tempDir();
  try {
    const src = t.path('src.raw');
    qemuImg('create', '-q', '-f', 'raw', src, '64M');
    qemuIo('-f', 'raw', '-c', 'write -P 0x77 0 24M', '-c', 'write -P 0x78 40M 24M', src);
    for (const fmt of ['qcow2', 'qed', 'vmdk', 'vdi', 'vhdx', 'vpc']) {
      for (let k = 0; k < KILLS; k++) {
        const dst = t.path(`dst-${k}.${fmt}`);
        qemuImg('create', '-q', '-f', fmt, ...(fmt === 'vpc' ? ['-o', 'force_size=on'] : []), dst, '64M');
        qemuIo('-f', fmt, '-c', 'write -P 0x99 16M 16M', dst);
        await kill(['convert', '-n', '-p', '-f', 'raw', '-O', fmt, src, dst], rng, { progress: true });
        // qemu-img has no check for vpc: its contents must at least read back.
        if (fmt === 'vpc') assert.equal(run('qemu-img', ['convert', '-U', '-f', 'vpc', '-O', 'raw', dst, t.path('vpc.raw')]).status, 0);
        else assertNoCorruption(dst, `${fmt} kill ${k}`, fmt);
      }
    }
  } finally {
    t.cleanup();
  }
});

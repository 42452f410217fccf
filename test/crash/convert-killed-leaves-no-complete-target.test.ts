// A convert or create killed with SIGKILL part way never leaves a file under the target's name
// that opens as a finished image of the wrong content (core/jobs/staging.ts: the image is written
// under a staging name and renamed into place when complete). After each kill the target name
// holds nothing, the image that was there before (unchanged), or the complete new image
// (qemu-img compare finds it identical to the source); a staging leftover is marked as one.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, openSync, readdirSync, writeSync, closeSync, ftruncateSync, rmSync, statSync } from 'node:fs';
import { SKIP_NO_QEMU, md5File, qemuImg, qemuImgJson, run, tempDir } from '../helpers/qemu.ts';
import { runPlatterAndKill } from './kill.ts';
import { Rng } from '../fuzz/rng.ts';
import { isStagingLeftover } from '../../core/jobs/staging.ts';

const KILLS = Number(process.env.PLATTER_TEST_LONG ? 30 : 6);
const MiB = 1 << 20;

/** 96 MiB of random data in 1 MiB extents with holes between (a copy long enough to kill). */
function makeSource(path: string): void {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, 256 * MiB);
  const buf = Buffer.alloc(MiB);
  for (let i = 0; i < 96; i++) {
    for (let j = 0; j < buf.length; j += 4) buf.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, j);
    writeSync(fd, buf, 0, buf.length, i * 2 * MiB + 4096);
  }
  closeSync(fd);
}

function leftovers(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.includes('platter-partial'));
}

test(`convert killed ${KILLS} times while copying: the target name holds nothing, the old image or the complete new one`, { skip: SKIP_NO_QEMU, timeout: 10 * 60_000 }, async () => {
  const t = tempDir();
  try {
    const src = t.path('src.raw');
    makeSource(src);
    const rng = new Rng(20261126);
    let killedWhileCopying = 0;
    for (let i = 0; i < KILLS; i++) {
      const fmt = ['qcow2', 'vmdk', 'vdi', 'raw'][i % 4]!;
      const out = t.path(`out-${i}.${fmt}`);
      // Every other run converts over an existing image, which must survive a kill unchanged.
      const old = i % 2 === 1;
      if (old) qemuImg('create', '-q', '-f', fmt, out, '1M');
      const oldMd5 = old ? md5File(out) : '';
      const r = await runPlatterAndKill(['convert', '-p', '-m', '1', '-f', 'raw', '-O', fmt, src, out], rng.below(400), { progress: true });
      if (r.killed) killedWhileCopying++;
      else assert.equal(r.status, 0, r.stderr);
      if (existsSync(out) && (!old || md5File(out) !== oldMd5)) {
        // Only a finished conversion may carry the name.
        const cmp = run('qemu-img', ['compare', '-f', 'raw', '-F', fmt, src, out]);
        assert.equal(cmp.status, 0, `run ${i} (${fmt}, ${r.killed ? 'killed' : 'finished'}): the target exists but is not the complete image: ${cmp.stdout}${cmp.stderr}`);
      } else if (!r.killed) assert.fail(`run ${i} finished but ${out} is not the new image`);
      for (const l of leftovers(t.dir)) {
        assert.ok(isStagingLeftover(l), `unmarked leftover ${l}`);
        rmSync(t.path(l));
      }
      rmSync(out, { force: true });
    }
    assert.ok(killedWhileCopying >= Math.ceil(KILLS / 2), `only ${killedWhileCopying} of ${KILLS} kills landed before the convert finished`);
  } finally {
    t.cleanup();
  }
});

test('create -o preallocation=full (vdi: static=on) killed part way leaves no image under the target name', { skip: SKIP_NO_QEMU, timeout: 5 * 60_000 }, async () => {
  const t = tempDir();
  try {
    for (const [i, fmt] of ['qcow2', 'raw', 'vdi'].entries()) {
      const out = t.path(`big-${i}.${fmt}`);
      const prealloc = fmt === 'vdi' ? ['-o', 'static=on'] : ['-o', 'preallocation=full'];
      // Killed 20-80 ms after its first file appears: while it preallocates 3 GiB.
      const r = await runPlatterAndKill(['create', '-q', '-f', fmt, ...prealloc, out, '3G'], 20 + i * 30, { fileIn: t.dir, stem: `big-${i}.` });
      if (!r.killed) assert.equal(r.status, 0, r.stderr);
      // Under the target's name there is nothing, or the finished image (the kill may land after
      // the rename, while the job reports): its full size, checked clean, every byte provisioned.
      if (existsSync(out)) {
        const what = `${fmt} (${r.killed ? 'killed' : 'finished'}): ${out}`;
        assert.equal(qemuImgJson<{ 'virtual-size': number }>('info', '-U', '-f', fmt, out)['virtual-size'], 3 * 2 ** 30, `${what}: size`);
        if (fmt !== 'raw') assert.equal(run('qemu-img', ['check', '-U', '-f', fmt, out]).status, 0, `${what}: check`);
        if (fmt === 'vdi') {
          const map = qemuImgJson<{ data: boolean; length: number }[]>('map', '-U', '-f', 'vdi', out);
          assert.equal(map.filter((e) => e.data).reduce((a, e) => a + e.length, 0), 3 * 2 ** 30, `${what}: every block mapped`);
        } else assert.ok(statSync(out).blocks * 512 >= 3 * 2 ** 30, `${what}: allocated ${statSync(out).blocks * 512} bytes`);
      }
      for (const l of leftovers(t.dir)) {
        assert.ok(isStagingLeftover(l), `unmarked leftover ${l}`);
        rmSync(t.path(l));
      }
      rmSync(out, { force: true });
    }
  } finally {
    t.cleanup();
  }
});

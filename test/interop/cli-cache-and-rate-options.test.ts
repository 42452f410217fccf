// Interop: qemu-img's cache options (-t cache, -T src_cache: none/off, writeback, writethrough,
// directsync, unsafe), rate limits (-r), aio modes (file.aio=, bench -i / -n) and convert -C's
// conflicts, on every subcommand that takes them. Refusals word for
// word against qemu-img 7.2; that -T none reaches the open as O_DIRECT and -T writeback does not
// (the running CLI's /proc/PID/fdinfo); that -r holds a convert and a commit to the rate; that
// kill(1) cancels a convert and leaves nothing behind.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { constants, writeFileSync } from 'node:fs';
import { SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';
import { openFlagsDuringConvert } from '../helpers/open-flags.ts';
import { assertSameAsQemuImg, platterInProcess, qemuImg, qemuWrite } from './harness.ts';

const MiB = 1 << 20;
const LINUX = process.platform === 'linux' ? false : 'O_DIRECT and /proc are Linux-only';

describe('cache modes and rate limits, as qemu-img takes them', { skip: SKIP_NO_QEMU }, () => {
  const t = tempDir('platter-cache-');
  const src = t.path('src.raw');
  writeFileSync(src, Buffer.alloc(6 * MiB, 0x5a));
  const base = t.path('base.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', base, '6M');

  test('bad -t, -T and -r values are refused in qemu-img words, by every subcommand that takes them', async () => {
    const top = t.path('top.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top);
    const out = t.path('never.raw');
    for (const args of [
      ['convert', '-T', 'bogus', '-f', 'raw', '-O', 'raw', src, out],
      ['convert', '-t', 'bogus', '-f', 'raw', '-O', 'raw', src, out],
      ['convert', '-r', 'bogus', '-f', 'raw', '-O', 'raw', src, out],
      ['convert', '-r', '-5', '-f', 'raw', '-O', 'raw', src, out],
      ['check', '-T', 'bogus', base],
      ['compare', '-T', 'bogus', base, base],
      ['commit', '-t', 'bogus', top],
      ['commit', '-r', '1x', top],
      ['rebase', '-t', 'bogus', '-u', '-b', '', top],
      ['rebase', '-T', 'bogus', '-u', '-b', '', top],
      ['amend', '-t', 'bogus', '-o', 'compat=1.1', top],
      ['bench', '-t', 'bogus', '-c', '1', base],
    ]) {
      await assertSameAsQemuImg(args);
    }
  });

  test('convert -C (copy offloading) with -c, -S or --salvage is refused as qemu-img refuses it, in its order', async () => {
    const out = t.path('never-C.img');
    for (const args of [
      ['-C', '-c', '-O', 'qcow2'],
      ['-C', '-S', '8k', '-O', 'raw'],
      ['-C', '-S', '4k', '-c', '-O', 'qcow2'],
      ['-C', '--salvage', '-S', '4k', '-O', 'raw'],
      ['--skip-broken-bitmaps', '-C', '-c', '-O', 'qcow2'],
    ]) {
      await assertSameAsQemuImg(['convert', ...args, '-f', 'raw', src, out]);
    }
    const r = await platterInProcess(['convert', '-C', '-f', 'raw', '-O', 'raw', src, out]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(qemuImg('compare', '-f', 'raw', '-F', 'raw', src, out), /Images are identical/);
  });

  test('aio modes: file.aio= and bench -i / -n are checked as qemu-img checks them (native needs cache.direct=on)', async () => {
    const opts = (extra: string) => `driver=raw,file.driver=file,file.filename=${src}${extra}`;
    await assertSameAsQemuImg(['info', '--image-opts', opts(',file.aio=bogus')]);
    await assertSameAsQemuImg(['info', '--image-opts', opts(',file.aio=native')]);
    for (const ok of [',file.aio=native,file.cache.direct=on', ',file.aio=io_uring', ',file.aio=threads']) {
      const r = await platterInProcess(['info', '--image-opts', opts(ok)]);
      assert.equal(r.status, 0, `${ok}: ${r.stderr}`);
    }
    for (const args of [['-i', 'bogus'], ['-i', 'native'], ['-n'], ['-i', 'threads', '-n']]) {
      await assertSameAsQemuImg(['bench', ...args, '-c', '1', '-f', 'raw', src]);
    }
    for (const args of [['-n', '-t', 'none'], ['-i', 'io_uring'], ['-i', 'native', '-t', 'off']]) {
      const r = await platterInProcess(['bench', ...args, '-c', '4', '-f', 'raw', src]);
      assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, /^Sending 4 read requests/);
    }
  });

  test('every cache mode qemu-img names (and "off" for none) is taken, and the copy is exact', async () => {
    for (const mode of ['none', 'off', 'writeback', 'writethrough', 'directsync', 'unsafe']) {
      const out = t.path(`out-${mode}.qcow2`);
      const r = await platterInProcess(['convert', '-t', mode, '-T', mode, '-f', 'raw', '-O', 'qcow2', src, out]);
      assert.equal(r.status, 0, `${mode}: ${r.stderr}`);
      assert.match(qemuImg('compare', '-f', 'raw', '-F', 'qcow2', src, out), /Images are identical/, mode);
      const c = await platterInProcess(['compare', '-T', mode, '-f', 'raw', '-F', 'qcow2', src, out]);
      assert.equal(c.status, 0, `compare -T ${mode}: ${c.stderr}`);
      const k = await platterInProcess(['check', '-T', mode, out]);
      assert.equal(k.status, 0, `check -T ${mode}: ${k.stderr}`);
    }
  });

  test('convert -T none reads the source with O_DIRECT, -T writeback through the page cache (/proc fdinfo)', { skip: LINUX }, async () => {
    for (const [mode, direct] of [['none', true], ['writeback', false]] as const) {
      const out = t.path(`slow-${mode}.raw`);
      const r = await openFlagsDuringConvert(['convert', '-r', '256k', '-T', mode, '-f', 'raw', '-O', 'raw', src, out], src);
      assert.ok(r.flags.length > 0, `-T ${mode}: the source was not seen open (${r.stderr})`);
      for (const f of r.flags) assert.equal((f & constants.O_DIRECT) !== 0, direct, `-T ${mode}: flags ${f.toString(8)}`);
      // kill(1) cancels the job: the staged target is gone, nothing carries the target's name.
      assert.match(r.stderr, /Operation cancelled/);
      assert.deepEqual(r.leftovers, [], `left behind: ${r.leftovers.join(', ')}`);
    }
  });

  test('convert -r and commit -r hold the copy to the rate (6 MiB at 2 MiB/s takes over 1.5 s)', async () => {
    const out = t.path('rated.raw');
    let t0 = performance.now();
    const r = await platterInProcess(['convert', '-r', '2M', '-f', 'raw', '-O', 'raw', src, out]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(performance.now() - t0 >= 1500, `convert -r 2M of 6 MiB took ${(performance.now() - t0).toFixed(0)} ms`);
    assert.match(qemuImg('compare', '-f', 'raw', '-F', 'raw', src, out), /Images are identical/);

    const top = t.path('rated-top.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top);
    // Six writes of 1 MiB: the commit copies them in pieces the limit can hold back.
    qemuWrite(top, 'qcow2', [0, 1, 2, 3, 4, 5].map((i) => [i * MiB, MiB, 0x30 + i] as [number, number, number]));
    t0 = performance.now();
    const c = await platterInProcess(['commit', '-r', '2M', top]);
    assert.equal(c.status, 0, c.stderr);
    assert.ok(performance.now() - t0 >= 1500, `commit -r 2M of 6 MiB took ${(performance.now() - t0).toFixed(0)} ms`);
    assert.match(qemuImg('compare', '-f', 'qcow2', '-F', 'qcow2', top, base), /Images are identical/);
  });
});

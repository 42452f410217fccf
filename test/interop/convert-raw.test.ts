// Interop: platter convert against qemu-img convert / compare / map on raw images: same guest
// contents, holes kept (block status and -S zero detection), -S 0 fully allocates, -n with
// --target-is-zero, several sources concatenated, -W -m out-of-order parallel copies.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, writeFileSync, openSync, writeSync, closeSync, ftruncateSync } from 'node:fs';
import { SKIP_NO_QEMU, md5File } from '../helpers/qemu.ts';
import { scratchWithSource } from '../helpers/scratch-source.ts';
import { platterInProcess, qemuImgRaw, qemuImg } from './harness.ts';

const MiB = 1 << 20;

/** A 16 MiB raw file: 3 MiB random at 1 MiB, 1 MiB of a byte pattern at 10 MiB, a 64 KiB run of
 *  written zeros at 6 MiB (data on disk, zeros to the guest), holes elsewhere. */
function makeSource(path: string): void {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, 16 * MiB);
  const rnd = Buffer.alloc(3 * MiB);
  for (let i = 0; i < rnd.length; i += 4) rnd.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
  writeSync(fd, rnd, 0, rnd.length, MiB);
  writeSync(fd, Buffer.alloc(MiB, 0x5a), 0, MiB, 10 * MiB);
  writeSync(fd, Buffer.alloc(64 * 1024), 0, 64 * 1024, 6 * MiB);
  closeSync(fd);
}

const allocated = (p: string) => statSync(p).blocks * 512;

describe('platter convert vs qemu-img convert (raw)', { skip: SKIP_NO_QEMU }, () => {
  const fx = scratchWithSource(makeSource);

  test('raw -> raw: same contents as the source and as qemu-img convert, holes kept (du close to data size)', async () => {
    const out = fx.t.path('out.raw');
    const r = await platterInProcess(['convert', '-f', 'raw', '-O', 'raw', fx.src, out]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(md5File(out), md5File(fx.src));
    const q = fx.t.path('q.raw');
    qemuImg('convert', '-f', 'raw', '-O', 'raw', fx.src, q);
    assert.equal(qemuImgRaw('compare', '-f', 'raw', '-F', 'raw', out, q).status, 0);
    // 4 MiB of data; the written zeros and the holes must not be allocated.
    assert.ok(allocated(out) <= 4 * MiB + 256 * 1024, `allocated ${allocated(out)} bytes`);
    assert.ok(allocated(out) >= 4 * MiB, `allocated ${allocated(out)} bytes`);
    // The same map as qemu-img's own conversion, past the first block (qemu-img's file-posix
    // allocates the first 4 KiB of every file it creates; Platter's file protocol does not).
    const window = ['--start-offset=4096', '--output=json'];
    assert.equal(qemuImg('map', '-f', 'raw', ...window, out), qemuImg('map', '-f', 'raw', ...window, q));
  });

  test('-S 0 writes every byte (fully allocated), like qemu-img convert -S 0', async () => {
    const out = fx.t.path('full.raw');
    const r = await platterInProcess(['convert', '-S', '0', '-f', 'raw', '-O', 'raw', fx.src, out]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(md5File(out), md5File(fx.src));
    assert.ok(allocated(out) >= 16 * MiB, `allocated ${allocated(out)}`);
  });

  test('-W -m 3 -S 64k: out-of-order parallel copy has the same contents', async () => {
    const out = fx.t.path('w.raw');
    const r = await platterInProcess(['convert', '-W', '-m', '3', '-S', '64k', '-f', 'raw', '-O', 'raw', fx.src, out]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(md5File(out), md5File(fx.src));
  });

  test('-n --target-is-zero into an existing zeroed target, and -n over garbage writes the zeros', async () => {
    const z = fx.t.path('z.raw');
    qemuImg('create', '-f', 'raw', z, '16M');
    let r = await platterInProcess(['convert', '-n', '--target-is-zero', '-f', 'raw', '-O', 'raw', fx.src, z]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(md5File(z), md5File(fx.src));
    const g = fx.t.path('garbage.raw');
    writeFileSync(g, Buffer.alloc(16 * MiB, 0xff));
    r = await platterInProcess(['convert', '-n', '-f', 'raw', '-O', 'raw', fx.src, g]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(md5File(g), md5File(fx.src));
  });

  test('two sources are concatenated, as qemu-img convert a b out does', async () => {
    const b = fx.t.path('b.raw');
    writeFileSync(b, Buffer.alloc(MiB, 0x11));
    const out = fx.t.path('cat.raw');
    const q = fx.t.path('qcat.raw');
    const r = await platterInProcess(['convert', '-f', 'raw', '-O', 'raw', fx.src, b, out]);
    assert.equal(r.status, 0, r.stderr);
    qemuImg('convert', '-f', 'raw', '-O', 'raw', fx.src, b, q);
    assert.equal(md5File(out), md5File(q));
  });

  test('-p prints qemu-img style progress lines', async () => {
    const r = await platterInProcess(['convert', '-p', '-f', 'raw', '-O', 'raw', fx.src, fx.t.path('p.raw')]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^ {4}\(0\.00\/100%\)\r/);
    assert.match(r.stdout, / {4}\(100\.00\/100%\)\r\n$/);
  });

  test('argument errors use qemu-img convert words and create nothing', async () => {
    const out = fx.t.path('never.raw');
    const cases: [string[], RegExp][] = [
      [['convert', '-m', '17', fx.src, out], /Invalid number of coroutines. Allowed number of coroutines is between 1 and 16/],
      [['convert', '-S', '100', fx.src, out], /Invalid buffer size for sparse output specified/],
      [['convert', '-c', '-f', 'raw', '-O', 'raw', fx.src, out], /Compression not supported for this file format/],
      [['convert', '-f', 'raw', fx.t.path('missing.raw'), out], /Could not open '.*missing\.raw': No such file or directory/],
    ];
    for (const [args, re] of cases) {
      const r = await platterInProcess(args);
      assert.equal(r.status, 1, args.join(' '));
      assert.match(r.stderr, re);
      assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, r.stderr);
      assert.throws(() => statSync(out), /ENOENT/, `${args.join(' ')} left ${out}`);
    }
  });
});

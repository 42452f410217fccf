// Interop, for every registered format qemu-img can create: platter convert raw -> fmt -> raw
// keeps the guest contents (checked with qemu-img compare, and qemu-img check on the platter-made
// image), and platter info/map of a qemu-img-made image agree with qemu-img info/map.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, writeSync, closeSync, ftruncateSync } from 'node:fs';
import { SKIP_NO_QEMU, md5File } from '../helpers/qemu.ts';
import { scratchWithSource } from '../helpers/scratch-source.ts';
import { platterInProcess, qemuImgRaw, qemuImg } from './harness.ts';

const MiB = 1 << 20;
/** Formats qemu-img 7.2 creates and checks without extra objects (secrets), with their -o. */
const FORMATS: { name: string; create: string[]; check: boolean }[] = [
  { name: 'qcow2', create: [], check: true },
  { name: 'qed', create: [], check: true },
  { name: 'vmdk', create: [], check: true },
  { name: 'vdi', create: [], check: true },
  { name: 'vpc', create: [], check: false },
  { name: 'vhdx', create: [], check: true },
  { name: 'qcow', create: [], check: false },
];

function qemuImgJsonSize(path: string): number {
  return JSON.parse(qemuImg('info', '-f', 'raw', '--output=json', path))['virtual-size'];
}

function makeSource(path: string): void {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, 8 * MiB);
  const b = Buffer.alloc(300 * 1024);
  for (let i = 0; i < b.length; i++) b[i] = (i * 7 + (i >> 9)) & 0xff;
  writeSync(fd, b, 0, b.length, 512 * 1024 + 4096);
  writeSync(fd, Buffer.alloc(MiB, 0xa5), 0, MiB, 6 * MiB);
  closeSync(fd);
}

describe('platter convert through every registered format (compared with qemu-img)', { skip: SKIP_NO_QEMU }, () => {
  const fx = scratchWithSource(makeSource);

  for (const f of FORMATS) {
    test(`raw -> ${f.name} -> raw keeps the contents (qemu-img compare${f.check ? ', qemu-img check' : ''})`, async () => {
      const img = fx.t.path(`p.${f.name}`);
      let r = await platterInProcess(['convert', '-f', 'raw', '-O', f.name, fx.src, img]);
      assert.equal(r.status, 0, r.stderr);
      const cmp = qemuImgRaw('compare', '-f', 'raw', '-F', f.name, fx.src, img);
      assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
      if (f.check) {
        const chk = qemuImgRaw('check', '-f', f.name, img);
        assert.equal(chk.status, 0, chk.stdout + chk.stderr);
      }
      const back = fx.t.path(`back-${f.name}.raw`);
      r = await platterInProcess(['convert', '-f', f.name, '-O', 'raw', img, back]);
      assert.equal(r.status, 0, r.stderr);
      // Same bytes; some formats round the virtual size up (vpc CHS geometry), so compare as qemu-img does.
      const again = qemuImgRaw('compare', '-f', 'raw', '-F', 'raw', fx.src, back);
      assert.equal(again.status, 0, again.stdout + again.stderr);
      if (qemuImgJsonSize(back) === 8 * MiB) assert.equal(md5File(back), md5File(fx.src));
    });

    test(`info --output=json and map --output=json of a qemu-img-made ${f.name} match qemu-img info/map`, async () => {
      const img = fx.t.path(`q.${f.name}`);
      qemuImg('convert', '-f', 'raw', '-O', f.name, ...f.create, fx.src, img);
      const qi = JSON.parse(qemuImg('info', '-f', f.name, '--output=json', img));
      const pi = await platterInProcess(['info', '-f', f.name, '--output=json', img]);
      assert.equal(pi.status, 0, pi.stderr);
      const mine = JSON.parse(pi.stdout);
      for (const k of ['virtual-size', 'filename', 'format', 'cluster-size', 'encrypted', 'backing-filename']) assert.deepEqual(mine[k], qi[k], k);
      const qm = qemuImg('map', '-f', f.name, '--output=json', img);
      const pm = await platterInProcess(['map', '-f', f.name, '--output=json', img]);
      assert.equal(pm.status, 0, pm.stderr);
      assert.equal(pm.stdout, qm);
    });
  }
});

// Interop: what qemu-img 7.2 prints and returns for a wrong command line, word for word, exit
// status included: its error_exit lines with "Try 'qemu-img --help' for more information", its
// own words for an unknown option or a missing argument (not glibc getopt's), cvtnum's two lines
// for bad numbers (map offsets, dd operands), and the refusals of snapshot, amend and check that
// name what is wrong; a missing new backing file of rebase and a missing convert -n target are
// named as qemu-img names them. A snapshot command without an action opens the image and does
// nothing more, as qemu-img does.

import { describe, test } from 'node:test';
import { mkdirSync, writeFileSync } from 'node:fs';
import { SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';
import { assertSameAsQemuImg, qemuImg } from './harness.ts';

describe('usage errors as qemu-img words them', { skip: SKIP_NO_QEMU }, () => {
  const t = tempDir('platter-usage-');
  const q = t.path('q.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', q, '4M');
  qemuImg('snapshot', '-c', 'one', q);
  const ov = t.path('ov.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-b', q, '-F', 'qcow2', ov);
  const r = t.path('r.raw');
  writeFileSync(r, Buffer.alloc(1 << 20, 1));
  const out = t.path('never.raw');
  // An overlay in a sub-folder, named relative to it: a new backing file is looked for there.
  mkdirSync(t.path('sub'));
  const ovInSub = t.path('sub/ov.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-b', '../q.qcow2', '-F', 'qcow2', ovInSub);

  const cases: string[][] = [
    ['info'],
    ['info', q, r],
    ['info', '--bogus', q],
    ['info', '-x', q],
    ['info', '-Ux', q],
    ['info', '--force-share=1', q],
    ['info', '--o=json', q],
    ['info', '--output'],
    ['info', '-f'],
    ['create', '-f', 'raw'],
    ['create', '-f', 'raw', out, '1M', 'extra'],
    ['check'],
    ['check', '-r', 'some', q],
    ['check', '-r', 'all', '-U', q],
    ['compare', q],
    ['convert', '--target', r, out],
    ['resize'],
    ['resize', q],
    ['resize', 'a', 'b', 'c'],
    ['snapshot', '-l', '-a', 'x', q],
    ['snapshot', '-l', '-l', q],
    ['snapshot', q],
    ['snapshot', '-a', 'nosuch', q],
    ['snapshot', '-d', 'nosuch', q],
    ['rebase', '-F', 'raw', ov],
    ['amend', q],
    ['amend', '-o', 'compat=bogus', q],
    ['map', '--start-offset=-1', q],
    ['map', '--start-offset=1x', q],
    ['map', '--max-length=-1', q],
    ['dd', 'bs=0', `if=${r}`, `of=${out}`],
    ['dd', 'bs=3G', `if=${r}`, `of=${out}`],
    ['dd', 'bs=1x', `if=${r}`, `of=${out}`],
    ['dd', 'count=-1', `if=${r}`, `of=${out}`],
    ['dd', 'skip=1x', `if=${r}`, `of=${out}`],
    ['dd', 'bogus=1', `if=${r}`, `of=${out}`],
    ['dd', `if=${r}`],
    ['rebase', '-b', 'nosuch.qcow2', '-F', 'qcow2', ovInSub],
    ['convert', '-n', '-O', 'qcow2', r, t.path('nosuch.qcow2')],
  ];

  test('each wrong command line: the same lines and the same exit status as qemu-img', async () => {
    for (const args of cases) await assertSameAsQemuImg(args);
  });
});

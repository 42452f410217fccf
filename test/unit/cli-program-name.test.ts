// The CLI names itself in messages as QEMU's tools do: by the name it was started as (argv[0]),
// so installed or started as `qemu-img` (as qemu-iotests start it) its errors read "qemu-img: ...".

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { programName } from '../../core/cli/program.ts';
import { REPO_ROOT } from '../helpers/qemu.ts';

test('programName is argv[0] without its folder, and "platter" when started through node', () => {
  assert.equal(programName('qemu-img'), 'qemu-img');
  assert.equal(programName('/usr/local/bin/qemu-img'), 'qemu-img');
  assert.equal(programName('platter'), 'platter');
  assert.equal(programName('node'), 'platter');
  assert.equal(programName('/usr/bin/nodejs'), 'platter');
  assert.equal(programName(process.execPath), 'platter');
});

test('started with argv[0] "qemu-img", an error line begins "qemu-img:" (as qemu-img 7.2 prints it)', () => {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/platter.mjs'), 'info', '/nonexistent/zzz.img'], { argv0: 'qemu-img', encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^qemu-img: Could not open '\/nonexistent\/zzz.img': /);
});

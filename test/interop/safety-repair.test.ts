// Repair with a backup (core/api/safety/repair.ts, #16 item 7) on qcow2 images qemu-img made and
// this test damaged: a leaked cluster is repaired after a backup that is byte-identical to the
// damaged file (and that qemu-img check still finds the leak in), the repaired image passes
// qemu-img check; an unaligned L1 entry survives repair, so the outcome offers salvage.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import { repairInput, repairWithBackup, backupFile } from '../../core/api/safety/repair.ts';
import { defaultEnv } from '../../core/jobs/common.ts';
import { md5File, qemuImg, qemuIo, run, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';
import { corruptL1, leakCluster } from '../helpers/qcow2-damage.ts';

describe('repair with a backup', { skip: SKIP_NO_QEMU }, () => {
  const tmp = tempDir('platter-repair-');
  after(() => tmp.cleanup());
  const env = () => ({ ...defaultEnv(), warn: () => {} });

  test('a leaked cluster: backup identical to the damaged file, repaired image clean under qemu-img check', async () => {
    const f = tmp.path('leaky.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', f, '4M');
    qemuIo('-c', 'write -P 0x5a 0 128K', f);
    leakCluster(f);
    assert.equal(run('qemu-img', ['check', f]).status, 3);
    const damaged = md5File(f);
    const phases: string[] = [];
    const r = await repairWithBackup(repairInput.parse({ image: { filename: f }, repair: 'leaks', backup: tmp.path('leaky.bak.qcow2') }), env(), { onProgress: (p) => p.phase && phases.push(p.phase) });
    assert.deepEqual(r.before, { corruptions: 0, leaks: 1, checkErrors: 0 });
    assert.deepEqual(r.after, { corruptions: 0, leaks: 0, checkErrors: 0 });
    assert.equal(r.repaired.leaks, 1);
    assert.equal(r.fixed, true);
    assert.ok(phases.some((p) => p.startsWith('backup')));
    assert.equal(md5File(r.backup.path), damaged);
    assert.equal(run('qemu-img', ['check', r.backup.path]).status, 3);
    assert.equal(run('qemu-img', ['check', f]).status, 0);
    assert.equal(run('qemu-img', ['compare', f, r.backup.path]).status, 0);
  });

  test('the plain copy (no reflink) is sparse-safe and equal; an existing backup is never overwritten', async () => {
    const f = tmp.path('plain.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', f, '4M');
    qemuIo('-c', 'write -P 0x11 1M 64K', f);
    const dst = tmp.path('plain.copy.qcow2');
    const b = await backupFile(f, dst);
    assert.ok(readFileSync(dst).equals(readFileSync(f)), b.method);
    copyFileSync(f, tmp.path('exists.qcow2'));
    await assert.rejects(backupFile(f, tmp.path('exists.qcow2')), /exists already/);
  });

  test('an unaligned L1 entry is not fixed by repair: the outcome offers salvage', async () => {
    const f = tmp.path('broken.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', f, '4M');
    qemuIo('-c', 'write -P 0x5a 0 128K', f);
    corruptL1(f);
    const r = await repairWithBackup(repairInput.parse({ image: { filename: f }, repair: 'all' }), env());
    assert.ok(r.before.corruptions > 0);
    assert.equal(r.fixed, false);
    assert.match(r.salvageTarget!, /broken\.salvaged\.qcow2$/);
    assert.equal(run('qemu-img', ['check', r.backup.path]).status, 2);
  });
});

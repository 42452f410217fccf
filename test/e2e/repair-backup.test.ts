// #16 item 7 through the GUI: Repair on a qcow2 with a leaked cluster first makes a backup (the
// damaged file, byte for byte, which qemu-img check still finds leaking), then repairs (qemu-img
// check: clean) and shows the counts before and after; an image the repair cannot fix (unaligned
// L1 entry) offers salvage, which writes a new image qemu-img check accepts.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { md5File, qemuImg, qemuIo, run } from '../helpers/qemu.ts';
import { corruptL1, leakCluster } from '../helpers/qcow2-damage.ts';
import { skipReason, startE2E, type E2E } from './harness.ts';

const skip = await skipReason(['qcow2']);

describe('repair with a backup (browser mode)', { skip }, () => {
  let e2e: E2E;
  before(async () => {
    e2e = await startE2E();
  });
  after(async () => {
    await e2e?.close();
  });

  test('repair leaks after a backup; an unfixable image is salvaged into a new one', { timeout: 240_000 }, async () => {
    const leaky = join(e2e.library, 'leaky.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', leaky, '8M');
    qemuIo('-c', 'write -P 0x5a 0 256K', leaky);
    leakCluster(leaky);
    const damaged = md5File(leaky);
    const broken = join(e2e.library, 'broken.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', broken, '1M'); // salvage reads sector by sector past the damage: small
    qemuIo('-c', 'write -P 0x5a 0 256K', broken);
    corruptL1(broken);

    const { page } = e2e;
    await page.goto(e2e.url);
    await page.getByRole('row', { name: /leaky\.qcow2/ }).click();
    await page.getByRole('complementary', { name: 'Image details' }).getByRole('button', { name: 'Check…' }).click();
    const check = page.getByRole('dialog', { name: 'Check leaky.qcow2' });
    await check.getByRole('button', { name: 'Repair leaks…' }).click();
    const dlg = page.getByRole('alertdialog', { name: 'Repair leaks?' });
    assert.equal(await dlg.getByLabel('Make a backup copy first (recommended)').isChecked(), true);
    await dlg.getByRole('region', { name: 'Preview' }).getByText(/1 leaked cluster/).waitFor({ timeout: 30_000 });
    await e2e.screenshot('repair-backup-confirm');
    await dlg.getByRole('button', { name: 'Repair leaks' }).click();
    const result = dlg.getByRole('region', { name: 'Repair result' });
    await result.getByText('Repaired: no errors are left.').waitFor({ timeout: 60_000 });
    const table = await result.getByRole('table', { name: 'Before and after' }).innerText();
    assert.match(table, /Before\s+0\s+1\s+0/);
    assert.match(table, /After\s+0\s+0\s+0/);
    await e2e.screenshot('repair-backup-result');
    const backupPath = (await result.locator('code').innerText()).trim();
    assert.match(backupPath, /leaky\.backup-\d{8}-\d{6}\.qcow2$/);
    assert.equal(md5File(backupPath), damaged, 'the backup is the file as it was before the repair');
    assert.equal(run('qemu-img', ['check', backupPath]).status, 3, 'the backup still has the leak');
    assert.equal(run('qemu-img', ['check', leaky]).status, 0, 'the repaired image is clean');
    assert.equal(run('qemu-img', ['compare', leaky, backupPath]).status, 0);
    await dlg.getByRole('button', { name: 'Close', exact: true }).click();
    await check.getByRole('button', { name: 'Close dialog' }).click();

    await page.getByRole('row', { name: /^broken\.qcow2/ }).click();
    await page.getByRole('complementary', { name: 'Image details' }).getByRole('button', { name: 'Check…' }).click();
    const check2 = page.getByRole('dialog', { name: 'Check broken.qcow2' });
    await check2.getByRole('button', { name: 'Repair all…' }).click();
    const dlg2 = page.getByRole('alertdialog', { name: 'Repair all errors?' });
    await dlg2.getByRole('region', { name: 'Preview' }).getByRole('alert').waitFor({ timeout: 30_000 });
    await dlg2.getByRole('button', { name: 'Repair all' }).click();
    const result2 = dlg2.getByRole('region', { name: 'Repair result' });
    await result2.getByText('The repair could not fix everything.').waitFor({ timeout: 60_000 });
    await result2.getByRole('button', { name: 'Salvage into broken.salvaged.qcow2' }).click();
    await result2.getByText(/^Salvaged into broken\.salvaged\.qcow2/).waitFor({ timeout: 120_000 });
    await e2e.screenshot('repair-salvage');
    const salvaged = join(e2e.library, 'broken.salvaged.qcow2');
    assert.ok(existsSync(salvaged));
    assert.equal(run('qemu-img', ['check', salvaged]).status, 0);
    assert.equal(JSON.parse(qemuImg('info', '--output=json', salvaged))['virtual-size'], 1 << 20);
    assert.ok(readdirSync(e2e.library).some((n) => /^broken\.backup-\d{8}-\d{6}\.qcow2$/.test(n)));
    assert.deepEqual(e2e.errors, []);
  });
});

// The desktop app's "Authorize…" for a drive its user may not open (issue #19), with the renderer
// in Electron mode (test/e2e/electron-bridge.ts: window.platter bridged to an 'electron'
// dispatcher; Electron itself cannot run here) and the elevation replaced by a plain spawn of the
// real helper (electron/elevate.ts plainStart). The drive list says this user has no access to
// a real loop device; the helper, a process of its own, lists drives itself and finds it. Imaging
// and writing go through Authorize…, run in the helper, are verified, and qemu-img compare
// agrees. Browser mode's plain refusal is tested in drives-loop-device.test.ts.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { skipReason } from './harness.ts';
import { startElectronMode, type ElectronModePage } from './electron-bridge.ts';
import { REPO_ROOT, run, tempDir } from '../helpers/qemu.ts';
import { detachLoop, LOOP_SKIP } from '../helpers/loop-device.ts';
import { attachStick, makeInstaller, openWriteDialog } from './drives-fixtures.ts';
import { setDriveLister, type ElevatedDriveJob } from '../../core/api/routes-drives.ts';
import { listHostDrives } from '../../core/host/drives.ts';
import { plainStart, runElevatedDriveJob } from '../../electron/elevate.ts';

const skip = LOOP_SKIP || (await skipReason(['qcow2', 'raw']));
const helper = { exe: process.execPath, args: ['--import', 'tsx', join(REPO_ROOT, 'core/cli/elevated-worker.ts')] };

describe('Drives in the desktop app: Authorize… runs the job in the elevated helper', { skip }, () => {
  const t = tempDir('platter-drives-auth-e2e-');
  let dev = '';
  let app: ElectronModePage;
  const elevated: ElevatedDriveJob[] = [];
  before(async () => {
    dev = attachStick(t.path('stick.img'));
    setDriveLister(async () => (await listHostDrives()).filter((d) => d.path === dev).map((d) => ({ ...d, access: 'none' as const })));
    app = await startElectronMode({
      elevate: (job, ctl) => {
        elevated.push(job);
        return runElevatedDriveJob(job, ctl, { helper, start: plainStart });
      },
    });
  });
  after(async () => {
    setDriveLister(undefined);
    await app?.close();
    if (dev) detachLoop(dev);
    t.cleanup();
  });

  test('image a drive this user may not open: Authorize… runs it in the helper, verified; qemu-img compare agrees', async () => {
    const { page } = app;
    const item = page.getByRole('region', { name: 'Drives' }).getByRole('listitem', { name: `Drive ${dev}` });
    await item.getByText(`Your user may not open ${dev}: Platter asks for administrator rights (Authorize…) when you image or write it`).waitFor();
    await item.getByRole('button', { name: `Image drive ${dev}` }).click();
    const dialog = page.getByRole('dialog', { name: `Image ${dev}` });
    await dialog.getByRole('note').getByText(/asks your system for administrator rights to read it into an image in a folder you own/).waitFor();
    const out = join(app.library, 'stick.qcow2');
    await dialog.getByLabel('New image file').fill(out);
    await app.screenshot('drives-authorize');
    await dialog.getByRole('button', { name: 'Authorize…' }).click();
    await page.getByRole('status').filter({ hasText: `Imaged ${dev} into ${out} (verified: identical)` }).waitFor({ timeout: 60_000 });
    assert.deepEqual(elevated.map((j) => [j.kind, j.input.drive, j.input.elevate]), [['image', dev, true]]);
    const cmp = run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', dev, out]);
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
  });

  test('write an image onto it: confirmation, then Authorize…; verified; qemu-img compare agrees', async () => {
    const { page } = app;
    const img = makeInstaller(t.path('installer.qcow2'));
    const dialog = await openWriteDialog(page, dev, img);
    const go = dialog.getByRole('button', { name: 'Authorize…' });
    await dialog.getByLabel(/Type the drive's name/).fill(dev.replace('/dev/', ''));
    assert.equal(await go.isDisabled(), true, 'the checkbox is not ticked yet');
    await dialog.getByRole('checkbox', { name: /I confirm this is Loop device/ }).check();
    await go.click();
    await page.getByRole('status').filter({ hasText: `Wrote ${img} to ${dev} (verified)` }).waitFor({ timeout: 60_000 });
    assert.deepEqual(elevated.map((j) => j.kind), ['image', 'write']);
    const cmp = run('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', img, dev]);
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
    assert.deepEqual(app.errors, []);
  });
});

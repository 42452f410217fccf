// The Drives section against a real loop device (issue #19), in browser mode through chromium:
// the loop device is listed with its model and size; "Image this drive" makes a qcow2 that
// qemu-img compare finds equal to the device; "Write image to drive" (typed name + confirmation)
// writes an image onto it, verified, and qemu-img compare agrees. The refusals (system disk,
// mounted disk, a confirmation that does not match the drive) are tested with a fake drive list
// whose entries point at the same loop device, so a missing refusal would show as changed bytes.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { skipReason, startE2E, type E2E } from './harness.ts';
import { qemuImg, run, tempDir } from '../helpers/qemu.ts';
import { detachLoop, LOOP_SKIP } from '../helpers/loop-device.ts';
import { attachStick, makeInstaller, openWriteDialog } from './drives-fixtures.ts';
import { drivesRoutes, setDriveLister, type DriveView } from '../../core/api/routes-drives.ts';
import { defaultEnv } from '../../core/jobs/common.ts';
import type { HostDrive } from '../../core/host/drives.ts';

const MiB = 1 << 20;
const skip = LOOP_SKIP || (await skipReason(['qcow2', 'raw']));

const md5 = (path: string) => createHash('md5').update(readFileSync(path)).digest('hex');

describe('Drives: a loop device imaged and written from the GUI', { skip }, () => {
  const t = tempDir('platter-drives-e2e-');
  let dev = '';
  let e2e: E2E;
  before(async () => {
    dev = attachStick(t.path('stick.img'));
    e2e = await startE2E();
  });
  after(async () => {
    setDriveLister(undefined);
    await e2e?.close();
    if (dev) detachLoop(dev);
    t.cleanup();
  });

  test('the loop device is listed; imaging it into qcow2 is verified and equals the device (qemu-img compare)', async () => {
    const { page } = e2e;
    const drives = page.getByRole('region', { name: 'Drives' });
    const item = drives.getByRole('listitem', { name: `Drive ${dev}` });
    await item.waitFor();
    await item.getByText('Loop device').waitFor();
    await item.getByText('16 MiB').waitFor();
    await e2e.screenshot('drives-section');
    await item.getByRole('button', { name: `Image drive ${dev}` }).click();
    const dialog = page.getByRole('dialog', { name: `Image ${dev}` });
    const out = join(e2e.library, 'stick.qcow2');
    await dialog.getByLabel('New image file').fill(out);
    await dialog.getByLabel('Format').selectOption('qcow2');
    await dialog.getByRole('button', { name: 'Image drive' }).click();
    await page.getByRole('status').filter({ hasText: `Imaged ${dev} into ${out} (verified: identical)` }).waitFor({ timeout: 60_000 });
    assert.equal(run('qemu-img', ['check', out]).status, 0);
    const cmp = run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', dev, out]);
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
  });

  test('writing an image onto it asks for the typed name and confirmation, then verifies; qemu-img compare agrees', async () => {
    const { page } = e2e;
    const img = makeInstaller(t.path('installer.qcow2'));
    const dialog = await openWriteDialog(page, dev, img);
    const go = dialog.getByRole('button', { name: 'Erase and write' });
    assert.equal(await go.isDisabled(), true, 'nothing confirmed yet');
    await dialog.getByLabel(/Type the drive's name/).fill(dev.replace('/dev/', ''));
    assert.equal(await go.isDisabled(), true, 'the checkbox is not ticked yet');
    await dialog.getByRole('checkbox', { name: /I confirm this is Loop device/ }).check();
    await e2e.screenshot('drives-write-confirm');
    await go.click();
    await page.getByRole('status').filter({ hasText: `Wrote ${img} to ${dev} (verified)` }).waitFor({ timeout: 60_000 });
    const cmp = run('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', img, dev]);
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
    assert.deepEqual(e2e.errors, []);
  });

  test('the system disk and a mounted disk cannot be written: disabled in the list, refused by the server, bytes unchanged', async () => {
    const { page } = e2e;
    const base = { type: 'disk' as const, size: 16 * MiB, removable: true, readOnly: false };
    const fake: HostDrive[] = [
      { ...base, path: dev, name: dev.replace('/dev/', ''), model: 'Fake System SSD', mountpoints: ['/', '/boot'], system: true },
    ];
    setDriveLister(async () => fake);
    await page.getByRole('button', { name: 'Refresh drives' }).click();
    const item = page.getByRole('region', { name: 'Drives' }).getByRole('listitem', { name: `Drive ${dev}` });
    await item.getByText('Fake System SSD').waitFor();
    await item.getByText('system disk').waitFor();
    assert.equal(await item.getByRole('button', { name: `Write image to drive ${dev}` }).isDisabled(), true);
    await e2e.screenshot('drives-system-disk');

    const img = t.path('zeros.raw');
    qemuImg('create', '-q', '-f', 'raw', img, '1M');
    const before = md5(t.path('stick.img'));
    const ctx = { env: defaultEnv(), ctl: {} } as Parameters<typeof drivesRoutes.drivesWrite.run>[1];
    const write = async (confirm: { model: string; size: number }) => drivesRoutes.drivesWrite.run(drivesRoutes.drivesWrite.input.parse({ image: { filename: img, format: 'raw' }, drive: dev, confirm }), ctx);
    await assert.rejects(write({ model: 'Fake System SSD', size: 16 * MiB }), /holds the running system \(\/, \/boot\): Platter never writes onto it/);

    fake[0] = { ...base, path: dev, name: dev.replace('/dev/', ''), model: 'Fake USB Stick', mountpoints: ['/media/stick'], system: false };
    await page.getByRole('button', { name: 'Refresh drives' }).click();
    await item.getByText('mounted at /media/stick').waitFor();
    assert.equal(await item.getByRole('button', { name: `Write image to drive ${dev}` }).isDisabled(), true);
    await assert.rejects(write({ model: 'Fake USB Stick', size: 16 * MiB }), /has mounted filesystems \(\/media\/stick\): unmount them first/);

    // Unmounted, but the confirmation names another drive (or size): refused too.
    fake[0] = { ...fake[0]!, mountpoints: [] };
    await assert.rejects(write({ model: 'Other Stick', size: 16 * MiB }), /The confirmation does not match/);
    await assert.rejects(write({ model: 'Fake USB Stick', size: 8 * MiB }), /The confirmation does not match/);
    assert.equal(md5(t.path('stick.img')), before, 'the device was not written');
    const listed = (await drivesRoutes.drivesList.run(undefined, ctx)) as DriveView[];
    assert.equal(listed[0]!.access, 'read-write');

    // A drive the server's user cannot open (here: a node that is not there): said plainly, in the
    // list and by the server.
    const gone = '/dev/platter-no-access';
    fake.push({ ...base, path: gone, name: 'platter-no-access', model: 'Locked Disk', mountpoints: [], system: false });
    await page.getByRole('button', { name: 'Refresh drives' }).click();
    const locked = page.getByRole('region', { name: 'Drives' }).getByRole('listitem', { name: `Drive ${gone}` });
    await locked.getByText(`The server's user lacks access to ${gone}`).waitFor();
    assert.equal(await locked.getByRole('button', { name: `Image drive ${gone}` }).isDisabled(), true);
    assert.equal(await locked.getByRole('button', { name: `Write image to drive ${gone}` }).isDisabled(), true);
    const image = async () => drivesRoutes.drivesImage.run(drivesRoutes.drivesImage.input.parse({ drive: gone, target: { filename: t.path('never.qcow2') } }), ctx);
    await assert.rejects(image(), /the server's user \(uid \d+\) lacks access to \/dev\/platter-no-access/);
    const writeGone = async () => drivesRoutes.drivesWrite.run(drivesRoutes.drivesWrite.input.parse({ image: { filename: img, format: 'raw' }, drive: gone, confirm: { model: 'Locked Disk', size: 16 * MiB } }), ctx);
    await assert.rejects(writeGone(), /lacks access to \/dev\/platter-no-access \(write\)/);
    await e2e.screenshot('drives-no-access');
  });
});

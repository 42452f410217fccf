// Which drive jobs go to the elevated helper (core/api/routes-drives.ts): only a call that asks
// (`elevate: true`) in an app that can (the desktop app lends `app.elevate`), only for a drive
// this user lacks access to; the write refusals (system disk, mounted, a confirmation that does
// not match) are made before anything is elevated; browser mode (no `app.elevate`) keeps the
// plain "lacks access" refusal whatever the call asks. No device is touched: the fake drives'
// paths do not exist and the fake elevator only records.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { drivesRoutes, setDriveLister, type DriveElevator, type ElevatedDriveJob } from '../../core/api/routes-drives.ts';
import { defaultEnv } from '../../core/jobs/common.ts';
import type { HostDrive } from '../../core/host/drives.ts';

const MiB = 1 << 20;
const base = { type: 'disk' as const, size: 64 * MiB, removable: true, readOnly: false, mountpoints: [] as string[], system: false };
const drives: (HostDrive & { access?: 'none' | 'read-only' | 'read-write' })[] = [
  { ...base, path: '/dev/platter-test-locked', name: 'platter-test-locked', model: 'Locked Stick', access: 'none' },
  { ...base, path: '/dev/platter-test-ro', name: 'platter-test-ro', model: 'Readable Stick', access: 'read-only' },
  { ...base, path: '/dev/platter-test-system', name: 'platter-test-system', model: 'System SSD', access: 'none', system: true, mountpoints: ['/'] },
  { ...base, path: '/dev/platter-test-mounted', name: 'platter-test-mounted', model: 'Mounted Stick', access: 'none', mountpoints: ['/media/x'] },
];
setDriveLister(async () => drives);
after(() => setDriveLister(undefined));

function ctx(elevate?: DriveElevator) {
  return { env: defaultEnv(), ctl: {}, ...(elevate ? { app: { elevate } } : {}) } as unknown as Parameters<typeof drivesRoutes.drivesImage.run>[1];
}
const image = (drive: string, elevate: boolean) => drivesRoutes.drivesImage.input.parse({ drive, target: { filename: '/tmp/platter-never.qcow2' }, elevate });
const write = (drive: string, elevate: boolean, confirm?: { model: string; size: number }) => {
  const d = drives.find((x) => x.path === drive)!;
  return drivesRoutes.drivesWrite.input.parse({ image: { filename: '/tmp/platter-never.raw' }, drive, confirm: confirm ?? { model: d.model, size: d.size }, elevate });
};

test('a drive this user may not open goes to the elevator only when the call asks and the app can', async () => {
  const seen: ElevatedDriveJob[] = [];
  const elevator: DriveElevator = async (job) => {
    seen.push(job);
    return { verified: true, message: 'elevated' };
  };
  assert.deepEqual(await drivesRoutes.drivesImage.run(image('/dev/platter-test-locked', true), ctx(elevator)), { verified: true, message: 'elevated' });
  assert.deepEqual(await drivesRoutes.drivesWrite.run(write('/dev/platter-test-ro', true), ctx(elevator)), { verified: true, message: 'elevated' });
  assert.deepEqual(seen.map((j) => [j.kind, j.input.drive]), [['image', '/dev/platter-test-locked'], ['write', '/dev/platter-test-ro']]);
  // Not asked: the plain refusal, nothing elevated.
  await assert.rejects(async () => drivesRoutes.drivesImage.run(image('/dev/platter-test-locked', false), ctx(elevator)), /lacks access to \/dev\/platter-test-locked \(read\)/);
  assert.equal(seen.length, 2);
});

test('browser mode (no elevator) refuses plainly even when the call asks', async () => {
  await assert.rejects(async () => drivesRoutes.drivesImage.run(image('/dev/platter-test-locked', true), ctx()), (e: Error) => /^the server's user \(uid \d+\) lacks access to \/dev\/platter-test-locked \(read\)/.test(e.message));
  await assert.rejects(async () => drivesRoutes.drivesWrite.run(write('/dev/platter-test-ro', true), ctx()), /lacks access to \/dev\/platter-test-ro \(write\)/);
});

test('the system disk, a mounted disk and a wrong confirmation are refused before any elevation', async () => {
  let called = 0;
  const elevator: DriveElevator = async () => {
    called++;
    return {};
  };
  await assert.rejects(async () => drivesRoutes.drivesWrite.run(write('/dev/platter-test-system', true), ctx(elevator)), /holds the running system/);
  await assert.rejects(async () => drivesRoutes.drivesWrite.run(write('/dev/platter-test-mounted', true), ctx(elevator)), /has mounted filesystems \(\/media\/x\): unmount them first/);
  await assert.rejects(async () => drivesRoutes.drivesWrite.run(write('/dev/platter-test-locked', true, { model: 'Locked Stick', size: 1 }), ctx(elevator)), /confirmation does not match/);
  assert.equal(called, 0);
});

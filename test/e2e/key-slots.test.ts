// #16 item 4 through the GUI: a luks image made by qemu-img shows its key slots; a passphrase
// added in the GUI opens the image in cryptsetup and in qemu-img (compare with --object secret),
// a slot is removed, the last slot cannot be; no passphrase ever comes back in a server frame
// (events included) or lands in localStorage or the page's stores (as the unlock test checks).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { have, qemuImg, run } from '../helpers/qemu.ts';
import { skipReason, startE2E, type E2E } from './harness.ts';

const skip = (await skipReason(['luks', 'qcow2'])) || (have('cryptsetup') ? false : 'cryptsetup not installed');

describe('key slots of encrypted images (browser mode)', { skip }, () => {
  let e2e: E2E;
  before(async () => {
    e2e = await startE2E();
  });
  after(async () => {
    await e2e?.close();
  });

  test('add a passphrase in the GUI: cryptsetup and qemu-img open the image with it; remove a slot; the last cannot go', { timeout: 180_000 }, async () => {
    const first = 'first: correct horse';
    const added = 'Platter key slot: battery staple 42';
    const file = join(e2e.library, 'vault.luks');
    qemuImg('create', '-q', '-f', 'luks', '--object', `secret,id=s0,data=${first}`, '-o', 'key-secret=s0,iter-time=10', file, '8M');
    const { page } = e2e;
    const frames: string[] = [];
    page.on('websocket', (ws) => ws.on('framereceived', (f) => frames.push(String(f.payload))));
    await page.goto(e2e.url);
    await page.getByRole('row', { name: /vault\.luks/ }).click();
    const slots = page.getByRole('complementary', { name: 'Image details' }).getByRole('region', { name: 'Key slots' });
    await slots.getByText('Key slots (1 of 8 in use)').waitFor({ timeout: 30_000 });
    assert.equal(await slots.getByRole('button', { name: 'Remove key slot 0' }).isDisabled(), true, 'the last slot cannot be removed');

    await slots.getByRole('button', { name: 'Add passphrase…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Add a passphrase to vault.luks' });
    await dialog.getByLabel('Current passphrase').fill(first);
    await dialog.getByLabel('New passphrase', { exact: true }).fill(added);
    await dialog.getByLabel('Confirm new passphrase').fill(`${added}x`);
    await dialog.getByRole('button', { name: 'Add passphrase' }).click();
    await dialog.getByRole('alert').filter({ hasText: 'The passphrases do not match.' }).waitFor();
    await dialog.getByLabel('Confirm new passphrase').fill(added);
    assert.ok(Number(await dialog.getByRole('meter', { name: 'Passphrase strength' }).getAttribute('aria-valuenow')) >= 3);
    await e2e.screenshot('key-slots-add');
    await dialog.getByRole('button', { name: 'Add passphrase' }).click();
    await slots.getByText('Key slots (2 of 8 in use)').waitFor({ timeout: 90_000 });
    await slots.scrollIntoViewIfNeeded();
    await e2e.screenshot('key-slots');

    // cryptsetup: the new passphrase opens it; luksDump shows two slots.
    const t = run('cryptsetup', ['luksOpen', '--test-passphrase', '--key-file=-', file], { input: added });
    assert.equal(t.status, 0, t.stderr);
    const dump = run('cryptsetup', ['luksDump', file]).stdout;
    assert.match(dump, /Key Slot 0: ENABLED/);
    assert.match(dump, /Key Slot 1: ENABLED/);
    // qemu-img: opened with the new passphrase, the data equals what the old one reads.
    const cmp = run('qemu-img', ['compare', '--object', `secret,id=a,data=${first}`, '--object', `secret,id=b,data=${added}`, '--image-opts', `driver=luks,file.filename=${file},key-secret=a`, `driver=luks,file.filename=${file},key-secret=b`]);
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);

    // Remove slot 0 (the first passphrase), proving it with the added one.
    await slots.getByRole('button', { name: 'Remove key slot 0' }).click();
    const rm = page.getByRole('dialog', { name: 'Remove key slot 0 of vault.luks' });
    await rm.getByLabel('Current passphrase').fill(added);
    await rm.getByRole('button', { name: 'Remove key slot' }).click();
    await slots.getByText('Key slots (1 of 8 in use)').waitFor({ timeout: 90_000 });
    assert.notEqual(run('cryptsetup', ['luksOpen', '--test-passphrase', '--key-file=-', file], { input: first }).status, 0);
    assert.equal(run('cryptsetup', ['luksOpen', '--test-passphrase', '--key-file=-', file], { input: added }).status, 0);
    assert.equal(await slots.getByRole('button', { name: 'Remove key slot 1' }).isDisabled(), true);

    for (const f of frames) for (const p of [first, added]) assert.ok(!f.includes(p), `a server frame carried a passphrase: ${f.slice(0, 200)}`);
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
    for (const p of [first, added]) assert.ok(!stored.includes(p), 'web storage holds a passphrase');
    const jobs = await page.locator('.jobs, [aria-label*="Jobs" i]').first().innerText().catch(() => '');
    for (const p of [first, added]) assert.ok(!jobs.includes(p), 'the jobs panel shows a passphrase');
    assert.deepEqual(e2e.errors, []);
  });
});

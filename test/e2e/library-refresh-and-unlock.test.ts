// E2E: the desktop app in browser mode (chromium via playwright-core), checked against QEMU's tools:
//   1. the library follows the disk by itself: an image `qemu-img create` makes in the library folder
//      shows as a row, `qemu-img resize` updates its row, a rename moves it, a deleted image's row goes, all within
//      a few seconds and without any click (the main process watches the folder, core/api/library-watch.ts);
//   2. an encrypted qcow2+luks source made by `qemu-img create --object secret,...` asks for its
//      passphrase before Convert: a wrong one shows the engine's "Invalid password, cannot unlock any
//      keyslot" and creates nothing; the right one converts it to a plain qcow2 that
//      `qemu-img compare --object ... --image-opts` calls identical. The passphrase never comes back
//      in a WebSocket frame and never lands in localStorage. Check asks for it too.
// One server and one browser serve both tests.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { qemuImg, qemuIo, run } from '../helpers/qemu.ts';
import { skipReason, startE2E, type E2E } from './harness.ts';

const skip = await skipReason(['qcow2']);
/** How long a change on disk may take to reach the table (debounce + scan + render). */
const FOLLOW_MS = 5000;

describe('library refresh and encrypted images (browser mode, chromium)', () => {
  let e2e: E2E;
  before(async () => {
    if (!skip) e2e = await startE2E();
  });
  after(async () => {
    await e2e?.close();
  });

  test('images qemu-img creates and resizes, and files renamed or deleted in a library folder, show in the table without a click', { skip, timeout: 60_000 }, async () => {
    const { page, library } = e2e;
    qemuImg('create', '-q', '-f', 'qcow2', join(library, 'before.qcow2'), '1M');
    await page.goto(e2e.url);
    const table = page.getByRole('table', { name: 'Disk images' });
    await table.getByRole('row', { name: /before\.qcow2/ }).waitFor();

    const fresh = join(library, 'made-outside.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', fresh, '16M');
    const row = table.getByRole('row', { name: /made-outside\.qcow2/ });
    await row.waitFor({ timeout: FOLLOW_MS });
    await row.filter({ hasText: '16 MiB' }).waitFor({ timeout: FOLLOW_MS });

    qemuImg('resize', '-q', fresh, '48M');
    await row.filter({ hasText: '48 MiB' }).waitFor({ timeout: FOLLOW_MS });

    const renamed = join(library, 'renamed.qcow2');
    renameSync(fresh, renamed);
    await table.getByRole('row', { name: /renamed\.qcow2/ }).waitFor({ timeout: FOLLOW_MS });
    await row.waitFor({ state: 'detached', timeout: FOLLOW_MS });

    rmSync(renamed);
    await table.getByRole('row', { name: /renamed\.qcow2/ }).waitFor({ state: 'detached', timeout: FOLLOW_MS });
    // The untouched row stayed.
    assert.equal(await table.getByRole('row', { name: /before\.qcow2/ }).count(), 1);
    rmSync(join(library, 'before.qcow2'));
    await table.getByRole('row', { name: /before\.qcow2/ }).waitFor({ state: 'detached', timeout: FOLLOW_MS });
    assert.deepEqual(e2e.errors, []);
  });

  test('converting a qemu-img qcow2+luks image asks for its passphrase, refuses a wrong one and gives a copy qemu-img compare calls identical', { skip, timeout: 90_000 }, async () => {
    const { page, library } = e2e;
    const passphrase = 'Platter unlock: correct horse';
    const src = join(library, 'locked.qcow2');
    const dst = join(library, 'plain.qcow2');
    const secret = `secret,id=s0,data=${passphrase}`;
    qemuImg('create', '-q', '--object', secret, '-f', 'qcow2', '-o', 'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10', src, '8M');
    const srcOpts = `driver=qcow2,file.filename=${src},encrypt.key-secret=s0`;
    qemuIo('--object', secret, '--image-opts', '-c', 'write -P 0x5a 0 1M', '-c', 'write -P 0xc3 5M 64k', srcOpts);

    // Every frame the server sends, to prove the passphrase never comes back.
    const frames: string[] = [];
    page.on('websocket', (ws) => ws.on('framereceived', (f) => frames.push(String(f.payload))));
    await page.goto(e2e.url);
    await page.getByRole('row', { name: /locked\.qcow2/ }).click();
    await page.getByRole('toolbar', { name: 'Image actions' }).getByRole('button', { name: 'Convert…' }).click();

    const unlock = page.getByRole('dialog', { name: 'Unlock locked.qcow2' });
    await unlock.getByLabel('Passphrase', { exact: true }).fill('not the passphrase');
    await unlock.getByRole('button', { name: 'Unlock' }).click();
    await unlock.getByRole('alert').filter({ hasText: 'Invalid password, cannot unlock any keyslot' }).waitFor();
    await e2e.screenshot('unlock-wrong-passphrase');
    assert.equal(existsSync(dst), false);
    assert.equal(await page.getByRole('dialog', { name: 'Convert locked.qcow2' }).count(), 0);

    await unlock.getByLabel('Passphrase', { exact: true }).fill(passphrase);
    await unlock.getByRole('button', { name: 'Unlock' }).click();
    const convert = page.getByRole('dialog', { name: 'Convert locked.qcow2' });
    await convert.getByLabel('Target format').selectOption('qcow2');
    await convert.getByLabel('Target file name').fill('plain.qcow2');
    await convert.getByRole('button', { name: 'Convert', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'Converted locked.qcow2 to plain.qcow2' }).waitFor({ timeout: 60_000 });

    const info = JSON.parse(qemuImg('info', '--output=json', dst));
    assert.equal(info.format, 'qcow2');
    assert.equal(info.encrypted ?? false, false);
    const cmp = run('qemu-img', ['compare', '--object', secret, '--image-opts', srcOpts, `driver=qcow2,file.filename=${dst}`]);
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
    assert.match(cmp.stdout, /Images are identical/);

    // Check asks for the passphrase too, and reads the image with it.
    await page.getByRole('row', { name: /locked\.qcow2/ }).click();
    await page.getByRole('toolbar', { name: 'Image actions' }).getByRole('button', { name: 'Check…' }).click();
    const unlockCheck = page.getByRole('dialog', { name: 'Unlock locked.qcow2' });
    await unlockCheck.getByLabel('Passphrase', { exact: true }).fill(passphrase);
    await unlockCheck.getByRole('button', { name: 'Unlock' }).click();
    const check = page.getByRole('dialog', { name: 'Check locked.qcow2' });
    await check.getByRole('button', { name: 'Check', exact: true }).click();
    await check.getByRole('region', { name: 'Check result' }).getByText('No errors were found on the image.').waitFor({ timeout: 30_000 });
    await check.getByRole('button', { name: 'Close dialog' }).click();

    assert.ok(frames.length > 0, 'the page talked to the server over the WebSocket');
    for (const f of frames) assert.ok(!f.includes(passphrase), `a server frame carried the passphrase: ${f.slice(0, 200)}`);
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }));
    assert.ok(!stored.includes(passphrase), 'localStorage holds the passphrase');
    // The library persists its roots only (remote sources too: test/e2e/remote-ssh-iscsi.test.ts).
    assert.deepEqual(Object.keys((JSON.parse(JSON.parse(stored)['platter.library'] ?? '{}') as { state?: object }).state ?? {}), ['roots']);
    assert.deepEqual(e2e.errors, []);
  });
});

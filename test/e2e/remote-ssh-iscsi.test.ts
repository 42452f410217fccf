// The desktop app's ssh folders and iSCSI browse (issue #21) in browser mode, against real peers
// started here: an OpenSSH sshd (its own host key, a passphrase-protected client key given as the
// dialog's key file) serving a folder of images qemu-img made, and tgtd with a plain and a CHAP
// target. The folder's images show with their details and one converts (qemu-img compare equals
// the remote file); the portal lists its targets and LUNs with sizes, the CHAP target once the
// password is given, and LUNs added to the library (the CHAP one too, its name without the
// password) show their sizes. The key passphrase and the
// CHAP password never land in localStorage, the page, or a frame the server sends.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { qemuImg, qemuIo, run, tempDir } from '../helpers/qemu.ts';
import { SKIP_NO_SSHD, startSshd, type Sshd } from '../helpers/sshd.ts';
import { SKIP_NO_TGTD, startTgtd, type Tgtd } from '../helpers/tgtd.ts';
import { skipReason, startE2E, type E2E } from './harness.ts';

const base = await skipReason(['qcow2', 'raw']);
const KEY_PASSPHRASE = 'kEy-pass-Ph4se-never-stored';
const CHAP_PASSWORD = 'Pl4tter-s3cret-CHAP-gui';
const CHAP_USER = 'gui-alice';
const DISK_IQN = 'iqn.2026-12.org.platter.test:gui-disk';
const CHAP_IQN = 'iqn.2026-12.org.platter.test:gui-chap';

describe('remote sources in the GUI: ssh folders and iSCSI', { skip: base }, () => {
  let e2e: E2E;
  const t = tempDir('platter-e2e-remote-');
  let sshd: Sshd | undefined;
  let tgtd: Tgtd | undefined;
  const savedAgent = process.env.SSH_AUTH_SOCK;
  /** Every frame the server sent the page (answers and events). */
  const frames: string[] = [];
  before(async () => {
    // Only the key file the dialog is given authenticates (no agent of the test runner's).
    delete process.env.SSH_AUTH_SOCK;
    e2e = await startE2E();
    e2e.page.on('websocket', (ws) => ws.on('framereceived', (f) => frames.push(String(f.payload))));
  });
  after(async () => {
    await e2e?.close();
    await sshd?.stop();
    await tgtd?.stop(['1', '2']);
    t.cleanup();
    if (savedAgent !== undefined) process.env.SSH_AUTH_SOCK = savedAgent;
  });
  const reload = async () => {
    await e2e.page.goto(e2e.url);
    await e2e.page.getByRole('table', { name: 'Disk images' }).waitFor();
  };
  const noSecrets = async () => {
    const stored = await e2e.page.evaluate(() => JSON.stringify({ ...localStorage }));
    const text = await e2e.page.evaluate(() => document.body.innerText);
    assert.ok(frames.length > 0, 'the page talked to the server over the WebSocket');
    for (const s of [KEY_PASSPHRASE, CHAP_PASSWORD]) {
      for (const f of frames) assert.ok(!f.includes(s), `a server frame carried a secret: ${f.slice(0, 200)}`);
      assert.ok(!stored.includes(s), 'a secret is in localStorage');
      assert.ok(!text.includes(s), 'a secret is on the page');
    }
  };

  test('Add remote folder (ssh): a key file with its passphrase prompt; the images show with details and one converts', { skip: SKIP_NO_SSHD, timeout: 180_000 }, async () => {
    sshd = await startSshd(t.dir, KEY_PASSPHRASE);
    const remote = t.path('remote');
    mkdirSync(remote);
    qemuImg('create', '-q', '-f', 'qcow2', join(remote, 'guest.qcow2'), '48M');
    qemuIo('-c', 'write -P 0x5a 0 2M', '-c', 'write -P 0x21 30M 1M', join(remote, 'guest.qcow2'));
    qemuImg('create', '-q', '-f', 'raw', join(remote, 'blank.raw'), '8M');
    writeFileSync(join(remote, 'notes.txt'), 'not an image');
    await reload();
    const { page } = e2e;
    await page.getByRole('button', { name: 'Add remote folder (ssh)…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Add remote folder (ssh)' });
    await dialog.getByLabel('Host', { exact: true }).fill('127.0.0.1');
    await dialog.getByLabel('Port').fill(String(sshd.port));
    await dialog.getByLabel('User').fill(userInfo().username);
    await dialog.getByLabel('Folder on the server').fill(remote);
    await dialog.getByLabel('Host key check').selectOption('no');
    await dialog.getByLabel('Key file (optional)').fill(sshd.clientKey);
    await dialog.getByRole('button', { name: 'Add folder' }).click();
    // The key needs its passphrase: the prompt appears.
    await dialog.getByRole('alert').filter({ hasText: 'needs its passphrase' }).waitFor({ timeout: 30_000 });
    await dialog.getByLabel('Key passphrase', { exact: true }).fill('not the passphrase');
    await dialog.getByRole('button', { name: 'Add folder' }).click();
    await dialog.getByRole('alert').filter({ hasText: 'Wrong passphrase' }).waitFor({ timeout: 30_000 });
    await dialog.getByLabel('Key passphrase', { exact: true }).fill(KEY_PASSPHRASE);
    await e2e.screenshot('remote-ssh-add');
    await dialog.getByRole('button', { name: 'Add folder' }).click();
    await dialog.waitFor({ state: 'detached', timeout: 30_000 });
    const table = page.getByRole('table', { name: 'Disk images' });
    const row = table.getByRole('row', { name: /guest\.qcow2/ });
    await row.waitFor({ timeout: 60_000 });
    await table.getByRole('row', { name: /blank\.raw/ }).waitFor();
    assert.equal(await table.getByRole('row', { name: /notes\.txt/ }).count(), 0);
    await row.click();
    const details = page.getByRole('complementary', { name: 'Image details' });
    await details.getByText('50,331,648 bytes', { exact: false }).waitFor({ timeout: 60_000 });
    await details.getByText('Format specific information (qcow2)').waitFor({ timeout: 60_000 });
    await e2e.screenshot('remote-ssh-folder');
    await noSecrets();

    // Convert the remote image into the local library.
    await page.getByRole('toolbar', { name: 'Image actions' }).getByRole('button', { name: 'Convert…' }).click();
    const convert = page.getByRole('dialog', { name: /^Convert guest\.qcow2/ });
    await convert.getByLabel('Target format').selectOption('qcow2');
    await convert.getByLabel('Target folder').fill(e2e.library);
    await convert.getByLabel('Target file name').fill('from-ssh.qcow2');
    await convert.getByRole('button', { name: 'Convert', exact: true }).click();
    await table.getByRole('row', { name: /from-ssh\.qcow2/ }).waitFor({ timeout: 90_000 });
    const cmp = run('qemu-img', ['compare', join(remote, 'guest.qcow2'), join(e2e.library, 'from-ssh.qcow2')]);
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
    assert.equal(run('qemu-img', ['check', join(e2e.library, 'from-ssh.qcow2')]).status, 0);
    await noSecrets();
    assert.deepEqual(e2e.errors, []);
  });

  test('Browse iSCSI: SendTargets lists a tgtd target\'s LUNs with sizes, the CHAP target with its password, and a LUN joins the library', { skip: SKIP_NO_TGTD, timeout: 180_000 }, async () => {
    tgtd = await startTgtd();
    qemuImg('create', '-q', '-f', 'raw', t.path('lun1.img'), '64M');
    qemuIo('-f', 'raw', '-c', 'write -P 0x44 0 1M', t.path('lun1.img'));
    qemuImg('create', '-q', '-f', 'raw', t.path('chap.img'), '8M');
    const adm = tgtd.tgtadm;
    tgtd.addTarget('1', DISK_IQN, t.path('lun1.img'));
    tgtd.addTarget('2', CHAP_IQN, t.path('chap.img'));
    adm('--lld', 'iscsi', '--mode', 'account', '--op', 'new', '--user', CHAP_USER, '--password', CHAP_PASSWORD);
    adm('--lld', 'iscsi', '--mode', 'account', '--op', 'bind', '--tid', '2', '--user', CHAP_USER);
    await reload();
    const { page } = e2e;
    await page.getByRole('button', { name: 'Browse iSCSI…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Browse iSCSI portal' });
    await dialog.getByLabel('Portal').fill(tgtd.portal);
    await dialog.getByRole('button', { name: 'Discover targets' }).click();
    const disk = dialog.getByRole('region', { name: `Target ${DISK_IQN}` });
    await disk.getByRole('row', { name: /^1 disk 64 MiB/ }).waitFor({ timeout: 30_000 });
    // Without credentials the CHAP target says why its LUNs are not listed.
    const chap = dialog.getByRole('region', { name: `Target ${CHAP_IQN}` });
    await chap.locator('.form-error').waitFor();
    await dialog.getByLabel('CHAP user (optional)').fill(CHAP_USER);
    await dialog.getByLabel('CHAP password (optional)', { exact: true }).fill(CHAP_PASSWORD);
    await dialog.getByRole('button', { name: 'Discover targets' }).click();
    await chap.getByRole('row', { name: /^1 disk 8 MiB/ }).waitFor({ timeout: 30_000 });
    await e2e.screenshot('remote-iscsi-browse');
    await disk.getByRole('button', { name: `Add LUN 1 of ${DISK_IQN}` }).click();
    const row = page.getByRole('table', { name: 'Disk images' }).getByRole('row', { name: new RegExp(`${DISK_IQN.replace(/[.:]/g, '\\$&')} LUN 1`) });
    await row.waitFor({ timeout: 30_000 });
    await row.click();
    const details = page.getByRole('complementary', { name: 'Image details' });
    await details.getByText('67,108,864 bytes', { exact: false }).waitFor({ timeout: 30_000 });
    // The CHAP target's LUN: its name carries no password, yet it opens (credentials in memory).
    await page.getByRole('button', { name: 'Browse iSCSI…' }).click();
    await dialog.getByLabel('Portal').fill(tgtd.portal);
    await dialog.getByLabel('CHAP user (optional)').fill(CHAP_USER);
    await dialog.getByLabel('CHAP password (optional)', { exact: true }).fill(CHAP_PASSWORD);
    await dialog.getByRole('button', { name: 'Discover targets' }).click();
    await chap.getByRole('button', { name: `Add LUN 1 of ${CHAP_IQN}` }).click();
    const chapRow = page.getByRole('table', { name: 'Disk images' }).getByRole('row', { name: new RegExp(`${CHAP_IQN.replace(/[.:]/g, '\\$&')} LUN 1`) });
    await chapRow.waitFor({ timeout: 30_000 });
    await chapRow.click();
    await details.getByText('8,388,608 bytes', { exact: false }).waitFor({ timeout: 30_000 });
    const stored = await page.evaluate(() => localStorage.getItem('platter.library') ?? '');
    assert.ok(stored.includes(`iscsi://${tgtd.portal}/${CHAP_IQN}/1`), stored);
    await noSecrets();
    assert.deepEqual(e2e.errors, []);
  });
});

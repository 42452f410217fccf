// The desktop app's NBD and virtual FAT sources (issues #18, #20) in browser mode, against real
// peers: "Serve over NBD" on an image serves it from the app's own process (qemu-img compare over
// the URI the dialog shows equals the image; the dialog lists the connected client; Stop frees the
// image for a writer), "Open NBD export" lists a qemu-nbd server's exports (NBD_OPT_LIST) and adds
// one whose details show, "New image from folder" makes a FAT image that passes fsck.fat -n and
// whose tree mtools lists, and a fat: folder in the library converts.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { closeSync, existsSync, mkdirSync, openSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { have, qemuImg, qemuIo, run } from '../helpers/qemu.ts';
import { startPeer, type Peer } from '../helpers/nbd-peers.ts';
import { skipReason, startE2E, type E2E } from './harness.ts';

const exec = promisify(execFile);
const base = await skipReason(['qcow2', 'raw']);
const SKIP = base || (!have('qemu-nbd') ? 'qemu-nbd not installed (apt-get install qemu-utils)' : !have('fsck.fat') || !have('mdir') ? 'dosfstools and mtools are needed' : false);

describe('remote sources in the GUI: NBD and fat:', { skip: SKIP }, () => {
  let e2e: E2E;
  let peer: Peer | undefined;
  before(async () => {
    e2e = await startE2E();
  });
  after(async () => {
    await peer?.stop();
    await e2e?.close();
  });
  const reload = async () => {
    await e2e.page.goto(e2e.url);
    await e2e.page.getByRole('table', { name: 'Disk images' }).waitFor();
  };

  test('Serve over NBD: qemu-img compare over the shown URI equals the image, the client is listed, Stop frees the image', { timeout: 120_000 }, async () => {
    const img = join(e2e.library, 'served.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', img, '32M');
    qemuIo('-c', 'write -P 0x5a 0 2M', '-c', 'write -P 0x17 20M 1M', img);
    await reload();
    const { page } = e2e;
    await page.getByRole('row', { name: /served\.qcow2/ }).click();
    await page.getByRole('complementary', { name: 'Image details' }).getByRole('button', { name: 'Serve over NBD…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Serve served.qcow2 over NBD' });
    await dialog.getByRole('button', { name: 'Start serving' }).click();
    const uriField = dialog.getByLabel('URI');
    await uriField.waitFor();
    const uri = await uriField.inputValue();
    assert.match(uri, /^nbd\+unix:\/\/\/\?socket=\/.+\.sock$/);
    // A client that stays connected while the dialog looks (qemu-io reads, then waits on stdin).
    const holder = execFile('qemu-io', ['-r', '-f', 'raw', uri]);
    await dialog.getByRole('table', { name: 'Connected clients' }).getByText('unix socket').waitFor({ timeout: 15_000 });
    await e2e.screenshot('remote-nbd-serve');
    holder.stdin!.end('quit\n');
    await new Promise((r) => holder.once('exit', r));
    const cmp = await exec('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', img, uri]);
    assert.match(cmp.stdout, /Images are identical/);
    // Read-only by default: a write through the export is refused.
    const w = await exec('qemu-io', ['-f', 'raw', '-c', 'write -P 1 0 512', uri]).then(
      (r) => r.stdout + r.stderr,
      (e: { stdout: string; stderr: string }) => e.stdout + e.stderr,
    );
    assert.match(w, /Operation not permitted|read-only|Permission denied/i, w);
    await dialog.getByRole('button', { name: 'Stop' }).click();
    await dialog.getByRole('button', { name: 'Start serving' }).waitFor();
    const socket = uri.replace(/^.*socket=/, '');
    assert.equal(existsSync(socket), false, 'the socket is removed');
    // Freed: a writer can take the image (no lock held by the app any more).
    qemuIo('-c', 'write -P 0x66 0 512', img);
    assert.equal(run('qemu-img', ['check', img]).status, 0);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    assert.deepEqual(e2e.errors, []);
  });

  test('Open NBD export: a qemu-nbd server\'s exports are listed and the added one shows its details', { timeout: 120_000 }, async () => {
    const img = join(e2e.library, '..', 'exported.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', img, '24M');
    qemuIo('-c', 'write -P 0x33 0 1M', img);
    const sock = join(e2e.library, '..', 'qemu-nbd.sock');
    peer = await startPeer('qemu-nbd', ['-t', '-r', '-f', 'qcow2', '-x', 'disk0', '-D', 'a test export', '-k', sock, img], { path: sock });
    await reload();
    const { page } = e2e;
    await page.getByRole('button', { name: 'Open NBD export…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Open NBD export' });
    await dialog.getByLabel('NBD URI').fill(`nbd+unix:///?socket=${sock}`);
    await dialog.getByRole('button', { name: 'List exports' }).click();
    const table = dialog.getByRole('table', { name: 'Exports' });
    await table.getByRole('row', { name: /disk0.*24 MiB.*read-only.*a test export/ }).waitFor();
    await e2e.screenshot('remote-nbd-open');
    await table.getByRole('button', { name: 'Add export disk0' }).click();
    const row = page.getByRole('table', { name: 'Disk images' }).getByRole('row', { name: /disk0 \(nbd\)/ });
    await row.waitFor({ timeout: 20_000 });
    await row.click();
    const details = page.getByRole('complementary', { name: 'Image details' });
    await details.getByText('25,165,824 bytes', { exact: false }).waitFor({ timeout: 20_000 });
    assert.equal(await details.getByRole('heading', { name: 'disk0 (nbd)' }).count(), 1);
    await page.getByRole('button', { name: `Remove nbd+unix:///disk0?socket=${sock} from library` }).click();
    await peer.stop();
    peer = undefined;
    assert.deepEqual(e2e.errors, []);
  });

  test('New image from folder: the FAT image passes fsck.fat -n and mtools lists the tree; a fat: folder in the library shows its details', { timeout: 180_000 }, async () => {
    const src = join(e2e.library, '..', 'tree');
    mkdirSync(join(src, 'docs', 'deep'), { recursive: true });
    writeFileSync(join(src, 'README.TXT'), 'hello from platter\n');
    writeFileSync(join(src, 'docs', 'a long file name.txt'), 'x'.repeat(70_000));
    writeFileSync(join(src, 'docs', 'deep', 'empty.bin'), '');
    await reload();
    const { page } = e2e;
    await page.getByRole('toolbar', { name: 'Image actions' }).getByRole('button', { name: 'New image from folder…' }).click();
    const dialog = page.getByRole('dialog', { name: 'New image from folder' });
    await dialog.getByLabel('Source folder').fill(src);
    await dialog.getByLabel('FAT type').selectOption('32');
    await dialog.getByLabel('Volume label').fill('PLATTER');
    await dialog.getByLabel('Save in folder').fill(e2e.library);
    await dialog.getByLabel('File name').fill('fromfolder.img');
    await e2e.screenshot('remote-fat-new');
    await dialog.getByRole('button', { name: 'Create image' }).click();
    const out = join(e2e.library, 'fromfolder.img');
    await page.getByRole('table', { name: 'Disk images' }).getByRole('row', { name: /fromfolder\.img/ }).waitFor({ timeout: 90_000 });
    // The hard-disk form: one MBR partition; the FAT volume starts at the partition's first sector.
    const mbr = Buffer.alloc(512);
    const fd = openSync(out, 'r');
    readSync(fd, mbr, 0, 512, 0);
    closeSync(fd);
    assert.equal(mbr.readUInt16LE(510), 0xaa55, 'an MBR');
    const start = mbr.readUInt32LE(446 + 8);
    const offset = start * 512;
    const part = join(e2e.library, '..', 'part.img');
    run('dd', [`if=${out}`, `of=${part}`, 'bs=512', `skip=${start}`, 'status=none']);
    const fsck = run('fsck.fat', ['-n', part]);
    assert.equal(fsck.status, 0, fsck.stdout + fsck.stderr);
    const listing = run('mdir', ['-/', '-b', '-i', `${out}@@${offset}`, '::'], { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
    assert.equal(listing.status, 0, listing.stderr);
    for (const name of ['README.TXT', 'docs/a long file name.txt', 'docs/deep/empty.bin']) assert.ok(listing.stdout.includes(`::/${name}`), `${name} in\n${listing.stdout}`);
    const type = run('mtype', ['-i', `${out}@@${offset}`, '::/README.TXT'], { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
    assert.equal(type.stdout, 'hello from platter\n');

    // The same folder as a fat: source in the library: a read-only row with its details.
    await page.getByRole('button', { name: 'Add FAT folder…' }).click();
    const add = page.getByRole('dialog', { name: 'Add FAT folder' });
    await add.getByLabel('Source folder').fill(src);
    await add.getByRole('button', { name: 'Add to library' }).click();
    const row = page.getByRole('table', { name: 'Disk images' }).getByRole('row', { name: /tree \(fat\)/ });
    await row.waitFor({ timeout: 30_000 });
    await row.click();
    const details = page.getByRole('complementary', { name: 'Image details' });
    const expected = JSON.parse(run('qemu-img', ['info', '--output=json', `fat:${src}`]).stdout) as { 'virtual-size': number };
    await details.getByText(`${expected['virtual-size'].toLocaleString('en-US')} bytes`, { exact: false }).waitFor({ timeout: 30_000 });
    await e2e.screenshot('remote-fat-source');
    assert.deepEqual(e2e.errors, []);
  });
});

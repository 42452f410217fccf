// E2E: the read-only formats QEMU opens (bochs, cloop, dmg) and parallels in the desktop app, with
// real sample images from ../shared/fixtures (QEMU's iotest samples, node-udif's DMGs):
//   - the library lists each with qemu-img's format name and virtual size, and the details pane
//     shows it; Resize is offered only where the format can be written;
//   - an LZFSE-compressed DMG (which Debian's qemu-img cannot read) converted to qcow2 through the
//     Convert dialog equals its zlib twin under `qemu-img compare`, and the source is unchanged.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { FIXTURES, HAVE_FIXTURES, qemuImg, run } from '../helpers/qemu.ts';
import { skipReason, startE2E, type E2E } from './harness.ts';

const SAMPLES = [
  { file: 'qemu-iotests/empty.bochs', name: 'empty.bochs', format: 'bochs' },
  { file: 'qemu-iotests/simple-pattern.cloop', name: 'simple-pattern.cloop', format: 'cloop' },
  { file: 'node-udif/compression-lzfse.dmg', name: 'lzfse.dmg', format: 'dmg' },
  { file: 'qemu-iotests/parallels-v2', name: 'disk.hds', format: 'parallels' },
];
const skip = HAVE_FIXTURES ? await skipReason(['bochs', 'cloop', 'dmg', 'parallels', 'qcow2']) : `shared fixtures not found at ${FIXTURES}`;
const md5 = (p: string) => createHash('md5').update(readFileSync(p)).digest('hex');

describe('read-only formats in the desktop app (browser mode, chromium)', { skip }, () => {
  let e2e: E2E;
  before(async () => {
    e2e = await startE2E();
    // Copies in the test's temporary library (never in the repository).
    for (const s of SAMPLES) copyFileSync(join(FIXTURES, 'third-party', s.file), join(e2e.library, s.name));
  });
  after(async () => {
    await e2e?.close();
  });

  test('bochs, cloop, dmg and parallels samples are listed with qemu-img info\'s format and size; Resize only where the format is writable', { timeout: 60_000 }, async () => {
    const { page } = e2e;
    await page.goto(e2e.url);
    await page.getByRole('table', { name: 'Disk images' }).waitFor();
    for (const s of SAMPLES) {
      const info = JSON.parse(qemuImg('info', '--output=json', join(e2e.library, s.name)));
      // qemu-img cannot read the LZFSE chunks, but its info (the koly trailer and tables) works.
      assert.equal(info.format, s.format);
      const row = page.getByRole('row', { name: new RegExp(s.name.replace('.', '\\.')) });
      await row.waitFor();
      assert.match((await row.textContent()) ?? '', new RegExp(s.format));
      await row.click();
      const details = page.getByRole('complementary', { name: 'Image details' });
      await details.getByRole('heading', { name: s.name }).waitFor();
      await details.getByText(`${info['virtual-size'].toLocaleString('en-US')} bytes`).waitFor();
      const resize = details.getByRole('button', { name: 'Resize…' });
      if (s.format === 'parallels') assert.equal(await resize.isEnabled(), true, 'parallels is writable');
      else {
        assert.equal(await resize.isEnabled(), false, `${s.format} is read-only`);
        assert.match((await resize.getAttribute('title')) ?? '', /read-only/);
      }
    }
    await page.getByRole('row', { name: /lzfse\.dmg/ }).click();
    await e2e.screenshot('read-only-formats');
    assert.deepEqual(e2e.errors, []);
  });

  test('an LZFSE DMG converted to qcow2 in the GUI equals its zlib twin under qemu-img compare, and the DMG is unchanged', { timeout: 90_000 }, async () => {
    const { page } = e2e;
    const src = join(e2e.library, 'lzfse.dmg');
    const before = md5(src);
    await page.goto(e2e.url);
    await page.getByRole('row', { name: /lzfse\.dmg/ }).click();
    await page.getByRole('toolbar', { name: 'Image actions' }).getByRole('button', { name: 'Convert…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Convert lzfse.dmg' });
    await dialog.getByLabel('Target format').selectOption('qcow2');
    assert.equal(await dialog.getByLabel('Target file name').inputValue(), 'lzfse.qcow2');
    await dialog.getByRole('button', { name: 'Convert', exact: true }).click();
    await page.getByRole('status').filter({ hasText: /^Converted: / }).waitFor({ timeout: 60_000 });

    const dst = join(e2e.library, 'lzfse.qcow2');
    const twin = join(FIXTURES, 'third-party/node-udif/compression-zlib.dmg');
    const cmp = run('qemu-img', ['compare', '-f', 'dmg', '-F', 'qcow2', twin, dst]);
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
    assert.match(cmp.stdout, /Images are identical/);
    assert.equal(run('qemu-img', ['check', dst]).status, 0);
    assert.equal(md5(src), before, 'converting from a read-only format must not touch it');
    assert.deepEqual(e2e.errors, []);
  });
});

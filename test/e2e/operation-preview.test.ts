// #16 item 1 (and 10) through the GUI: applying a snapshot to a base that mid.qcow2 -> top.qcow2
// and other.qcow2 are built on shows, before the confirm button, every dependent by name, the
// bytes that change, and the safe alternative; commit names the other overlay of the base; the
// numbers agree with qemu-img map and with what qemu-img compare sees after the real apply.
// Item 10: the details pane's "Disk size" is the table's, and long keys do not overlap values.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { qemuImg, qemuIo, run } from '../helpers/qemu.ts';
import { skipReason, startE2E, type E2E } from './harness.ts';

const skip = await skipReason(['qcow2', 'vmdk']);

describe('previews of destructive operations (browser mode)', { skip }, () => {
  let e2e: E2E;
  before(async () => {
    e2e = await startE2E();
  });
  after(async () => {
    await e2e?.close();
  });

  test('apply snapshot on a shared base names every dependent overlay and offers a new overlay instead', { timeout: 120_000 }, async () => {
    const lib = e2e.library;
    const base = join(lib, 'base.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', base, '8M');
    qemuIo('-c', 'write -P 0x11 0 1M', base);
    qemuImg('snapshot', '-c', 'installed', base);
    qemuIo('-c', 'write -P 0x22 0 512K', base);
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', join(lib, 'mid.qcow2'));
    qemuIo('-c', 'write -P 0x33 0 64K', join(lib, 'mid.qcow2'));
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', join(lib, 'top.qcow2'));
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', join(lib, 'other.qcow2'));
    const { page } = e2e;
    await page.goto(e2e.url);
    await page.getByRole('tab', { name: 'Snapshot tree' }).click();
    const tree = page.getByRole('region', { name: 'Snapshot tree' });
    await tree.getByRole('button', { name: 'Snapshot installed of base.qcow2', exact: true }).click();
    await tree.getByRole('toolbar', { name: 'Snapshot actions' }).getByRole('button', { name: 'Apply snapshot…' }).click();
    const confirm = page.getByRole('alertdialog', { name: 'Apply snapshot?' });
    const preview = confirm.getByRole('region', { name: 'Preview' });
    const deps = preview.getByRole('list', { name: 'Dependent images' });
    await deps.waitFor({ timeout: 30_000 });
    const text = await deps.innerText();
    for (const n of ['mid.qcow2', 'top.qcow2', 'other.qcow2']) assert.match(text, new RegExp(n.replace('.', '\\.')), text);
    // 512K change in base; mid has its own first 64K, so it (and top) read 448K differently.
    assert.match(text, /other\.qcow2[^\n]*512 KiB/);
    assert.match(text, /mid\.qcow2[^\n]*448 KiB/);
    const layers = await preview.getByRole('table', { name: 'Data per layer' }).innerText();
    assert.match(layers, /base\.qcow2\s+reverted\s+512 KiB/);
    const danger = await preview.getByRole('alert').innerText();
    assert.match(danger, /corrupt/);
    assert.match(danger, /new overlay/);
    // The preview comes before the confirm button.
    const order = await confirm.evaluate((d) => {
      const p = d.querySelector('.op-preview')!;
      const b = [...d.querySelectorAll('button')].find((x) => x.textContent === 'Apply snapshot')!;
      return p.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING;
    });
    assert.ok(order);
    await e2e.screenshot('preview-apply-snapshot');
    // The preview was right: after the real apply, other.qcow2 reads differently.
    const before = join(lib, '..', 'other-before.raw');
    qemuImg('convert', '-O', 'raw', join(lib, 'other.qcow2'), before);
    await confirm.getByRole('button', { name: 'Apply snapshot' }).click();
    await page.getByRole('status').filter({ hasText: 'Reverted base.qcow2 to snapshot installed.' }).waitFor({ timeout: 30_000 });
    const cmp = run('qemu-img', ['compare', before, join(lib, 'other.qcow2')]);
    assert.equal(cmp.status, 1, cmp.stdout);
    assert.match(cmp.stdout, /Content mismatch at offset 0/);

    // Commit mid into base: moves mid's 64K (qemu-img map: depth 0 data) and names other.qcow2.
    const map = JSON.parse(run('qemu-img', ['map', '--output=json', join(lib, 'mid.qcow2')]).stdout) as { length: number; depth: number; data: boolean }[];
    const own = map.filter((e) => e.depth === 0 && e.data).reduce((a, e) => a + e.length, 0);
    assert.equal(own, 64 << 10);
    await tree.getByRole('button', { name: 'Image mid.qcow2', exact: true }).click();
    await tree.getByRole('toolbar', { name: 'Snapshot actions' }).getByRole('button', { name: 'Commit…' }).click();
    const commit = page.getByRole('alertdialog', { name: 'Commit into backing file?' });
    const cp = commit.getByRole('region', { name: 'Preview' });
    await cp.getByRole('list', { name: 'Dependent images' }).waitFor({ timeout: 30_000 });
    assert.match(await cp.getByRole('table', { name: 'Data per layer' }).innerText(), /base\.qcow2\s+written\s+64 KiB/);
    const cdanger = await cp.getByRole('alert').innerText();
    assert.match(cdanger, /other\.qcow2/);
    assert.match(cdanger, /Commit those overlays first/);
    await e2e.screenshot('preview-commit');
    await commit.getByRole('button', { name: 'Cancel' }).click();
    assert.deepEqual(e2e.errors, []);
  });

  test('details pane: disk size equals the table\'s, and long format-specific keys do not overlap their values', { timeout: 90_000 }, async () => {
    const file = join(e2e.library, 'long.vmdk');
    qemuImg('create', '-q', '-f', 'vmdk', '-o', 'subformat=streamOptimized', file, '4M');
    qemuIo('-f', 'vmdk', '-c', 'write -P 0x5a 0 128K', file);
    const { page } = e2e;
    await page.goto(e2e.url);
    await page.getByRole('tab', { name: /Images/ }).click();
    const row = page.getByRole('row', { name: /long\.vmdk/ });
    await row.click();
    const pane = page.getByRole('complementary', { name: 'Image details' });
    const key = pane.locator('dt', { hasText: 'extents[0].compressed' });
    await key.waitFor({ timeout: 30_000 }).catch(async (e) => {
      await e2e.screenshot('debug-details');
      throw new Error(`${(e as Error).message}\n${await pane.innerText()}`);
    });
    // Every key's text stays inside its own box, left of its value.
    const bad = await pane.evaluate((root) =>
      [...root.querySelectorAll('dl.facts dt')].flatMap((dt) => {
        const dd = dt.nextElementSibling as HTMLElement;
        const k = dt.getBoundingClientRect();
        const v = dd.getBoundingClientRect();
        return dt.scrollWidth > dt.clientWidth || k.right > v.left + 0.5 ? [dt.textContent] : [];
      }),
    );
    assert.deepEqual(bad, []);
    const info = JSON.parse(qemuImg('info', '--output=json', file)) as { 'actual-size': number };
    const diskInPane = await pane.locator('dt', { hasText: /^Disk size$/ }).locator('xpath=following-sibling::dd[1]').innerText();
    await page.waitForTimeout(300);
    const diskInTable = await row.locator('td.col-actualSize').innerText();
    assert.equal(diskInPane, diskInTable);
    const expected = run('qemu-img', ['info', file]).stdout.match(/disk size: (.*)/)![1];
    assert.equal(diskInPane, expected, `qemu-img says ${expected} (${info['actual-size']} bytes)`);
    await e2e.screenshot('details-pane-long-keys');
    assert.deepEqual(e2e.errors, []);
  });
});

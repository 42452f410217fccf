// E2E for issue #16's views (items 3, 5, 6, 9) in browser mode with chromium, on images made by
// qemu-img, each result checked with qemu-img:
//   - a GUI convert ends "Identical, verified" (compare + check) and only then offers Delete source;
//   - a GUI convert cancelled part way is listed as interrupted, resumes, and qemu-img compare
//     finds the result identical;
//   - an interrupted convert whose source changed is refused with the reason and can start again;
//   - the allocation map's legend gives each layer of a 3-image chain the bytes qemu-img map
//     --output=json gives it;
//   - compare, measure (in the convert form), amend, rebase (safe and unsafe) and bench forms give
//     what qemu-img compare / measure / info / bench give;
//   - the storage graph shows qemu-img's persistent bitmaps as badges, "You are here" beside an
//     image's snapshots, a chain across two library folders, pans by dragging, and has a mini-map.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, utimesSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { qemuImg, qemuImgJson, qemuIo, run } from '../helpers/qemu.ts';
import { makeSpacedRaw } from '../helpers/spaced-raw.ts';
import { skipReason, startE2E, type E2E } from './harness.ts';
import { resumableConvert } from '../../core/jobs/resumable-convert.ts';
import { defaultEnv } from '../../core/jobs/common.ts';

const skip = await skipReason(['qcow2', 'raw']);
const MiB = 1 << 20;


describe('views: verify, resume, allocation map, engine forms', { skip }, () => {
  let e2e: E2E;
  let scratch: string;
  before(async () => {
    e2e = await startE2E();
    scratch = mkdtempSync(join(tmpdir(), 'platter-e2e-views-'));
  });
  after(async () => {
    await e2e?.close();
    rmSync(scratch, { recursive: true, force: true });
  });
  const reload = async () => {
    await e2e.page.goto(e2e.url);
    await e2e.page.getByRole('table', { name: 'Disk images' }).waitFor();
  };
  const openConvert = async (name: string) => {
    const { page } = e2e;
    await page.getByRole('row', { name: new RegExp(`^${name.replace('.', '\\.')}`) }).click();
    await page.getByRole('toolbar', { name: 'Image actions' }).getByRole('button', { name: 'Convert…' }).click();
    const dialog = page.getByRole('dialog', { name: `Convert ${name}` });
    await dialog.getByLabel('Target format').selectOption('qcow2');
    return dialog;
  };

  test('a GUI convert is verified (compare + check) and only a verified copy offers Delete source, which asks first', { timeout: 120_000 }, async () => {
    const src = join(e2e.library, 'verify-src.raw');
    makeSpacedRaw(src, 24);
    const ref = join(scratch, 'verify-ref.raw');
    copyFileSync(src, ref);
    await reload();
    const { page } = e2e;
    const dialog = await openConvert('verify-src.raw');
    // Measure in the form: qemu-img measure's required size for the same choice.
    const measured = qemuImgJson('measure', '-f', 'raw', '-O', 'qcow2', src);
    await dialog.getByRole('status', { name: 'Measured size' }).filter({ hasText: `(${measured.required.toLocaleString('en-US')} bytes)` }).waitFor({ timeout: 30_000 });
    await e2e.screenshot('convert-measure');
    await dialog.getByRole('button', { name: 'Convert', exact: true }).click();
    const verified = page.getByRole('status', { name: /^Verification of Convert .*verify-src\.raw/ });
    await verified.waitFor({ timeout: 90_000 });
    assert.match(await verified.innerText(), /^Identical, verified/);
    const dst = join(e2e.library, 'verify-src.qcow2');
    assert.equal(run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', ref, dst]).status, 0);
    assert.equal(run('qemu-img', ['check', dst]).status, 0);
    await e2e.screenshot('convert-verified');
    await page.getByRole('button', { name: 'Delete source' }).click();
    const confirm = page.getByRole('alertdialog', { name: 'Delete verify-src.raw?' });
    await confirm.getByRole('button', { name: 'Delete source' }).click();
    await page.getByText('Source deleted.').waitFor();
    assert.equal(existsSync(src), false);
    assert.equal(run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', ref, dst]).status, 0);
    assert.deepEqual(e2e.errors, []);
  });

  test('a GUI convert cancelled part way is listed as interrupted, resumes, and qemu-img compare calls the result identical', { timeout: 240_000 }, async () => {
    const src = join(e2e.library, 'big.raw');
    makeSpacedRaw(src, 640);
    await reload();
    const { page } = e2e;
    const dialog = await openConvert('big.raw');
    await dialog.getByRole('button', { name: 'Convert', exact: true }).click();
    const bar = page.getByRole('progressbar', { name: /big\.raw/ });
    await bar.waitFor();
    await page.waitForFunction(() => Number(document.querySelector('[role=progressbar][aria-label*="big.raw"]')?.getAttribute('aria-valuenow')) >= 2, null, { timeout: 120_000, polling: 10 });
    await page.getByRole('button', { name: /^Cancel Convert .*big\.raw/ }).click();
    await page.locator('li.job.cancelled', { hasText: 'big.raw' }).waitFor({ timeout: 30_000 });
    const dst = join(e2e.library, 'big.qcow2');
    assert.equal(existsSync(dst), false, 'no file under the target name after a cancel');
    const region = page.getByRole('region', { name: 'Interrupted converts' });
    await region.getByText(/big\.qcow2/).waitFor({ timeout: 30_000 });
    const words = await region.innerText();
    const m = /(\d+)% ?\)/.exec(words);
    assert.ok(m && Number(m[1]) > 0 && Number(m[1]) < 100, words);
    await e2e.screenshot('convert-interrupted');
    await region.getByRole('button', { name: 'Resume convert to big.qcow2' }).click();
    const verified = page.getByRole('status', { name: /^Verification of Resume convert/ });
    await verified.waitFor({ timeout: 180_000 });
    assert.match(await verified.innerText(), /^Identical, verified/);
    assert.match(await page.locator('li.job.done', { hasText: 'Resume convert' }).locator('.job-result').innerText(), /^Converted \(resumed at /);
    const cmp = run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', src, dst]);
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
    assert.equal(run('qemu-img', ['check', dst]).status, 0);
    rmSync(src);
    rmSync(dst);
    assert.deepEqual(e2e.errors, []);
  });

  test('an interrupted convert whose source changed is refused with the reason, and Start again gives a verified copy', { timeout: 120_000 }, async () => {
    const src = join(e2e.library, 'changed.raw');
    makeSpacedRaw(src, 64);
    const dst = join(e2e.library, 'changed.qcow2');
    const ac = new AbortController();
    await assert.rejects(
      resumableConvert({ source: { filename: src, format: 'raw' }, target: { filename: dst, format: 'qcow2' }, journalIntervalMs: 5 }, { ...defaultEnv(), warn: () => {} }, { signal: ac.signal, onProgress: (p) => p.total && p.done * 2 >= p.total && ac.abort() }),
      /cancel/i,
    );
    const fd = openSync(src, 'r+');
    writeSync(fd, Buffer.from('changed'), 0, 7, 512);
    closeSync(fd);
    utimesSync(src, new Date(), new Date(Date.now() + 10_000));
    await reload();
    const { page } = e2e;
    const region = page.getByRole('region', { name: 'Interrupted converts' });
    await region.getByRole('alert').filter({ hasText: 'Cannot resume: the source changed since the convert stopped' }).waitFor({ timeout: 30_000 });
    assert.equal(await region.getByRole('button', { name: 'Resume convert to changed.qcow2' }).count(), 0);
    await region.getByRole('button', { name: 'Start the convert to changed.qcow2 again' }).click();
    const verified = page.getByRole('status', { name: /^Verification of Convert .*changed\.raw/ });
    await verified.waitFor({ timeout: 90_000 });
    assert.match(await verified.innerText(), /^Identical, verified/);
    assert.equal(run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', src, dst]).status, 0);
    await page.getByRole('region', { name: 'Interrupted converts' }).waitFor({ state: 'detached', timeout: 30_000 });
    rmSync(src);
    rmSync(dst);
    assert.deepEqual(e2e.errors, []);
  });

  test("the allocation map's legend gives each layer of a qemu-img chain the bytes qemu-img map gives it", { timeout: 90_000 }, async () => {
    const dir = e2e.library;
    const base = join(dir, 'layer-base.qcow2');
    const mid = join(dir, 'layer-mid.qcow2');
    const top = join(dir, 'layer-top.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', base, '64M');
    qemuIo('-c', 'write -P 0x11 0 8M', '-c', 'write -P 0x12 32M 3M', base);
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'layer-base.qcow2', '-F', 'qcow2', mid);
    qemuIo('-c', 'write -P 0x21 4M 2M', '-c', 'write -z 33M 512k', mid);
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'layer-mid.qcow2', '-F', 'qcow2', top);
    qemuIo('-c', 'write -P 0x31 5M 1M', '-c', 'write -c -P 0x32 48M 256k', top);
    const map = qemuImgJson<{ start: number; length: number; depth: number; present: boolean; zero: boolean; data: boolean }[]>('map', top);
    const want = [0, 0, 0];
    let holes = 0;
    for (const e of map) {
      if (e.data) want[e.depth]! += e.length;
      if (!e.present) holes += e.length;
    }
    await reload();
    const { page } = e2e;
    await page.getByRole('row', { name: /^layer-top\.qcow2/ }).click();
    await page.getByRole('toolbar', { name: 'Image actions' }).getByRole('button', { name: 'Allocation map…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Allocation map of layer-top.qcow2' });
    const legend = dialog.getByRole('list', { name: 'Legend' });
    await legend.waitFor({ timeout: 30_000 });
    for (const [depth, name] of ['layer-top.qcow2', 'layer-mid.qcow2', 'layer-base.qcow2'].entries()) {
      const item = legend.locator(`li[data-depth="${depth}"]`);
      assert.match(await item.innerText(), new RegExp(name.replace('.', '\\.')));
      assert.equal(Number(await item.locator('.layer-data').getAttribute('data-bytes')), want[depth], `depth ${depth}`);
    }
    assert.equal(Number(await legend.locator('li[data-depth="hole"] [data-bytes]').getAttribute('data-bytes')), holes);
    const img = dialog.getByRole('img', { name: /^Allocation map of layer-top\.qcow2/ });
    await img.waitFor();
    await e2e.screenshot('allocation-map');
    // Zoom in on a block and back out.
    await img.click({ position: { x: 5, y: 5 } });
    await dialog.getByText(/^Showing 0 B – 8 MiB of 64 MiB/).waitFor();
    await dialog.getByRole('button', { name: 'Whole disk' }).click();
    await dialog.getByText(/^Showing 0 B – 64 MiB of 64 MiB/).waitFor();
    await dialog.getByRole('button', { name: 'Close dialog' }).click();
    assert.deepEqual(e2e.errors, []);
  });

  test('compare, amend, rebase (safe and unsafe) and bench forms give what qemu-img gives', { timeout: 120_000 }, async () => {
    const dir = e2e.library;
    const a = join(dir, 'form-a.qcow2');
    const b = join(dir, 'form-b.qcow2');
    const nb = join(dir, 'form-newbase.qcow2');
    const ov = join(dir, 'form-over.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', a, '16M');
    qemuIo('-c', 'write -P 0x41 0 2M', a);
    qemuImg('create', '-q', '-f', 'qcow2', b, '16M');
    qemuIo('-c', 'write -P 0x41 0 2M', '-c', 'write -P 0x42 1M 4k', b);
    qemuImg('create', '-q', '-f', 'qcow2', nb, '16M');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'form-a.qcow2', '-F', 'qcow2', ov);
    await reload();
    const { page } = e2e;
    const act = async (row: string, button: string, title: string) => {
      await page.getByRole('row', { name: new RegExp(`^${row.replace('.', '\\.')}`) }).click();
      await page.getByRole('toolbar', { name: 'Image actions' }).getByRole('button', { name: button }).click();
      return page.getByRole('dialog', { name: title });
    };

    // Compare: qemu-img compare's words.
    const want = run('qemu-img', ['compare', a, b]).stdout.trim();
    let d = await act('form-a.qcow2', 'Compare…', 'Compare form-a.qcow2');
    await d.getByLabel('Second image (path)').fill(b);
    await d.getByRole('button', { name: 'Compare', exact: true }).click();
    await d.getByRole('status').filter({ hasText: want }).waitFor({ timeout: 30_000 });
    await e2e.screenshot('compare-form');
    await d.getByRole('button', { name: 'Close dialog' }).click();

    // Safe rebase of the overlay onto an empty base: the guest still sees form-a's data.
    const before = join(scratch, 'over-before.raw');
    qemuImg('convert', '-O', 'raw', ov, before);
    d = await act('form-over.qcow2', 'Rebase…', 'Rebase form-over.qcow2');
    await d.getByLabel('New backing file (-b; empty removes it)').fill('form-newbase.qcow2');
    await e2e.screenshot('rebase-form');
    await d.getByRole('button', { name: 'Rebase', exact: true }).click();
    await d.getByRole('status').filter({ hasText: 'Backing file is now form-newbase.qcow2' }).waitFor({ timeout: 30_000 });
    assert.equal(qemuImgJson('info', ov)['backing-filename'], 'form-newbase.qcow2');
    assert.equal(run('qemu-img', ['compare', '-F', 'raw', ov, before]).status, 0);
    // Unsafe: only the name changes (back to form-a.qcow2); the copied data stays.
    await d.getByLabel('New backing file (-b; empty removes it)').fill('form-a.qcow2');
    await d.getByRole('radio', { name: 'Unsafe (-u)' }).check();
    await d.getByRole('button', { name: 'Rebase (unsafe)' }).click();
    await d.getByRole('status').filter({ hasText: 'Backing file is now form-a.qcow2; 0 B copied' }).waitFor({ timeout: 30_000 });
    assert.equal(qemuImgJson('info', ov)['backing-filename'], 'form-a.qcow2');
    await d.getByRole('button', { name: 'Close dialog' }).click();

    // Amend: lazy_refcounts on, as qemu-img info then reports.
    d = await act('form-b.qcow2', 'Amend…', 'Amend form-b.qcow2');
    await d.getByLabel('lazy_refcounts').check();
    await e2e.screenshot('amend-form');
    await d.getByRole('button', { name: 'Amend', exact: true }).click();
    await d.getByRole('status').filter({ hasText: 'Options changed.' }).waitFor({ timeout: 30_000 });
    assert.equal(qemuImgJson('info', b)['format-specific'].data['lazy-refcounts'], true);
    assert.equal(run('qemu-img', ['check', b]).status, 0);
    await d.getByRole('button', { name: 'Close dialog' }).click();

    // Bench: qemu-img bench's header for the same parameters.
    const header = run('qemu-img', ['bench', '-c', '2000', '-d', '8', '-s', '4096', '-f', 'qcow2', a]).stdout.split('\n')[0]!;
    d = await act('form-a.qcow2', 'Bench…', 'Bench form-a.qcow2');
    await d.getByLabel('Requests (-c)').fill('2000');
    await d.getByLabel('Queue depth (-d)').fill('8');
    await d.getByRole('button', { name: 'Run benchmark' }).click();
    const res = d.getByRole('status').filter({ hasText: 'Run completed in' });
    await res.waitFor({ timeout: 60_000 });
    assert.ok((await res.innerText()).startsWith(header), `${await res.innerText()} vs ${header}`);
    await e2e.screenshot('bench-form');
    await d.getByRole('button', { name: 'Close dialog' }).click();
    assert.deepEqual(e2e.errors, []);
  });

  test('the storage graph shows bitmaps (qemu-img bitmap --add) as badges, "You are here" among snapshots, a chain across folders, drag to pan and a mini-map', { timeout: 90_000 }, async () => {
    const other = join(scratch, 'vms');
    mkdirSync(other);
    const base = join(e2e.library, 'graph-base.qcow2');
    const over = join(other, 'graph-over.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', base, '32M');
    qemuImg('bitmap', '--add', base, 'gb0');
    qemuImg('bitmap', '--add', '--disable', '-g', '128K', base, 'gb1');
    qemuImg('snapshot', '-c', 'before-update', base);
    qemuImg('create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', over);
    qemuImg('bitmap', '--add', over, 'ob0');
    await reload();
    const { page } = e2e;
    await page.getByRole('button', { name: 'Add folder or image…' }).click();
    const add = page.getByRole('dialog', { name: 'Add to library' });
    await add.getByLabel('Folder or image path').fill(other);
    await add.getByRole('button', { name: 'Add to library' }).click();
    await page.getByRole('row', { name: /^graph-over\.qcow2/ }).waitFor({ timeout: 30_000 });
    await page.getByRole('tab', { name: 'Snapshot tree' }).click();
    const tree = page.getByRole('region', { name: 'Snapshot tree' });
    for (const [image, file] of [['graph-base.qcow2', base], ['graph-over.qcow2', over]] as const) {
      const names = (qemuImgJson('info', file)['format-specific'].data.bitmaps as { name: string }[]).map((b) => b.name);
      assert.ok(names.length > 0);
      for (const n of names) await tree.getByRole('note', { name: `Dirty bitmap ${n} of ${image}` }).waitFor({ timeout: 30_000 });
      assert.equal(await tree.getByRole('button', { name: `Image ${image}`, exact: true }).getByRole('note').count(), names.length);
    }
    await tree.getByRole('note', { name: 'You are here: the current state of graph-base.qcow2' }).waitFor();
    assert.match(await tree.getByRole('button', { name: 'Image graph-over.qcow2', exact: true }).innerText(), /vms/);
    const relations = await tree.getByRole('list', { name: 'Relations', includeHidden: true }).locator('li').allTextContents();
    for (const r of ['graph-over.qcow2 is an overlay of graph-base.qcow2', 'before-update is a snapshot of graph-base.qcow2', 'You are here: the current state of graph-base.qcow2']) {
      assert.ok(relations.includes(r), `missing relation "${r}" in ${JSON.stringify(relations)}`);
    }
    const count = await tree.locator('.react-flow__node').count();
    assert.equal(await tree.locator('.react-flow__minimap').count(), count >= 8 ? 1 : 0, `${count} nodes`);
    await e2e.screenshot('storage-graph');
    // Drag on the empty pane pans the view.
    const viewport = tree.locator('.react-flow__viewport');
    const before = await viewport.getAttribute('style');
    const pane = await tree.locator('.react-flow__pane').boundingBox();
    assert.ok(pane);
    await page.mouse.move(pane.x + 8, pane.y + pane.height - 8);
    await page.mouse.down();
    await page.mouse.move(pane.x + 120, pane.y + pane.height - 60, { steps: 8 });
    await page.mouse.up();
    assert.notEqual(await viewport.getAttribute('style'), before);
    assert.deepEqual(e2e.errors, []);
  });
});

// #16 item 2 through the GUI: while qemu-nbd serves an image (it holds QEMU's lock bytes), the
// table's "in use" tooltip and the details pane name qemu-nbd and its pid with the decoded
// permissions, and Check offers a read-only check with force-share (-U) whose result matches
// `qemu-img check -U`.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { have, qemuImg, qemuIo, run, startProcess } from '../helpers/qemu.ts';
import { skipReason, startE2E, type E2E } from './harness.ts';

const skip = (await skipReason(['qcow2'])) || (have('qemu-nbd') ? false : 'qemu-nbd not installed');

describe('lock inspector (browser mode)', { skip }, () => {
  let e2e: E2E;
  before(async () => {
    e2e = await startE2E();
  });
  after(async () => {
    await e2e?.close();
  });

  test('an image qemu-nbd holds: who holds it, with which permissions, and a -U check', { timeout: 120_000 }, async () => {
    const file = join(e2e.library, 'served.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', file, '16M');
    qemuIo('-c', 'write -P 0x42 0 1M', file);
    const sock = join(e2e.library, '..', 'nbd.sock');
    const nbd = startProcess('qemu-nbd', ['-k', sock, '-f', 'qcow2', file]);
    try {
      for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(existsSync(sock), 'qemu-nbd started');
      const pid = nbd.child.pid!;
      const { page } = e2e;
      await page.goto(e2e.url);
      const row = page.getByRole('row', { name: /served\.qcow2/ });
      const badge = row.locator('.lock-state');
      await badge.filter({ hasText: 'in use' }).waitFor({ timeout: 30_000 });
      await badge.hover();
      await page.waitForFunction(() => /pid \d+/.test(document.querySelector('.lock-state.in-use')?.getAttribute('title') ?? ''), null, { timeout: 30_000 });
      const title = (await badge.getAttribute('title'))!;
      assert.match(title, new RegExp(`qemu-nbd \\(pid ${pid}\\)`), title);
      assert.match(title, /holds consistent read, write/);
      assert.match(title, /does not share write/);

      await row.click();
      const holders = page.getByRole('complementary', { name: 'Image details' }).getByRole('region', { name: 'Lock holders' });
      await holders.getByText(`pid ${pid}`).waitFor({ timeout: 30_000 });
      const text = await holders.innerText();
      assert.match(text, /qemu-nbd -k .*nbd\.sock -f qcow2 .*served\.qcow2/);
      assert.match(text, /Holds:\s*consistent read\s*write/);
      assert.match(text, /Does not share:\s*write/);
      await e2e.screenshot('lock-inspector');

      await page.getByRole('complementary', { name: 'Image details' }).getByRole('button', { name: 'Check…' }).click();
      const check = page.getByRole('dialog', { name: 'Check served.qcow2' });
      const offer = check.getByRole('region', { name: 'Image in use' });
      await offer.getByText(`qemu-nbd (pid ${pid})`).waitFor({ timeout: 30_000 });
      assert.match(await offer.innerText(), /force-share/);
      await e2e.screenshot('lock-check-force-share');
      await offer.getByRole('button', { name: 'Check read-only (-U)' }).click();
      await check.getByRole('region', { name: 'Check result' }).getByText('No errors were found on the image.').waitFor({ timeout: 30_000 });
      await check.getByText(/Checked read-only with force-share/).waitFor();
      // The real tool: without -U it refuses (the lock), with -U it agrees.
      const plain = run('qemu-img', ['check', file]);
      assert.notEqual(plain.status, 0);
      assert.match(plain.stderr, /Failed to get shared "write" lock/);
      const shared = run('qemu-img', ['check', '-U', file]);
      assert.equal(shared.status, 0, shared.stderr);
      assert.match(shared.stdout, /No errors were found on the image\./);
      assert.deepEqual(e2e.errors, []);
    } finally {
      await nbd.kill();
    }
  });
});

// The files-opened guard (issue 8, item 2): the file protocol reports every path it opens or
// creates (fileOpenObserver), opened-files.ts tells which lie outside the allowed directories, and
// the fuzz case child turns such a path into an "escape" failure unless it is a file the image's
// rules allow: the backing chain the image names (docs/security.md lets a backing file be any
// plain path, absolute ones included; a fuzz mutation found one). Proven here with the guard on its
// own, and through the case child with an image whose absolute backing file sits outside the case
// directory (allowed), one whose backing file sits next to it, and one whose backing name is a
// protocol URL (refused before anything is opened).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { tempDir, qemuImg, SKIP_NO_QEMU } from '../helpers/qemu.ts';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { watchOpenedFiles, isInside } from './opened-files.ts';

const CASE_CHILD = fileURLToPath(new URL('../fuzz/case-child.ts', import.meta.url));
const quiet = (): void => {};

test('isInside follows symlinks and refuses the directory itself and its parent', () => {
  const t = tempDir('platter-guard-');
  try {
    const inner = join(t.dir, 'inner');
    mkdirSync(inner);
    symlinkSync(t.dir, join(inner, 'up'));
    assert.equal(isInside(join(inner, 'a.qcow2'), inner), true);
    assert.equal(isInside(join(inner, 'sub', 'not-yet-created'), inner), true);
    assert.equal(isInside(join(inner, 'up', 'x'), inner), false);
    assert.equal(isInside(join(inner, '..', 'x'), inner), false);
    assert.equal(isInside(inner, inner), false);
    assert.equal(isInside('/etc/passwd', inner), false);
  } finally {
    t.cleanup();
  }
});

test('the guard records files opened and created through the file protocol, and flags those outside', async () => {
  const t = tempDir('platter-guard-');
  const inner = join(t.dir, 'inner');
  mkdirSync(inner);
  const base = join(t.dir, 'base.qcow2');
  const top = join(inner, 'top.qcow2');
  const watch = watchOpenedFiles([inner]);
  try {
    await createImage({ format: 'qcow2', filename: base, size: 1 << 20, warn: quiet });
    await createImage({ format: 'qcow2', filename: top, options: { backing_file: base, backing_fmt: 'qcow2' }, warn: quiet });
    const node = await openImage(top, { readOnly: true, warn: quiet });
    await node.read(0, 4096);
    await node.close();
  } finally {
    watch.stop();
    t.cleanup();
  }
  assert.ok(watch.opened.includes(top) && watch.opened.includes(base), `opened: ${watch.opened.join(', ')}`);
  assert.deepEqual([...new Set(watch.outside())], [base]);
  // Stopped: later opens are not recorded.
  const count = watch.opened.length;
  const t2 = tempDir('platter-guard-');
  try {
    await createImage({ format: 'raw', filename: t2.path('x.raw'), size: 4096, warn: quiet });
  } finally {
    t2.cleanup();
  }
  assert.equal(watch.opened.length, count);
});

test('the fuzz case child allows the backing chain an image names, even outside its case directory, and opens nothing for a protocol backing name (qemu-img create -b)', { skip: SKIP_NO_QEMU, timeout: 60_000 }, async () => {
  const t = tempDir('platter-guard-');
  try {
    const work = join(t.dir, 'work');
    mkdirSync(work);
    const outsideBase = join(t.dir, 'base.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', outsideBase, '1M');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', outsideBase, '-F', 'qcow2', join(work, 'escape.qcow2'));
    qemuImg('create', '-q', '-f', 'qcow2', join(work, 'base.qcow2'), '1M');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', join(work, 'inside.qcow2'));
    qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'nbd://127.0.0.1:1/x', '-F', 'raw', join(work, 'protocol.qcow2'), '1M');
    const child = spawn(process.execPath, ['--import', 'tsx', CASE_CHILD], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const ask = async (id: number, name: string): Promise<{ outcome: string; message?: string }> => {
      child.stdin.write(JSON.stringify({ id, path: join(work, name), format: 'qcow2', probe: false, out: join(work, 'out.raw') }) + '\n');
      const r = await lines.next();
      assert.ok(!r.done, 'case child exited');
      return JSON.parse(r.value as string);
    };
    try {
      const named = await ask(1, 'escape.qcow2');
      assert.equal(named.outcome, 'ok', named.message);
      const inside = await ask(2, 'inside.qcow2');
      assert.equal(inside.outcome, 'ok', inside.message);
      const protocol = await ask(3, 'protocol.qcow2');
      assert.equal(protocol.outcome, 'error', protocol.message);
      assert.match(protocol.message ?? '', /protocol/);
    } finally {
      child.stdin.end();
      await new Promise((r) => child.once('exit', r));
    }
  } finally {
    t.cleanup();
  }
});

// Previews of destructive operations (core/api/safety/preview.ts, #16 item 1) on a chain made by
// qemu-img: base.qcow2 (with snapshot "s1") <- mid.qcow2 <- top.qcow2, and other.qcow2 also on
// base. The numbers are checked against what qemu-img/qemu-io wrote and what the real operation
// then does (qemu-img snapshot -a, compare).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPlatterService, type PlatterService } from '../../core/api/service.ts';
import { previewInput, previewOperation, type PreviewInput } from '../../core/api/safety/preview.ts';
import { defaultEnv } from '../../core/jobs/common.ts';
import { qemuImg, qemuIo, run, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';

describe('preview of destructive operations', { skip: SKIP_NO_QEMU }, () => {
  const tmp = tempDir('platter-preview-');
  let service: PlatterService;
  const env = { ...defaultEnv(), warn: () => {} };
  const preview = (i: PreviewInput) => previewOperation(service, previewInput.parse(i), env);

  before(() => {
    service = createPlatterService({ warn: () => {} });
    qemuImg('create', '-q', '-f', 'qcow2', tmp.path('base.qcow2'), '4M');
    qemuIo('-c', 'write -P 0x11 0 1M', tmp.path('base.qcow2'));
    qemuImg('snapshot', '-c', 's1', tmp.path('base.qcow2'));
    qemuIo('-c', 'write -P 0x22 0 256K', tmp.path('base.qcow2')); // 256K differ from s1
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', tmp.path('mid.qcow2'));
    qemuIo('-c', 'write -P 0x33 0 64K', tmp.path('mid.qcow2'));
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', tmp.path('top.qcow2'));
    qemuIo('-c', 'write -P 0x44 2M 128K', tmp.path('top.qcow2'));
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', tmp.path('other.qcow2'));
  });
  after(async () => {
    await service.close();
    tmp.cleanup();
  });

  test('apply snapshot on a shared base names every dependent, the bytes that change, and the safe alternative', async () => {
    const p = await preview({ op: { kind: 'snapshot-apply', image: { filename: tmp.path('base.qcow2') }, snapshot: 's1' }, library: [tmp.dir] });
    assert.equal(p.layers[0]!.bytes, 256 << 10, JSON.stringify(p.layers));
    assert.deepEqual(p.dependents.map((d) => [d.name, d.depth]).sort(), [['mid.qcow2', 1], ['other.qcow2', 1], ['top.qcow2', 2]]);
    const by = Object.fromEntries(p.dependents.map((d) => [d.name, d]));
    // mid has its own 64K at 0: of the 256K that change it reads 192K from base.
    assert.equal(by['mid.qcow2']!.bytes, 192 << 10);
    assert.equal(by['top.qcow2']!.bytes, 192 << 10);
    assert.equal(by['other.qcow2']!.bytes, 256 << 10);
    assert.ok(p.danger && /mid\.qcow2/.test(p.danger.message) && /other\.qcow2/.test(p.danger.message), JSON.stringify(p.danger));
    assert.match(p.danger!.alternative, /new overlay/);
  });

  test('delete snapshot keeps the dependents unchanged', async () => {
    const p = await preview({ op: { kind: 'snapshot-delete', image: { filename: tmp.path('base.qcow2') }, snapshot: 's1' }, library: [tmp.dir] });
    assert.equal(p.danger, undefined);
    assert.ok(p.dependents.every((d) => d.effect === 'unchanged'));
    assert.match(p.unreadable.join(' '), /s1/);
  });

  test('commit mid into base moves mid\'s allocated bytes, and other.qcow2 (also on base) is named as corrupted', async () => {
    const p = await preview({ op: { kind: 'commit', image: { filename: tmp.path('mid.qcow2') } }, library: [tmp.dir] });
    const alloc = JSON.parse(run('qemu-img', ['map', '--output=json', tmp.path('mid.qcow2')]).stdout) as { length: number; depth: number; data: boolean }[];
    const own = alloc.filter((e) => e.depth === 0 && e.data).reduce((a, e) => a + e.length, 0);
    assert.equal(own, 64 << 10);
    assert.equal(p.layers.find((l) => l.name === 'base.qcow2')!.bytes, own);
    assert.equal(p.layers.find((l) => l.name === 'mid.qcow2')!.change, 'emptied');
    const other = p.dependents.find((d) => d.name === 'other.qcow2')!;
    assert.equal(other.effect, 'reads-different-data');
    assert.equal(p.dependents.find((d) => d.name === 'top.qcow2')!.effect, 'unchanged');
    assert.match(p.danger!.alternative, /Commit those overlays first/);
  });

  test('resize shrink counts the data past the new end; growing is harmless', async () => {
    const p = await preview({ op: { kind: 'resize', image: { filename: tmp.path('top.qcow2') }, size: '2M' }, library: [tmp.dir] });
    assert.equal(p.layers[0]!.bytes, 128 << 10);
    assert.ok(p.danger);
    const g = await preview({ op: { kind: 'resize', image: { filename: tmp.path('top.qcow2') }, size: '+1M' }, library: [tmp.dir] });
    assert.equal(g.danger, undefined);
  });

  test('unsafe rebase of mid onto nothing says what reads differently; safe copies it', async () => {
    const u = await preview({ op: { kind: 'rebase', image: { filename: tmp.path('mid.qcow2') }, backingFile: '', unsafe: true }, library: [tmp.dir] });
    // base has data in 0..1M; mid covers 64K of it.
    assert.equal(u.layers[0]!.bytes, (1 << 20) - (64 << 10));
    assert.ok(u.danger);
    const s = await preview({ op: { kind: 'rebase', image: { filename: tmp.path('mid.qcow2') }, backingFile: '' }, library: [tmp.dir] });
    assert.equal(s.layers[0]!.bytes, (1 << 20) - (64 << 10));
    assert.equal(s.danger, undefined);
  });

  test('convert over base.qcow2 names its dependents; repair of a clean image is harmless', async () => {
    const c = await preview({ op: { kind: 'convert-overwrite', target: tmp.path('base.qcow2') }, library: [tmp.dir] });
    assert.equal(c.dependents.length, 3);
    assert.ok(c.danger);
    const r = await preview({ op: { kind: 'repair', image: { filename: tmp.path('base.qcow2') } }, library: [tmp.dir] });
    assert.equal(r.danger, undefined);
  });

  test('the apply then really changes what other.qcow2 reads (qemu-img compare), as the preview said', async () => {
    const before = tmp.path('other-before.raw');
    qemuImg('convert', '-O', 'raw', tmp.path('other.qcow2'), before);
    qemuImg('snapshot', '-a', 's1', tmp.path('base.qcow2'));
    const r = run('qemu-img', ['compare', before, tmp.path('other.qcow2')]);
    assert.equal(r.status, 1, r.stdout + r.stderr);
  });
});

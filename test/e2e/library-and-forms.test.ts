// The desktop app's logic below the pixels, on real images made by qemu-img: the library scan
// (core/api/library.ts: one row per image with qemu-img info's facts, vmdk extents hidden, the lock
// state while qemu-io holds the image), the forms generated from each driver's real option schema
// (what is sent, what is refused and why, which choice asks for a passphrase), and the snapshot
// tree's graph model (one base with several overlays is one connected tree).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPlatterService, type PlatterService } from '../../core/api/service.ts';
import { scanLibrary } from '../../core/api/library.ts';
import type { FormatDescription } from '../../core/api/types.ts';
import { formErrors, initialValues, optionsToSend, validateOption } from '../../renderer/components/OptionsForm.tsx';
import { formSchema, cipherSchema, keySecretOption } from '../../renderer/components/image-forms.ts';
import { buildGraph } from '../../renderer/components/graph-model.ts';
import { parseSize } from '../../renderer/util/format.ts';
import { qemuImg, SKIP_NO_QEMU, startProcess, tempDir } from '../helpers/qemu.ts';

describe('library scan and generated forms', { skip: SKIP_NO_QEMU }, () => {
  const tmp = tempDir('platter-lib-');
  let service: PlatterService;
  let formats: FormatDescription[];
  const fmt = (name: string) => formats.find((f) => f.name === name);

  before(async () => {
    service = createPlatterService({ warn: () => {} });
    formats = await service.listFormats();
  });
  after(async () => {
    await service.close();
    tmp.cleanup();
  });

  test('a folder scan lists each qemu-img image once with its info, backing file and snapshots, and hides vmdk extents', async (t) => {
    qemuImg('create', '-q', '-f', 'qcow2', tmp.path('base.qcow2'), '16M');
    qemuImg('snapshot', '-c', 'first', tmp.path('base.qcow2'));
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', tmp.path('over.qcow2'));
    qemuImg('create', '-q', '-f', 'vmdk', '-o', 'subformat=monolithicFlat', tmp.path('flat.vmdk'), '1M');
    const rows = await scanLibrary(service, { paths: [tmp.dir, tmp.path('base.qcow2')] });
    assert.deepEqual(rows.map((r) => r.name), ['base.qcow2', 'flat.vmdk', 'over.qcow2']);
    const base = rows[0]!;
    assert.equal(base.format, 'qcow2');
    assert.equal(base.virtualSize, 16 << 20);
    assert.deepEqual(base.snapshots.map((s) => s.name), ['first']);
    assert.equal(base.lock, 'free');
    const over = rows[2]!;
    assert.equal(over.backingFile, 'base.qcow2');
    assert.equal(over.fullBackingFile, tmp.path('base.qcow2'));
    assert.equal(over.backingFormat, 'qcow2');
  });

  test('an image qemu-io holds open for writing shows as in use, and its info is still read', async (t) => {
    const file = tmp.path('busy.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', file, '8M');
    const holder = startProcess('qemu-io', [file]);
    try {
      await new Promise((r) => setTimeout(r, 500)); // qemu-io takes its locks at open
      const [row] = await scanLibrary(service, { paths: [file] });
      assert.equal(row!.lock, 'in-use', JSON.stringify(row));
      assert.equal(row!.virtualSize, 8 << 20);
    } finally {
      await holder.kill();
    }
  });

  test('the generated create form sends only changed options, as bytes, and explains a bad value', (t) => {
    const qcow2 = fmt('qcow2');
    assert.ok(qcow2, 'the qcow2 driver is registered');
    const schema = formSchema(qcow2);
    const names = schema.map((o) => o.name);
    assert.ok(names.includes('cluster_size') && names.includes('encrypt.format'));
    for (const hidden of ['size', 'backing_file', 'encrypt.key-secret', 'encrypt.cipher-alg', 'encrypt.iter-time']) assert.ok(!names.includes(hidden), hidden);
    const values = initialValues(schema);
    assert.deepEqual(optionsToSend(schema, values), {});
    const cluster = schema.find((o) => o.name === 'cluster_size')!;
    assert.match(validateOption(cluster, '1000')!, /power of two/);
    assert.match(validateOption(cluster, '4M')!, /at most/);
    assert.match(validateOption(cluster, '64 apples')!, /^Parameter 'cluster_size' expects a non-negative number below 2\^64/);
    assert.match(validateOption(cluster, '1000')!, /^Parameter 'cluster_size' must be a power of two/);
    assert.equal(validateOption(cluster, '128K'), undefined);
    assert.deepEqual(optionsToSend(schema, { ...values, cluster_size: '128K', lazy_refcounts: true }), { cluster_size: 131072, lazy_refcounts: true });
    const errors = formErrors(schema, { ...values, compat: '2.0' });
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /^Parameter 'compat' does not accept value '2\.0' \(expecting one of: 0\.10, .*1\.1/);
  });

  test('LUKS choices ask for a passphrase under the right option name, with the cipher options apart', (t) => {
    const qcow2 = fmt('qcow2');
    const luks = fmt('luks');
    assert.ok(qcow2 && luks, 'the qcow2 and luks drivers are registered');
    assert.equal(keySecretOption(luks, initialValues(formSchema(luks))), 'key-secret');
    assert.equal(keySecretOption(qcow2, initialValues(formSchema(qcow2))), undefined);
    assert.equal(keySecretOption(qcow2, { ...initialValues(formSchema(qcow2)), 'encrypt.format': 'luks' }), 'encrypt.key-secret');
    assert.deepEqual(cipherSchema(luks).map((o) => o.name).sort(), ['cipher-alg', 'cipher-mode', 'hash-alg', 'iter-time', 'ivgen-alg', 'ivgen-hash-alg']);
    assert.ok(cipherSchema(qcow2).every((o) => o.name.startsWith('encrypt.')));
  });

  test('sizes typed in the GUI parse as qemu-img reads them (qemu_strtosz: "10 GiB" is refused, as qemu-img refuses it)', () => {
    assert.equal(parseSize('64K'), 65536);
    assert.equal(parseSize('1.5G'), 1.5 * 2 ** 30);
    assert.equal(parseSize('10 GiB'), undefined);
    assert.equal(parseSize('10G'), 10 * 2 ** 30);
    assert.equal(parseSize('512'), 512);
    assert.equal(parseSize('1.5'), undefined);
    assert.equal(parseSize('-1'), undefined);
    assert.equal(parseSize('12X'), undefined);
  });
});

describe('snapshot tree graph model', () => {
  const entry = (path: string, backing?: string, snaps: string[] = []) => ({
    path,
    name: path.split('/').pop()!,
    dir: '/lib',
    root: '/lib',
    format: 'qcow2',
    virtualSize: 1 << 20,
    snapshots: snaps.map((name, i) => ({ id: String(i + 1), name, 'vm-state-size': 0, 'date-sec': 0, 'date-nsec': 0, 'vm-clock-sec': 0, 'vm-clock-nsec': 0 })),
    lock: 'free' as const,
    modified: 0,
    ...(backing ? { backingFile: backing, fullBackingFile: backing } : {}),
  });

  test('one base with several overlays and snapshots is one connected tree; a backing file outside the library still shows', () => {
    const g = buildGraph([entry('/lib/base', undefined, ['s1', 's2']), entry('/lib/a', '/lib/base'), entry('/lib/b', '/lib/base'), entry('/lib/c', '/lib/a'), entry('/lib/lone'), entry('/lib/x', '/elsewhere/gone')], {});
    const ids = new Set(g.nodes.map((n) => n.id));
    assert.ok(!ids.has('img:/lib/lone'), 'an image without relations stays out of the graph');
    assert.ok(ids.has('img:/elsewhere/gone'));
    // Connectivity from the base over the undirected edges.
    const adj = new Map<string, string[]>();
    for (const e of g.edges) {
      adj.set(e.source, [...(adj.get(e.source) ?? []), e.target]);
      adj.set(e.target, [...(adj.get(e.target) ?? []), e.source]);
    }
    const seen = new Set(['img:/lib/base']);
    const todo = ['img:/lib/base'];
    while (todo.length) for (const n of adj.get(todo.pop()!) ?? []) if (!seen.has(n)) (seen.add(n), todo.push(n));
    assert.deepEqual([...seen].sort(), ['img:/lib/a', 'img:/lib/b', 'img:/lib/base', 'img:/lib/c', 'snap:/lib/base#1', 'snap:/lib/base#2']);
    assert.equal(g.edges.filter((e) => e.kind === 'backing').length, 4);
    // dagre puts every overlay below its base.
    const y = (id: string) => g.nodes.find((n) => n.id === id)!.position.y;
    assert.ok(y('img:/lib/a') > y('img:/lib/base') && y('img:/lib/c') > y('img:/lib/a'));
  });
});

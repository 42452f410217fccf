// The service API (core/api/service.ts) as the desktop app calls it: zod validation of untrusted
// input through callService, job handles answering {jobId} with progress/done events, secrets
// never in events, listFormats describing every registered driver's options.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync } from 'node:fs';
import { tempDir } from '../helpers/qemu.ts';
import { callService, createPlatterService, type JobEvent } from '../../core/api/service.ts';
import { serviceRouter } from '../../core/api/router.ts';
import { BlockError } from '../../core/errors.ts';
import { formatDrivers } from '../../core/drivers/registry.ts';

test('callService refuses unknown methods and invalid input with InvalidArgument naming the field', async () => {
  const s = createPlatterService();
  await assert.rejects(callService(s, 'rmrf', {}), (e: unknown) => e instanceof BlockError && e.kind === 'InvalidArgument' && /Unknown method 'rmrf'/.test(e.message));
  await assert.rejects(callService(s, 'info', { image: { filename: '' } }), (e: unknown) => e instanceof BlockError && /image\.filename/.test(e.message));
  await assert.rejects(callService(s, 'convert', { source: { filename: 'a' }, target: { filename: 'b' }, parallel: 99 }), /parallel/);
  await assert.rejects(callService(s, '__proto__', {}), /Unknown method/);
  await s.close();
});

test('every router entry is a service method with a schema and a kind', () => {
  const s = createPlatterService();
  for (const [name, proc] of Object.entries(serviceRouter)) {
    assert.equal(typeof (s as unknown as Record<string, unknown>)[name], 'function', name);
    assert.equal(typeof proc.input.safeParse, 'function', name);
    assert.ok(proc.kind === 'query' || proc.kind === 'job', name);
  }
});

test('a job started through callService answers {jobId} and reports progress then done; secrets stay out of events', async () => {
  const t = tempDir();
  const s = createPlatterService();
  try {
    const src = t.path('s.raw');
    writeFileSync(src, Buffer.alloc(1 << 20, 0x42));
    const events: JobEvent[] = [];
    s.onEvent((e) => events.push(e));
    const out = (await callService(s, 'convert', {
      source: { filename: src, format: 'raw' },
      target: { filename: t.path('o.raw'), format: 'raw' },
      secrets: [{ id: 'sec0', data: 'hunter2-very-secret' }],
    })) as { jobId: string };
    assert.equal(typeof out.jobId, 'string');
    await new Promise<void>((resolve) => {
      const check = () => (events.some((e) => e.type === 'job-done' || e.type === 'job-failed') ? resolve() : setTimeout(check, 10));
      check();
    });
    const done = events.find((e) => e.type === 'job-done');
    assert.ok(done, JSON.stringify(events));
    assert.ok(events.some((e) => e.type === 'job-progress'));
    assert.ok(events.every((e) => e.jobId === out.jobId));
    assert.doesNotMatch(JSON.stringify(events), /hunter2/);
    assert.deepEqual(readFileSync(t.path('o.raw')), readFileSync(src));
    assert.equal((await s.jobs()).find((j) => j.jobId === out.jobId)?.state, 'done');
    assert.equal(await s.cancelJob({ jobId: out.jobId }), false);
  } finally {
    await s.close();
    t.cleanup();
  }
});

test('a failing job emits job-failed with the BlockError as plain data', async () => {
  const t = tempDir();
  const s = createPlatterService();
  try {
    const h = s.convert({ source: { filename: t.path('missing.raw'), format: 'raw' }, target: { filename: t.path('o.raw') } });
    const failed = new Promise<JobEvent>((resolve) => s.onEvent((e) => e.type === 'job-failed' && resolve(e)));
    await assert.rejects(h.result, /No such file or directory/);
    const e = await failed;
    assert.equal(e.type, 'job-failed');
    if (e.type === 'job-failed') {
      assert.equal(e.error.kind, 'NotFound');
      assert.match(e.error.message, /Could not open/);
      assert.deepEqual(JSON.parse(JSON.stringify(e.error)), e.error);
    }
  } finally {
    await s.close();
    t.cleanup();
  }
});

test('listFormats lists every registered driver with its create options as plain data', async () => {
  const s = createPlatterService();
  const list = await s.listFormats();
  assert.deepEqual(list.map((f) => f.name).sort(), formatDrivers().map((d) => d.name).sort());
  const raw = list.find((f) => f.name === 'raw')!;
  assert.equal(raw.canCreate, true);
  const prealloc = raw.createOptions.find((o) => o.name === 'preallocation')!;
  assert.deepEqual(prealloc.values, ['off', 'falloc', 'full']);
  assert.deepEqual(JSON.parse(JSON.stringify(list)), list);
  await s.close();
});

test('listFormats carries what each driver can do (compression, encryption), from the driver, not from lists of names', async () => {
  const s = createPlatterService();
  const list = await s.listFormats();
  const f = (name: string) => list.find((d) => d.name === name)!;
  for (const d of formatDrivers()) assert.equal(f(d.name).compression, d.compressedWrites ?? false, d.name);
  assert.equal(f('qcow2').compression, 'any-order');
  assert.equal(f('vmdk').compression, 'in-order');
  assert.equal(f('raw').compression, false);
  assert.equal(f('raw').encryption, undefined);
  const luks = f('luks').encryption!;
  assert.equal(luks.keySecret, 'key-secret');
  assert.equal(luks.luks, true);
  assert.deepEqual(Object.fromEntries(luks.cipherOptions.map((o) => [o.name, o.default])), { 'cipher-alg': 'aes-256', 'cipher-mode': 'xts', 'ivgen-alg': 'plain64', 'ivgen-hash-alg': 'sha256', 'hash-alg': 'sha256', 'iter-time': 2000 });
  const qcow2 = f('qcow2').encryption!;
  assert.deepEqual(qcow2.luks, { option: 'encrypt.format', value: 'luks' });
  assert.equal(qcow2.keySecret, 'encrypt.key-secret');
  // qcow2's schema has no defaults for these (its -o help shows none); the LUKS ones are lent.
  assert.equal(qcow2.cipherOptions.find((o) => o.name === 'encrypt.cipher-alg')?.default, 'aes-256');
  assert.equal(f('qcow2').createOptions.find((o) => o.name === 'encrypt.cipher-alg')?.default, undefined);
  assert.equal(f('qcow').encryption?.keySecret, 'encrypt.key-secret');
  assert.equal(f('qcow').encryption?.luks, undefined);
  await s.close();
});

test('info, map and measure through the service return qemu-img JSON shapes', async () => {
  const t = tempDir();
  const s = createPlatterService();
  try {
    const f = t.path('d.raw');
    writeFileSync(f, Buffer.alloc(65536, 1));
    const info = await s.info({ image: { filename: f, format: 'raw' } });
    assert.ok(!Array.isArray(info));
    assert.equal(info['virtual-size'], 65536);
    assert.equal(info.format, 'raw');
    const map = await s.map({ image: { filename: f, format: 'raw' } });
    assert.deepEqual(map.map(({ filename: _f, ...e }) => e), [{ start: 0, length: 65536, depth: 0, present: true, zero: false, data: true, offset: 0 }]);
    assert.deepEqual(await s.measure({ format: 'raw', size: '1M' }), { required: 1 << 20, 'fully-allocated': 1 << 20 });
  } finally {
    await s.close();
    t.cleanup();
  }
});

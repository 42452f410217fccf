// The convert job under cancellation and failure: a cancelled or failed convert removes the
// target it created (no file that looks complete is left, and no staging file), rejects with kind
// 'Cancelled'; an image that was under the target's name is untouched (the new one was staged);
// a convert into an existing target (-n) keeps the user's file.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, openSync, writeSync, closeSync, ftruncateSync, readdirSync, writeFileSync, readFileSync } from 'node:fs';
import { tempDir } from '../helpers/qemu.ts';
import { createPlatterService } from '../../core/api/service.ts';
import { convert } from '../../core/jobs/convert.ts';
import { defaultEnv } from '../../core/jobs/common.ts';
import { BlockError } from '../../core/errors.ts';

const MiB = 1 << 20;

function makeSource(path: string, dataMiB: number): void {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, 2 * dataMiB * MiB);
  const chunk = Buffer.alloc(MiB, 0x33);
  for (let i = 0; i < dataMiB; i++) writeSync(fd, chunk, 0, MiB, 2 * i * MiB);
  closeSync(fd);
}

test('a convert cancelled at its first progress event rejects with Cancelled and removes the target', async () => {
  const t = tempDir();
  try {
    const src = t.path('src.raw');
    makeSource(src, 8);
    const service = createPlatterService();
    const h = service.convert({ source: { filename: src, format: 'raw' }, target: { filename: t.path('out.raw'), format: 'raw' }, parallel: 1 });
    h.onProgress(() => h.cancel());
    await assert.rejects(h.result, (e: unknown) => e instanceof BlockError && e.kind === 'Cancelled');
    assert.equal(existsSync(t.path('out.raw')), false, 'the cancelled target was left behind');
    assert.deepEqual(readdirSync(t.dir), ['src.raw']);
    const summary = (await service.jobs()).find((j) => j.jobId === h.id);
    assert.equal(summary?.state, 'cancelled');
    await service.close();
  } finally {
    t.cleanup();
  }
});

test('an AbortSignal that already fired stops convert before it writes and leaves no target', async () => {
  const t = tempDir();
  try {
    const src = t.path('src.raw');
    makeSource(src, 2);
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(convert({ sources: [{ filename: src, format: 'raw' }], target: { filename: t.path('o.raw'), format: 'raw' } }, defaultEnv(), { signal: ac.signal }), /cancelled/i);
    assert.equal(existsSync(t.path('o.raw')), false);
  } finally {
    t.cleanup();
  }
});

test('a convert that fails mid-way (source shorter than the target needs, -n refused) keeps a -n target', async () => {
  const t = tempDir();
  try {
    const src = t.path('src.raw');
    makeSource(src, 2);
    const small = t.path('small.raw');
    writeFileSync(small, Buffer.alloc(MiB, 7));
    await assert.rejects(convert({ sources: [{ filename: src, format: 'raw' }], target: { filename: small, format: 'raw' }, noCreate: true }, defaultEnv()), /output file is smaller than input file/);
    assert.deepEqual(readFileSync(small), Buffer.alloc(MiB, 7), 'the user-provided target was changed');
  } finally {
    t.cleanup();
  }
});

test('a cancelled convert over an existing file of the same name leaves that file untouched and no staging file', async () => {
  const t = tempDir();
  try {
    const src = t.path('src.raw');
    makeSource(src, 8);
    const out = t.path('out.raw');
    writeFileSync(out, 'old contents');
    const ac = new AbortController();
    await assert.rejects(convert({ sources: [{ filename: src, format: 'raw' }], target: { filename: out, format: 'raw' }, parallel: 1 }, defaultEnv(), { signal: ac.signal, onProgress: () => ac.abort() }), /cancelled/i);
    assert.equal(readFileSync(out, 'utf8'), 'old contents');
    assert.deepEqual(readdirSync(t.dir).sort(), ['out.raw', 'src.raw']);
  } finally {
    t.cleanup();
  }
});

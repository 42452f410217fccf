// The app's convert methods (core/api/routes-views.ts) through the dispatcher both transports use
// (callService with the app's router): convertVerified verifies as qemu-img compare + check do, a
// cancel keeps a resumable partial that interruptedConverts lists and convertResume finishes
// (qemu-img compare: identical), and deleteVerifiedSource deletes only a source verified
// unchanged.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, utimesSync } from 'node:fs';
import { SKIP_NO_QEMU, run, tempDir } from '../helpers/qemu.ts';
import { makeSpacedRaw } from '../helpers/spaced-raw.ts';
import { callService, createPlatterService, type JobEvent, type PlatterService } from '../../core/api/service.ts';
import { appRouter } from '../../core/api/app-router.ts';
import type { AnyRouter } from '../../core/api/service.ts';

const router = appRouter as unknown as AnyRouter;


function follow(service: PlatterService, jobId: string, onProgress?: (done: number, total: number) => void): Promise<{ ok: boolean; value: any }> {
  return new Promise((resolve) => {
    const off = service.onEvent((e: JobEvent) => {
      if (!('jobId' in e) || e.jobId !== jobId) return;
      if (e.type === 'job-progress') onProgress?.(e.progress.done, e.progress.total);
      if (e.type === 'job-done') {
        off();
        resolve({ ok: true, value: e.result });
      }
      if (e.type === 'job-failed') {
        off();
        resolve({ ok: false, value: e.error });
      }
    });
  });
}

test('convertVerified, cancel, interruptedConverts, convertResume, deleteVerifiedSource', { skip: SKIP_NO_QEMU, timeout: 180_000 }, async () => {
  const t = tempDir();
  const service = createPlatterService({ warn: () => {} });
  try {
    const src = t.path('src.raw');
    makeSpacedRaw(src, 160);
    const dst = t.path('dst.qcow2');
    const { jobId } = (await callService(service, 'convertVerified', { source: { filename: src, format: 'raw' }, target: { filename: dst, format: 'qcow2' } }, { router })) as { jobId: string };
    let cancelled = false;
    const outcome = await follow(service, jobId, (done, total) => {
      if (!cancelled && total > 0 && done * 3 >= total) {
        cancelled = true;
        void callService(service, 'cancelJob', { jobId }, { router });
      }
    });
    assert.equal(outcome.ok, false);
    assert.equal(outcome.value.kind, 'Cancelled');
    assert.equal(existsSync(dst), false);
    const list = (await callService(service, 'interruptedConverts', { paths: [t.dir] }, { router })) as { target: string; done: number; total: number; problem?: string }[];
    assert.equal(list.length, 1);
    assert.equal(list[0]!.target, dst);
    assert.equal(list[0]!.problem, undefined);
    assert.ok(list[0]!.done > 0 && list[0]!.done < list[0]!.total, JSON.stringify(list[0]));

    // Nothing verified yet: deleting the source is refused.
    await assert.rejects(callService(service, 'deleteVerifiedSource', { source: src, target: dst }, { router }), /was not verified/);

    const resumed = (await callService(service, 'convertResume', { target: dst }, { router })) as { jobId: string };
    const r = await follow(service, resumed.jobId);
    assert.equal(r.ok, true, JSON.stringify(r.value));
    assert.equal(r.value.resumedFrom, list[0]!.done);
    assert.equal(r.value.verify.verified, true);
    assert.equal(r.value.verify.compare.message, run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', src, dst]).stdout.trim());
    assert.equal(run('qemu-img', ['check', dst]).status, 0);
    assert.equal(r.value.deletable, true);
    assert.deepEqual(await callService(service, 'interruptedConverts', { paths: [t.dir] }, { router }), []);

    // A source touched after verification is kept.
    utimesSync(src, new Date(), new Date(Date.now() + 10_000));
    await assert.rejects(callService(service, 'deleteVerifiedSource', { source: src, target: dst }, { router }), /changed after it was verified/);
    assert.ok(existsSync(src));

    // A vmdk target is not resumable: the ordinary convert runs, still verified.
    const vm = t.path('dst.vmdk');
    const v = (await callService(service, 'convertVerified', { source: { filename: src, format: 'raw' }, target: { filename: vm, format: 'vmdk' } }, { router })) as { jobId: string };
    const vr = await follow(service, v.jobId);
    assert.equal(vr.ok, true, JSON.stringify(vr.value));
    assert.equal(vr.value.resumable, false);
    assert.match(vr.value.notResumable, /vmdk target cannot be resumed/);
    assert.equal(vr.value.verify.verified, true);
    assert.equal(run('qemu-img', ['compare', '-f', 'raw', '-F', 'vmdk', src, vm]).status, 0);
    await callService(service, 'deleteVerifiedSource', { source: src, target: vm }, { router });
    assert.equal(existsSync(src), false);
  } finally {
    await service.close();
    t.cleanup();
  }
});

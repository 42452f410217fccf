// The desktop app's library watcher (core/api/library-watch.ts) and its IPC method: a file created,
// written or deleted in a watched folder is reported once (debounced) with the library path that
// covers it, by fs.watch and by the polling fallback; the folder count is bounded; the dispatcher
// validates libraryWatch's input with zod and pushes 'library-changed' events to its listeners.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/qemu.ts';
import { createLibraryWatcher, MAX_WATCHED_FOLDERS } from '../../core/api/library-watch.ts';
import { createDispatcher } from '../../electron/dispatch.ts';
import { createPlatterService } from '../../core/api/service.ts';
import type { AppEvent } from '../../core/api/app-protocol.ts';

/** Resolves with the next report, or rejects after `ms`. */
function nextReport(reports: string[][], ms: number): Promise<string[]> {
  const start = reports.length;
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = setInterval(() => {
      if (reports.length > start) {
        clearInterval(tick);
        resolve(reports[start]!);
      } else if (Date.now() - t0 > ms) {
        clearInterval(tick);
        reject(new Error(`no change reported within ${ms} ms`));
      }
    }, 20);
  });
}

for (const poll of [false, true]) {
  test(`a file created, written and deleted in a watched folder is reported with its library path (${poll ? 'polling fallback' : 'fs.watch'})`, async () => {
    const t = tempDir();
    const a = t.path('a');
    const b = t.path('b');
    mkdirSync(a);
    mkdirSync(b);
    const reports: string[][] = [];
    const w = createLibraryWatcher((roots) => reports.push(roots), { poll, pollIntervalMs: 100, debounceMs: 50 });
    try {
      const r = await w.set([a, b]);
      assert.deepEqual(r, poll ? { watching: 0, polling: 2, dropped: 0 } : { watching: 2, polling: 0, dropped: 0 });
      writeFileSync(join(a, 'x.qcow2'), 'x');
      assert.deepEqual(await nextReport(reports, 3000), [a]);
      await new Promise((r) => setTimeout(r, 250)); // let the debounce window and any echo pass
      const n = reports.length;
      appendFileSync(join(a, 'x.qcow2'), 'more bytes');
      await nextReport(reports, 3000);
      assert.ok(reports.slice(n).every((roots) => roots.length === 1 && roots[0] === a));
      rmSync(join(a, 'x.qcow2'));
      assert.deepEqual(await nextReport(reports, 3000), [a]);
      // A folder no longer in the set is not reported.
      await w.set([b]);
      await new Promise((r) => setTimeout(r, 250));
      const m = reports.length;
      writeFileSync(join(a, 'y.qcow2'), 'y');
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(reports.length, m);
    } finally {
      w.close();
      t.cleanup();
    }
  });
}

test(`no more than ${MAX_WATCHED_FOLDERS} folders are watched; files share their folder's watch`, async () => {
  const t = tempDir();
  const w = createLibraryWatcher(() => {}, { poll: true, pollIntervalMs: 60_000 });
  try {
    const dirs = Array.from({ length: MAX_WATCHED_FOLDERS + 3 }, (_, i) => {
      const d = t.path(`d${i}`);
      mkdirSync(d);
      return d;
    });
    writeFileSync(join(dirs[0]!, 'img.qcow2'), 'x');
    const r = await w.set([join(dirs[0]!, 'img.qcow2'), ...dirs]);
    assert.deepEqual(r, { watching: 0, polling: MAX_WATCHED_FOLDERS, dropped: 3 });
  } finally {
    w.close();
    t.cleanup();
  }
});

test('the dispatcher validates libraryWatch input with zod and pushes library-changed events', async () => {
  const t = tempDir();
  const dispatcher = createDispatcher({ service: createPlatterService({ warn: () => {} }), config: { mode: 'browser', roots: [], version: '0', platform: process.platform } });
  const events: AppEvent[] = [];
  const off = dispatcher.onEvent((e) => events.push(e));
  try {
    for (const bad of [{}, { paths: 'x' }, { paths: [''] }, { paths: [1] }]) {
      const r = await dispatcher.call({ method: 'libraryWatch', input: bad });
      assert.equal(r.ok, false);
      assert.equal(!r.ok && r.error.kind, 'InvalidArgument');
    }
    const r = await dispatcher.call({ method: 'libraryWatch', input: { paths: [t.dir] } });
    assert.deepEqual(r, { ok: true, value: { watching: 1, polling: 0, dropped: 0 } });
    writeFileSync(t.path('new.qcow2'), 'x');
    const t0 = Date.now();
    while (!events.some((e) => e.type === 'library-changed') && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(events.find((e) => e.type === 'library-changed'), { type: 'library-changed', roots: [t.dir] });
  } finally {
    off();
    await dispatcher.close();
    t.cleanup();
  }
});

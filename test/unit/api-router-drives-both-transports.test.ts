// One router (core/api/router.ts, app-router.ts) drives both transports: a method added to the
// router, and nowhere else, is callable through the Electron IPC handler and the browser mode's
// WebSocket, as a query and as a job; a call's input is validated exactly once, where it enters,
// and invalid input is refused there with the method and the field named in words.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import { z } from 'zod';
import { createPlatterService, type AnyRouter } from '../../core/api/service.ts';
import { appRouter, type AppClient } from '../../core/api/app-router.ts';
import type { InfoInput } from '../../core/api/schemas.ts';
import { spawnSync } from 'node:child_process';
import { job, query } from '../../core/api/router.ts';
import type { AppEvent, CallRequest, CallResult, WsServerFrame } from '../../core/api/app-protocol.ts';
import { createDispatcher, ipcCallHandler, type Dispatcher } from '../../electron/dispatch.ts';
import { startBrowserServer, type BrowserServer } from '../../electron/browser-server.ts';
import { tempDir } from '../helpers/qemu.ts';

/** A schema that counts how often it is asked to parse. */
function counted<S extends z.ZodType>(schema: S): { schema: S; count(): number } {
  let n = 0;
  const wrapped = Object.create(schema) as S;
  (wrapped as { safeParse: S['safeParse'] }).safeParse = ((input: unknown) => {
    n++;
    return schema.safeParse(input);
  }) as S['safeParse'];
  return { schema: wrapped, count: () => n };
}

const doubleInput = counted(z.object({ n: z.number().int() }));
const slowInput = counted(z.object({ steps: z.number().int().min(1).max(10) }));
const convertInput = counted(appRouter.convert.input);

/** The app's router plus two methods written only here. */
const router = {
  ...appRouter,
  convert: { ...appRouter.convert, input: convertInput.schema },
  double: query(doubleInput.schema, (i) => ({ doubled: i.n * 2 })),
  countTo: job(slowInput.schema, (i) => `Count to ${i.steps}`, async (i, { ctl }) => {
    for (let k = 1; k <= i.steps; k++) ctl.onProgress?.({ done: k, total: i.steps });
    return { counted: i.steps };
  }),
};

function wsCall(ws: WebSocket, id: number, method: string, input: unknown): Promise<WsServerFrame> {
  return new Promise((resolve) => {
    const onMessage = (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as WsServerFrame;
      if ('id' in frame && frame.id === id) {
        ws.off('message', onMessage);
        resolve(frame);
      }
    };
    ws.on('message', onMessage);
    ws.send(JSON.stringify({ id, method, input }));
  });
}

describe('one router, two transports', () => {
  const tmp = tempDir('platter-router-');
  let dispatcher: Dispatcher;
  let server: BrowserServer;
  let ws: WebSocket;
  const events: AppEvent[] = [];
  let ipc: (event: { trusted: boolean }, request: CallRequest) => Promise<CallResult>;

  before(async () => {
    writeFileSync(tmp.path('index.html'), '<!doctype html><title>Platter</title>');
    dispatcher = createDispatcher({ service: createPlatterService({ warn: () => {} }), config: { mode: 'browser', roots: [], version: 'test', platform: process.platform }, router: router as unknown as AnyRouter });
    dispatcher.onEvent((e) => events.push(e));
    ipc = ipcCallHandler(dispatcher, (e: { trusted: boolean }) => e.trusted);
    server = await startBrowserServer({ dispatcher, rendererDir: tmp.dir });
    ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws?token=${server.token}`, { origin: server.origin });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
  });
  after(async () => {
    ws.terminate();
    await server.close();
    await dispatcher.close();
    tmp.cleanup();
  });

  test('a query added to the router is answered over IPC and over the WebSocket', async () => {
    assert.deepEqual(await ipc({ trusted: true }, { method: 'double', input: { n: 21 } }), { ok: true, value: { doubled: 42 } });
    const frame = await wsCall(ws, 1, 'double', { n: 4 });
    assert.deepEqual(frame, { id: 1, ok: true, value: { doubled: 8 } });
    // The IPC handler still answers only the app's own window.
    const refused = await ipc({ trusted: false }, { method: 'double', input: { n: 1 } });
    assert.equal(refused.ok, false);
  });

  test('a job added to the router answers {jobId} at once and reports progress and its result as events', async () => {
    for (const via of ['ipc', 'ws'] as const) {
      const r = (via === 'ipc' ? await ipc({ trusted: true }, { method: 'countTo', input: { steps: 3 } }) : await wsCall(ws, 2, 'countTo', { steps: 3 })) as CallResult;
      assert.ok(r.ok, JSON.stringify(r));
      const { jobId } = (r as { value: { jobId: string } }).value;
      const deadline = Date.now() + 5000;
      while (!events.some((e) => e.type === 'job-done' && e.jobId === jobId) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
      const mine = events.filter((e) => 'jobId' in e && e.jobId === jobId);
      assert.deepEqual(mine[0], { type: 'job-started', jobId, method: 'countTo', label: 'Count to 3' });
      assert.ok(mine.some((e) => e.type === 'job-progress' && e.progress.done === 3));
      assert.deepEqual(mine.at(-1), { type: 'job-done', jobId, result: { counted: 3 } });
    }
  });

  test('each call is validated exactly once, at the edge, on both transports', async () => {
    const before = doubleInput.count();
    await ipc({ trusted: true }, { method: 'double', input: { n: 1 } });
    await wsCall(ws, 3, 'double', { n: 1 });
    assert.equal(doubleInput.count() - before, 2);

    // A real service job: the dispatcher validates, the service does not check again.
    const c0 = convertInput.count();
    const r = await ipc({ trusted: true }, { method: 'convert', input: { source: { filename: tmp.path('missing.raw'), format: 'raw' }, target: { filename: tmp.path('o.raw') } } });
    assert.ok(r.ok);
    const { jobId } = (r as { value: { jobId: string } }).value;
    const deadline = Date.now() + 5000;
    while (!events.some((e) => e.type === 'job-failed' && e.jobId === jobId) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
    assert.ok(events.some((e) => e.type === 'job-failed' && e.jobId === jobId));
    assert.equal(convertInput.count() - c0, 1);
  });

  test('invalid input is refused at the edge with the method and field in words, and nothing runs', async () => {
    const started = events.length;
    const viaIpc = await ipc({ trusted: true }, { method: 'countTo', input: { steps: 99 } });
    assert.equal(viaIpc.ok, false);
    if (!viaIpc.ok) {
      assert.equal(viaIpc.error.kind, 'InvalidArgument');
      assert.match(viaIpc.error.message, /^Invalid input for 'countTo': steps: /);
      assert.match(viaIpc.error.message, /10/);
    }
    const viaWs = await wsCall(ws, 4, 'double', { n: 'x' });
    assert.ok('ok' in viaWs && !viaWs.ok);
    if ('ok' in viaWs && !viaWs.ok) assert.match(viaWs.error.message, /^Invalid input for 'double': n: /);
    const unknown = await wsCall(ws, 5, 'rmrf', {});
    assert.ok('ok' in unknown && !unknown.ok && /Unknown method 'rmrf'/.test(unknown.error.message));
    const proto = await ipc({ trusted: true }, { method: '__proto__', input: {} });
    assert.ok(!proto.ok && /Unknown method/.test(proto.error.message));
    assert.equal(events.length, started, 'no job was started');
  });

  test('a real method added as one router entry (infoText) is typed in the client and answered on both transports', async () => {
    // Type level: the renderer's client has it, with its input and result, from the router alone.
    const typed: ((input: InfoInput) => Promise<string>) | undefined = undefined as AppClient['infoText'] | undefined;
    assert.equal(typed, undefined);
    const f = tmp.path('d.raw');
    const c = spawnSync('qemu-img', ['create', '-q', '-f', 'raw', f, '1536K'], { encoding: 'utf8' });
    assert.equal(c.status, 0, c.stderr);
    const qemu = spawnSync('qemu-img', ['info', '-f', 'raw', f], { encoding: 'utf8' }).stdout;
    const viaIpc = await ipc({ trusted: true }, { method: 'infoText', input: { image: { filename: f, format: 'raw' } } });
    assert.deepEqual(viaIpc, { ok: true, value: qemu });
    assert.deepEqual(await wsCall(ws, 7, 'infoText', { image: { filename: f, format: 'raw' } }), { id: 7, ok: true, value: qemu });
  });

  test('the app router answers the app methods and the service methods alike', async () => {
    const config = await ipc({ trusted: true }, { method: 'appConfig', input: {} });
    assert.deepEqual(config, { ok: true, value: { mode: 'browser', roots: [], version: 'test', platform: process.platform } });
    const formats = await wsCall(ws, 6, 'listFormats', {});
    assert.ok('ok' in formats && formats.ok && Array.isArray(formats.value));
    const pick = await ipc({ trusted: true }, { method: 'pickPaths', input: { kind: 'file' } });
    assert.ok(!pick.ok && pick.error.kind === 'Unsupported', 'browser mode has no native dialogs');
  });
});

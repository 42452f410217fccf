// Browser mode's security edge (electron/browser-server.ts + electron/dispatch.ts), tested with
// real HTTP and WebSocket clients against the real service: without the launch token, with a wrong
// one, from another Origin or another Host, nothing is served and no call is answered; calls are
// validated by the API's zod schemas; and a passphrase sent as a secret never comes back in an
// event or a result.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { WebSocket } from 'ws';
import { createPlatterService } from '../../core/api/service.ts';
import type { AppEvent, WsServerFrame } from '../../core/api/app-protocol.ts';
import { createDispatcher, type Dispatcher } from '../../electron/dispatch.ts';
import { startBrowserServer, type BrowserServer } from '../../electron/browser-server.ts';
import { tempDir } from '../helpers/qemu.ts';

/** Open a WebSocket; resolves 'open' or the HTTP status it was refused with. */
function tryWs(url: string, origin: string | undefined): Promise<{ status: 'open'; ws: WebSocket } | { status: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, origin ? { origin } : {});
    ws.on('open', () => resolve({ status: 'open', ws }));
    ws.on('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0 });
      ws.terminate();
    });
    ws.on('error', () => resolve({ status: -1 }));
  });
}

function rawGet(port: number, path: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

function callOver(ws: WebSocket, id: number, method: string, input: unknown): Promise<WsServerFrame> {
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

describe('browser mode refuses everyone but its own page', () => {
  const tmp = tempDir('platter-sec-');
  let server: BrowserServer;
  let dispatcher: Dispatcher;
  let wsUrl: string;

  before(async () => {
    writeFileSync(tmp.path('index.html'), '<!doctype html><title>Platter</title>');
    writeFileSync(tmp.path('app.js'), '// app');
    writeFileSync(tmp.path('secret.txt.bak'), 'not served');
    dispatcher = createDispatcher({ service: createPlatterService({ warn: () => {} }), config: { mode: 'browser', roots: [], version: 'test', platform: process.platform } });
    server = await startBrowserServer({ dispatcher, rendererDir: tmp.dir });
    wsUrl = `ws://127.0.0.1:${server.port}/ws`;
  });
  after(async () => {
    await server.close();
    await dispatcher.close();
    tmp.cleanup();
  });

  test('the page needs the launch token; a wrong or missing one gets 403', async () => {
    assert.equal((await fetch(`${server.origin}/`)).status, 403);
    assert.equal((await fetch(`${server.origin}/?token=${'A'.repeat(server.token.length)}`)).status, 403);
    assert.equal((await fetch(`${server.origin}/index.html?token=x`)).status, 403);
    const ok = await fetch(server.url);
    assert.equal(ok.status, 200);
    const csp = ok.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-eval/);
    assert.match(csp, new RegExp(`connect-src 'self' ws://127\\.0\\.0\\.1:${server.port}`));
    assert.equal(ok.headers.get('referrer-policy'), 'no-referrer');
  });

  test('a request naming another Host (DNS rebinding) gets 403, and paths cannot leave the renderer folder', async () => {
    assert.equal(await rawGet(server.port, `/?token=${server.token}`, 'evil.example:80'), 403);
    assert.equal(await rawGet(server.port, '/app.js', `localhost:${server.port}`), 403);
    assert.equal(await rawGet(server.port, '/app.js', `127.0.0.1:${server.port}`), 200);
    assert.notEqual(await rawGet(server.port, '/../../../../etc/passwd', `127.0.0.1:${server.port}`), 200);
    assert.notEqual(await rawGet(server.port, '/%2e%2e/%2e%2e/etc/passwd', `127.0.0.1:${server.port}`), 200);
    assert.equal(await rawGet(server.port, '/secret.txt.bak', `127.0.0.1:${server.port}`), 404);
  });

  test('a WebSocket without the token, with a wrong token, or from another Origin is refused with 403', async () => {
    assert.deepEqual(await tryWs(wsUrl, server.origin), { status: 403 });
    assert.deepEqual(await tryWs(`${wsUrl}?token=`, server.origin), { status: 403 });
    assert.deepEqual(await tryWs(`${wsUrl}?token=${server.token.slice(1)}x`, server.origin), { status: 403 });
    assert.deepEqual(await tryWs(`${wsUrl}?token=${server.token}`, 'http://evil.example'), { status: 403 });
    assert.deepEqual(await tryWs(`${wsUrl}?token=${server.token}`, `http://localhost:${server.port}`), { status: 403 });
    assert.deepEqual(await tryWs(`${wsUrl}?token=${server.token}`, undefined), { status: 403 });
    assert.deepEqual(await tryWs(`ws://127.0.0.1:${server.port}/other?token=${server.token}`, server.origin), { status: 403 });
  });

  test('the own page with the token is answered, and inputs are validated by the API schemas', async () => {
    const r = await tryWs(`${wsUrl}?token=${server.token}`, server.origin);
    assert.equal(r.status, 'open');
    const ws = (r as { ws: WebSocket }).ws;
    try {
      const formats = await callOver(ws, 1, 'listFormats', {});
      assert.ok('ok' in formats && formats.ok);
      assert.ok(((formats as { value: { name: string }[] }).value).some((f) => f.name === 'raw'));
      const bad = await callOver(ws, 2, 'info', { image: { filename: 42 } });
      assert.ok('ok' in bad && !bad.ok);
      assert.equal((bad as { error: { kind: string } }).error.kind, 'InvalidArgument');
      assert.match((bad as { error: { message: string } }).error.message, /image\.filename/);
      const unknown = await callOver(ws, 3, '__proto__', {});
      assert.ok('ok' in unknown && !unknown.ok);
      assert.match((unknown as { error: { message: string } }).error.message, /Unknown method/);
      const missing = await callOver(ws, 4, 'info', { image: { filename: tmp.path('nope.qcow2') } });
      assert.ok('ok' in missing && !missing.ok);
      assert.equal((missing as { error: { kind: string } }).error.kind, 'NotFound');
      assert.equal((missing as { error: { stack?: string } }).error.stack, undefined);
    } finally {
      ws.close();
    }
  });

  test('a passphrase sent as a secret never appears in job events or results', async (t) => {
    const formats = await dispatcher.call({ method: 'listFormats', input: {} });
    assert.ok(formats.ok && (formats.value as { name: string }[]).some((f) => f.name === 'luks'), 'the luks driver is registered');
    const passphrase = 'Do-not-leak: 8f3c0e7a-passphrase';
    const events: AppEvent[] = [];
    const off = dispatcher.onEvent((e) => events.push(e));
    const started = await dispatcher.call({
      method: 'create',
      input: { filename: tmp.path('s.luks'), format: 'luks', size: 1 << 20, options: { 'key-secret': 'k0', 'iter-time': 10 }, secrets: [{ id: 'k0', data: passphrase }] },
    });
    assert.ok(started.ok, JSON.stringify(started));
    const jobId = (started.value as { jobId: string }).jobId;
    for (let i = 0; i < 300 && !events.some((e) => 'jobId' in e && e.jobId === jobId && (e.type === 'job-done' || e.type === 'job-failed')); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    off();
    const done = events.find((e) => 'jobId' in e && e.jobId === jobId && e.type === 'job-done');
    assert.ok(done, `job did not finish: ${JSON.stringify(events)}`);
    const jobs = await dispatcher.call({ method: 'jobs', input: {} });
    const everything = JSON.stringify([events, started, jobs]);
    assert.ok(!everything.includes(passphrase), 'the passphrase leaked into an event or a result');
    assert.ok(!everything.includes(Buffer.from(passphrase).toString('base64')));

    // The key-slot dialogs (#16): adding a passphrase, and a try with a wrong current one, carry
    // neither passphrase in events, results, errors or the jobs list.
    const added = 'Do-not-leak: 2b7d-added-passphrase';
    const wrong = 'Do-not-leak: 91aa-wrong-passphrase';
    const events2: AppEvent[] = [];
    const off2 = dispatcher.onEvent((e) => events2.push(e));
    const finish = async (r: Awaited<ReturnType<typeof dispatcher.call>>) => {
      assert.ok(r.ok, JSON.stringify(r));
      const id = (r.value as { jobId: string }).jobId;
      for (let i = 0; i < 600 && !events2.some((e) => 'jobId' in e && e.jobId === id && (e.type === 'job-done' || e.type === 'job-failed')); i++) await new Promise((res) => setTimeout(res, 50));
      return events2.find((e) => 'jobId' in e && e.jobId === id && (e.type === 'job-done' || e.type === 'job-failed'));
    };
    const add = await dispatcher.call({ method: 'keySlotChange', input: { path: tmp.path('s.luks'), format: 'luks', action: 'add', iterTime: 10, secrets: [{ id: 'current', data: passphrase }, { id: 'new', data: added }] } });
    assert.equal((await finish(add))?.type, 'job-done', JSON.stringify(events2));
    const bad = await dispatcher.call({ method: 'keySlotChange', input: { path: tmp.path('s.luks'), format: 'luks', action: 'add', secrets: [{ id: 'current', data: wrong }, { id: 'new', data: added }] } });
    assert.equal((await finish(bad))?.type, 'job-failed');
    off2();
    const all = JSON.stringify([events2, add, bad, await dispatcher.call({ method: 'jobs', input: {} }), await dispatcher.call({ method: 'keySlots', input: { path: tmp.path('s.luks') } })]);
    for (const p of [passphrase, added, wrong]) {
      assert.ok(!all.includes(p), 'a key-slot passphrase leaked into an event, a result or an error');
      assert.ok(!all.includes(Buffer.from(p).toString('base64')));
    }
  });
});

// The app's remote-source methods (core/api/routes-remote.ts) through the dispatcher both
// transports use, against real peers: nbdServe serves an image from the app's process (qemu-img
// info and compare over its URI equal the image's; a TCP client shows in nbdServers with its own
// address); closing the dispatcher (the app quits) stops every server, removes its socket and
// frees the image for a writer; nbdListExports lists a qemu-nbd export by name; an iSCSI browse
// that fails never names the CHAP password; a library scan of a dead NBD server's URI gives a row
// with the error in words.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { createPlatterService } from '../../core/api/service.ts';
import { createDispatcher, type Dispatcher } from '../../electron/dispatch.ts';
import type { NbdServedInfo, NbdExportRow } from '../../core/api/routes-remote.ts';
import type { LibraryEntry } from '../../core/api/library.ts';
import { have, qemuImg, qemuIo, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';
import { freePort, startPeer } from '../helpers/nbd-peers.ts';

const exec = promisify(execFile);
const config = { mode: 'browser' as const, roots: [], version: 'test', platform: process.platform };

async function call<T>(d: Dispatcher, method: string, input: unknown): Promise<T> {
  const r = await d.call({ method, input });
  if (!r.ok) throw Object.assign(new Error(r.error.message), r.error);
  return r.value as T;
}

describe('remote-source methods of the app', { skip: SKIP_NO_QEMU || (!have('qemu-nbd') ? 'qemu-nbd not installed' : false) }, () => {
  const t = tempDir('platter-remote-routes-');
  after(() => t.cleanup());

  test('nbdServe: qemu-img reads the image over the URI, the client is listed, and closing the app stops the servers', { timeout: 60_000 }, async () => {
    const img = t.path('a.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', img, '16M');
    qemuIo('-c', 'write -P 0x42 0 1M', img);
    const service = createPlatterService({ warn: () => {} });
    const d = createDispatcher({ service, config });
    const unix = await call<NbdServedInfo>(d, 'nbdServe', { image: { filename: img, format: 'qcow2' } });
    const tcp = await call<NbdServedInfo>(d, 'nbdServe', { image: { filename: img }, transport: 'tcp', exportName: 'disk' });
    assert.equal(unix.readOnly, true);
    assert.match(tcp.uri, /^nbd:\/\/127\.0\.0\.1:\d+\/disk$/);
    const info = JSON.parse((await exec('qemu-img', ['info', '--output=json', '-f', 'raw', tcp.uri])).stdout) as { 'virtual-size': number };
    assert.equal(info['virtual-size'], 16 << 20);
    assert.match((await exec('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', img, unix.uri])).stdout, /Images are identical/);
    const exports = await call<NbdExportRow[]>(d, 'nbdListExports', { uri: tcp.uri });
    assert.deepEqual(exports.map((e) => [e.name, e.size, e.readOnly, e.uri]), [['disk', 16 << 20, true, tcp.uri]]);
    // A client that stays: listed with its own address.
    const port = Number(/:(\d+)\//.exec(tcp.uri)![1]);
    const sock = connect({ host: '127.0.0.1', port });
    await new Promise((r) => sock.once('data', r)); // the server's greeting
    const listed = await call<NbdServedInfo[]>(d, 'nbdServers', {});
    assert.deepEqual(listed.find((s) => s.id === tcp.id)!.connections.map((c) => c.peer), [`127.0.0.1:${sock.localPort}`]);
    assert.deepEqual(listed.find((s) => s.id === unix.id)!.connections, []);
    const socketPath = unix.uri.replace(/^.*socket=/, '');
    assert.ok(existsSync(socketPath));
    await d.close();
    await service.close();
    const closed = await new Promise((r) => (sock.destroyed ? r(true) : sock.once('close', () => r(true))));
    assert.equal(closed, true, 'the client was disconnected');
    assert.equal(existsSync(socketPath), false, 'the socket is removed');
    // Nothing holds the image any more: a writer opens it.
    qemuIo('-c', 'write -P 0x43 0 512', img);
    const again = createDispatcher({ service: createPlatterService({ warn: () => {} }), config });
    assert.deepEqual(await call<NbdServedInfo[]>(again, 'nbdServers', {}), []);
    await again.close();
  });

  test('nbdListExports names a qemu-nbd export; a dead server is one clear error; its library row says why', { timeout: 60_000 }, async () => {
    const img = t.path('b.raw');
    qemuImg('create', '-q', '-f', 'raw', img, '4M');
    const sock = t.path('q.sock');
    const peer = await startPeer('qemu-nbd', ['-t', '-r', '-f', 'raw', '-x', 'exp1', '-D', 'the first', '-k', sock, img], { path: sock });
    const service = createPlatterService({ warn: () => {} });
    const d = createDispatcher({ service, config });
    try {
      const list = await call<NbdExportRow[]>(d, 'nbdListExports', { uri: `nbd+unix://?socket=${sock}` });
      assert.deepEqual(list, [{ name: 'exp1', description: 'the first', size: 4 << 20, readOnly: true, uri: `nbd+unix:///exp1?socket=${sock}` }]);
      const dead = `nbd://127.0.0.1:${await freePort()}`;
      await assert.rejects(call(d, 'nbdListExports', { uri: dead }), /127\.0\.0\.1:\d+/);
      const rows = await call<LibraryEntry[]>(d, 'libraryScan', { paths: [`nbd+unix:///exp1?socket=${sock}`, dead] });
      assert.equal(rows.length, 2);
      assert.equal(rows[0]!.virtualSize, 4 << 20);
      assert.equal(rows[0]!.name, 'exp1 (nbd)');
      assert.match(rows[1]!.error!.message, /Failed to connect|Connection refused/);
    } finally {
      await d.close();
      await service.close();
      await peer.stop();
    }
  });

  test('an iSCSI browse that fails never names the CHAP password', async () => {
    const service = createPlatterService({ warn: () => {} });
    const d = createDispatcher({ service, config });
    const password = 'Chap-Passw0rd-in-no-error';
    const r = await d.call({ method: 'iscsiBrowse', input: { portal: `127.0.0.1:${await freePort()}`, user: 'u', passwordSecret: 'p', secrets: [{ id: 'p', data: password }] } });
    assert.equal(r.ok, false);
    assert.ok(!JSON.stringify(r).includes(password));
    await d.close();
    await service.close();
  });
});

// NBD over TLS with x509 credentials (QEMU's tls-creds-x509 objects), certificates made here by
// certtool (gnutls-bin): qemu-img as the client of `platter nbd --tls-creds`, Platter's client
// against `qemu-nbd --tls-creds`, nbdinfo (libnbd) against ours, and a plain client refused by a
// TLS-only server with qemu-img's words.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, copyFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { have, run, runOk, tempDir, qemuImg, qemuIo, SKIP_NO_QEMU } from '../helpers/qemu.ts';
import { platterInProcess } from './harness.ts';
import { startPeer, startPlatterNbd, type Peer } from '../helpers/nbd-peers.ts';

const SKIP = SKIP_NO_QEMU || (!have('qemu-nbd') ? 'qemu-nbd not installed' : !have('certtool') ? 'certtool (gnutls-bin) not installed' : false);

const tmp = tempDir('platter-nbd-tls-');
const img = tmp.path('a.qcow2');
const srvDir = tmp.path('srv');
const cliDir = tmp.path('cli');
const peers: Peer[] = [];

function certtool(args: string[]): void {
  runOk('certtool', args);
}

before(() => {
  if (SKIP) return;
  const pki = tmp.path('pki');
  mkdirSync(pki);
  const p = (n: string) => join(pki, n);
  writeFileSync(p('ca.info'), 'cn = Platter Test CA\nca\ncert_signing_key\nexpiration_days = 2\n');
  writeFileSync(p('server.info'), 'organization = Platter\ncn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\nencryption_key\nsigning_key\nexpiration_days = 2\n');
  writeFileSync(p('client.info'), 'organization = Platter\ncn = client\ntls_www_client\nencryption_key\nsigning_key\nexpiration_days = 2\n');
  certtool(['--generate-privkey', '--outfile', p('ca-key.pem')]);
  certtool(['--generate-self-signed', '--load-privkey', p('ca-key.pem'), '--template', p('ca.info'), '--outfile', p('ca-cert.pem')]);
  for (const who of ['server', 'client']) {
    certtool(['--generate-privkey', '--outfile', p(`${who}-key.pem`)]);
    certtool(['--generate-certificate', '--load-ca-certificate', p('ca-cert.pem'), '--load-ca-privkey', p('ca-key.pem'), '--load-privkey', p(`${who}-key.pem`), '--template', p(`${who}.info`), '--outfile', p(`${who}-cert.pem`)]);
  }
  mkdirSync(srvDir);
  mkdirSync(cliDir);
  for (const f of ['ca-cert.pem', 'server-cert.pem', 'server-key.pem']) copyFileSync(p(f), join(srvDir, f));
  for (const f of ['ca-cert.pem', 'client-cert.pem', 'client-key.pem']) copyFileSync(p(f), join(cliDir, f));
  chmodSync(join(srvDir, 'server-key.pem'), 0o600);
  chmodSync(join(cliDir, 'client-key.pem'), 0o600);
  qemuImg('create', '-f', 'qcow2', img, '32M');
  qemuIo('-f', 'qcow2', '-c', 'write -P 0x55 1M 1M', '-c', 'write -z 4M 1M', img);
});

after(async () => {
  for (const p of peers) await p.stop();
  tmp.cleanup();
});

const serverObj = () => `tls-creds-x509,id=tls0,dir=${srvDir},endpoint=server`;
const clientObj = () => `tls-creds-x509,id=tls0,dir=${cliDir},endpoint=client`;
const tlsImage = (sock: string) => `json:{"driver":"raw","file":{"driver":"nbd","path":"${sock}","export":"exp","tls-creds":"tls0","tls-hostname":"localhost"}}`;

test('qemu-img (TLS client) against platter nbd --tls-creds: info, map and compare as against qemu-nbd --tls-creds', { skip: SKIP }, async () => {
  const ps = tmp.path('p.sock');
  const qs = tmp.path('q.sock');
  peers.push(await startPlatterNbd(['-r', '-t', '-e', '0', '-k', ps, '--object', serverObj(), '--tls-creds', 'tls0', '-f', 'qcow2', '-x', 'exp', img], { path: ps }));
  peers.push(await startPeer('qemu-nbd', ['-r', '-t', '-e', '0', '-k', qs, '--object', serverObj(), '--tls-creds', 'tls0', '-f', 'qcow2', '-x', 'exp', img], { path: qs }));
  for (const cmd of [['info', '--output=json'], ['map', '--output=json']]) {
    const a = run('qemu-img', [...cmd, '--object', clientObj(), tlsImage(ps)]);
    const b = run('qemu-img', [...cmd, '--object', clientObj(), tlsImage(qs)]);
    assert.equal(a.status, 0, a.stderr);
    assert.equal(a.stdout, b.stdout.replaceAll(qs, ps));
  }
  const c = run('qemu-img', ['compare', '-U', '--object', clientObj(), img, tlsImage(ps)]);
  assert.equal(c.status, 0, c.stdout + c.stderr);
  if (have('nbdinfo')) {
    const m = run('nbdinfo', ['--map', `nbds+unix:///exp?socket=${ps}&tls-certificates=${cliDir}`]);
    assert.equal(m.status, 0, m.stderr);
    assert.equal(m.stdout, runOk('nbdinfo', ['--map', `nbds+unix:///exp?socket=${qs}&tls-certificates=${cliDir}`]));
  }
});

test("Platter's client (TLS) against qemu-nbd --tls-creds: info/map equal qemu-img's, convert equals the image", { skip: SKIP }, async () => {
  const qs = tmp.path('q.sock');
  for (const cmd of [['info'], ['map', '--output=json']]) {
    const q = run('qemu-img', [...cmd, '--object', clientObj(), tlsImage(qs)]);
    const p = await platterInProcess([...cmd, '--object', clientObj(), tlsImage(qs)]);
    assert.equal(p.stderr, '');
    assert.equal(p.stdout, q.stdout);
  }
  const out = tmp.path('out.qcow2');
  const p = await platterInProcess(['convert', '--object', clientObj(), '-O', 'qcow2', tlsImage(qs), out]);
  assert.equal(p.status, 0, p.stderr);
  assert.equal(run('qemu-img', ['compare', '-U', img, out]).status, 0);
});

test('a plain client is refused by a TLS-only server with qemu-img\'s words (both servers, both clients)', { skip: SKIP }, async () => {
  for (const s of ['p.sock', 'q.sock']) {
    const uri = `nbd+unix:///exp?socket=${tmp.path(s)}`;
    const q = run('qemu-img', ['info', uri]);
    const p = await platterInProcess(['info', uri]);
    assert.equal(q.status, 1);
    assert.equal(p.status, 1);
    assert.match(q.stderr, /TLS negotiation required before option 7 \(go\)\nDid you forget a valid tls-creds\?\nserver reported: Option 0x7 not permitted before TLS\n$/);
    assert.equal(p.stderr, q.stderr.replace(/^qemu-img: /, 'platter: '), s);
  }
  // And a TLS client with credentials of the wrong endpoint is refused before connecting.
  for (const obj of [`tls-creds-x509,id=tls0,dir=${srvDir},endpoint=server`, `tls-creds-x509,id=tls0,dir=${cliDir},endpoint=server`, `tls-creds-x509,id=tls0,dir=${tmp.path('none')},endpoint=client`]) {
    const p = await platterInProcess(['info', '--object', obj, tlsImage(tmp.path('p.sock'))]);
    const q = run('qemu-img', ['info', '--object', obj, tlsImage(tmp.path('p.sock'))]);
    assert.equal(p.status, 1);
    assert.equal(q.status, 1);
    assert.match(q.stderr, /Expected TLS credentials for a client endpoint|Unable to access credentials/);
    assert.equal(p.stderr, q.stderr.replace(/^qemu-img: /, 'platter: '), obj);
  }
});

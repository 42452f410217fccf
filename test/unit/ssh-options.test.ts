// The ssh protocol's option forms and host key rules (QEMU 7.2 block/ssh.c, libssh 0.10's
// known_hosts matching), without a server: ssh-qemu.test.ts proves the same against qemu-img and
// a real sshd; these pin the corners a server run does not reach.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { parseSshUri, refreshedFilename, sshLocation } from '../../core/protocols/ssh/options.ts';
import { checkHostKey, fingerprintMatches, hostFieldMatches, keyType, knownHostsName } from '../../core/protocols/ssh/hostkey.ts';
import { tempDir } from '../helpers/qemu.ts';

/** An ssh-ed25519 public key blob (RFC 8709: string "ssh-ed25519", string key). */
function ed25519Blob(seed = randomBytes(32)): Buffer {
  const name = Buffer.from('ssh-ed25519');
  const out = Buffer.alloc(4 + name.length + 4 + 32);
  out.writeUInt32BE(name.length, 0);
  name.copy(out, 4);
  out.writeUInt32BE(32, 4 + name.length);
  seed.copy(out, 8 + name.length);
  return out;
}

test('ssh:// URIs give QEMU parse_uri options: user, server.host, server.port (22 by default), path, host_key_check', () => {
  assert.deepEqual(parseSshUri('ssh://alice@example.org:2222/srv/disk.qcow2?host_key_check=md5:00:11&other=1'), {
    user: 'alice',
    server: { host: 'example.org', port: '2222' },
    path: '/srv/disk.qcow2',
    host_key_check: 'md5:00:11',
  });
  assert.deepEqual(parseSshUri('ssh://h/p'), { server: { host: 'h', port: '22' }, path: '/p' });
  assert.deepEqual(parseSshUri('ssh://[::1]:23/p'), { server: { host: '::1', port: '23' }, path: '/p' });
  assert.throws(() => parseSshUri('ssh:///p'), /^BlockError: missing hostname in URI$/);
  assert.throws(() => parseSshUri('ssh://h'), /^BlockError: missing remote path in URI$/);
  // A port that is not a number: QEMU's URI parser gives up, and 'server' is then missing.
  assert.deepEqual(parseSshUri('ssh://h:abc/p'), {});
  assert.throws(() => sshLocation({}), /Parameter 'server' is missing/);
});

test('legacy properties and the QAPI form give one location, checked in QEMU\'s order and words', () => {
  assert.deepEqual(sshLocation({ host: 'h', path: '/p', host_key_check: 'sha256:aa' }), {
    host: 'h',
    port: '22',
    path: '/p',
    hostKeyCheck: { mode: 'hash', type: 'sha256', hash: 'aa' },
    legacyHostKeyCheck: 'sha256:aa',
  });
  assert.deepEqual(sshLocation({ server: { host: 'h', port: '2' }, path: '/p', user: 'u', 'host-key-check': { mode: 'none' } }), { host: 'h', port: '2', path: '/p', user: 'u', hostKeyCheck: { mode: 'none' } });
  assert.deepEqual(sshLocation({ server: { host: 'h', port: '2' }, path: '/p' }).hostKeyCheck, { mode: 'known_hosts' });
  assert.throws(() => sshLocation({ port: '2', path: '/p' }), /^BlockError: port may not be used without host$/);
  assert.throws(() => sshLocation({ host: 'h', port: 'x', path: '/p' }), /^BlockError: Parameter 'port' expects a number$/);
  assert.throws(() => sshLocation({ host: 'h', path: '/p', host_key_check: 'maybe' }), /^BlockError: unknown host_key_check setting \(maybe\)$/);
  assert.throws(() => sshLocation({ server: { host: 'h' }, path: '/p' }), /^BlockError: Parameter 'server.port' is missing$/);
  assert.throws(() => sshLocation({ server: { host: 'h', port: '2' } }), /^BlockError: Parameter 'path' is missing$/);
  assert.throws(() => sshLocation({ server: { host: 'h', port: '2' }, path: '/p', 'host-key-check': { mode: 'hash' } }), /^BlockError: Parameter 'host-key-check.type' is missing$/);
  assert.throws(() => sshLocation({ server: { host: 'h', port: '2' }, path: '/p', 'host-key-check': { mode: 'hash', type: 'sha1' } }), /^BlockError: Parameter 'host-key-check.hash' is missing$/);
  assert.throws(() => sshLocation({ server: { host: 'h', port: '2' }, path: '/p', 'host-key-check': { mode: 'x' } }), /^BlockError: Parameter 'mode' does not accept value 'x'$/);
  assert.throws(() => sshLocation({ server: { host: 'h', port: '2' }, path: '/p', foo: '1' }), /^BlockError: Parameter 'foo' is unexpected$/);
  // The node's name (ssh_refresh_filename): always user and port, legacy host_key_check as given.
  assert.equal(refreshedFilename(sshLocation({ host: 'h', path: '/p', host_key_check: 'no' }), 'root'), 'ssh://root@h:22/p?host_key_check=no');
  assert.equal(refreshedFilename(sshLocation({ server: { host: 'h', port: '7' }, path: '/p', 'host-key-check': { mode: 'none' } }), 'u'), 'ssh://u@h:7/p');
});

test('fingerprints compare as QEMU compares them: hex digits of every byte, colons anywhere between bytes, nothing more', () => {
  const hash = Buffer.from('0aff10', 'hex');
  for (const ok of ['0aff10', '0A:FF:10', '0a::ff10', ':0aff10']) assert.ok(fingerprintMatches(hash, ok), ok);
  for (const bad of ['0aff1', '0aff1000', '0aff10:', '0a:f:f10', '0aff11', '', 'zz']) assert.ok(!fingerprintMatches(hash, bad), bad);
});

test('known_hosts: hashed names, [host]:port, wildcards and negation; OK, changed, another type, unknown', () => {
  const t = tempDir('platter-ssh-kh-');
  try {
    const key = ed25519Blob();
    const other = ed25519Blob();
    assert.equal(keyType(key), 'ssh-ed25519');
    const name = knownHostsName('10.0.0.5', 2222);
    assert.equal(name, '[10.0.0.5]:2222');
    assert.equal(knownHostsName('h', 22), 'h');
    const salt = randomBytes(20);
    const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
    assert.ok(hostFieldMatches(hashed, name));
    assert.ok(!hostFieldMatches(hashed, '10.0.0.5'));
    assert.ok(hostFieldMatches('a,[10.0.0.*]:2222', name));
    assert.ok(!hostFieldMatches('[10.0.0.*]:2222,![10.0.0.5]:2222', name));
    const kh = t.path('known_hosts');
    const server = { host: '10.0.0.5', port: 2222 };
    const line = (field: string, blob: Buffer, type = 'ssh-ed25519') => `${field} ${type} ${blob.toString('base64')}\n`;
    writeFileSync(kh, line(hashed, key));
    checkHostKey(key, { mode: 'known_hosts' }, server, [kh, t.path('absent')]);
    writeFileSync(kh, line('10.0.0.5', key)); // port 22's name only
    assert.throws(() => checkHostKey(key, { mode: 'known_hosts' }, server, [kh]), /^BlockError: no host key was found in known_hosts$/);
    writeFileSync(kh, line(name, other));
    const fp = `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
    assert.throws(() => checkHostKey(key, { mode: 'known_hosts' }, server, [kh]), new RegExp(`^BlockError: host key \\(ssh-ed25519 key with fingerprint ${fp.replace(/[+/]/g, '\\$&')}\\) does not match the one in known_hosts; this may be a possible attack$`));
    // A changed key is reported even when an entry of another type comes first.
    const rsaLike = Buffer.concat([Buffer.from([0, 0, 0, 7]), Buffer.from('ssh-rsa'), randomBytes(16)]);
    writeFileSync(kh, line(name, rsaLike, 'ssh-rsa'));
    assert.throws(() => checkHostKey(key, { mode: 'known_hosts' }, server, [kh]), /^BlockError: host key for this server not found, another type exists$/);
    writeFileSync(kh, line(name, rsaLike, 'ssh-rsa') + line(name, other));
    assert.throws(() => checkHostKey(key, { mode: 'known_hosts' }, server, [kh]), /does not match the one in known_hosts/);
    // Marker lines are not host keys.
    writeFileSync(kh, `@revoked ${line(name, key)}`);
    assert.throws(() => checkHostKey(key, { mode: 'known_hosts' }, server, [kh]), /no host key was found/);
    // Hash mode and none.
    const md5 = createHash('md5').update(key).digest('hex');
    checkHostKey(key, { mode: 'hash', type: 'md5', hash: md5 }, server, []);
    assert.throws(() => checkHostKey(key, { mode: 'hash', type: 'md5', hash: '00' }, server, []), new RegExp(`^BlockError: remote host ssh-ed25519 key fingerprint 'md5:${md5}' does not match host_key_check 'md5:00'$`));
    checkHostKey(key, { mode: 'none' }, server, []);
  } finally {
    t.cleanup();
  }
});

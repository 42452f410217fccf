// Secrets: QEMU's --object secret syntax, and that clear() wipes the bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { SecretStore } from '../../core/block/secrets.ts';
import { tempDir } from '../helpers/qemu.ts';

test('--object secret accepts data=, file= and format=base64', () => {
  const t = tempDir();
  try {
    const s = new SecretStore();
    s.addFromObjectArgument('secret,id=sec0,data=hunter2');
    writeFileSync(t.path('pw'), 'from-file');
    s.addFromObjectArgument(`secret,id=sec1,file=${t.path('pw')}`);
    s.addFromObjectArgument(`secret,id=sec2,data=${Buffer.from('b64!').toString('base64')},format=base64`);
    assert.equal(s.get('sec0').toString(), 'hunter2');
    assert.equal(s.get('sec1').toString(), 'from-file');
    assert.equal(s.get('sec2').toString(), 'b64!');
  } finally {
    t.cleanup();
  }
});

test('bad --object arguments are refused by name, without echoing the data', () => {
  const s = new SecretStore();
  assert.throws(() => s.addFromObjectArgument('tls-creds,id=x'), /not supported/);
  assert.throws(() => s.addFromObjectArgument('secret,data=abc'), /'id' is missing/);
  assert.throws(() => s.addFromObjectArgument('secret,id=a,data=x,file=/y'), /mutually exclusive/);
  s.addFromObjectArgument('secret,id=a,data=topsecret');
  assert.throws(() => s.addFromObjectArgument('secret,id=a,data=topsecret'), (e: unknown) => !String((e as Error).message).includes('topsecret'));
  assert.throws(() => s.get('nope'), /No secret with id 'nope'/);
});

test('clear() zeroes the stored bytes', () => {
  const s = new SecretStore();
  s.add('k', 'passphrase');
  const buf = s.get('k');
  s.clear();
  assert.ok(buf.every((b) => b === 0));
  assert.equal(s.has('k'), false);
});

test('a passphrase must be UTF-8 text, as QEMU requires of every encryption secret', () => {
  const s = new SecretStore();
  s.add('bad', Buffer.from([0x3a, 0x3c, 0x3b, 0xff]));
  s.add('good', 'pässwört');
  assert.throws(() => s.passphrase('bad'), /^Error: Data from secret bad is not valid UTF-8$|Data from secret bad is not valid UTF-8/);
  assert.equal(s.passphrase('good').toString('utf8'), 'pässwört');
  assert.deepEqual([...s.get('bad')], [0x3a, 0x3c, 0x3b, 0xff]); // raw access is unchanged
});

// luks images against cryptsetup 2.6 (the LUKS reference implementation): headers Platter
// writes pass `cryptsetup luksDump` and `cryptsetup luksOpen --test-passphrase` (and the wrong
// passphrase is rejected); headers `cryptsetup luksFormat --type luks1` writes are unlocked by
// Platter, which reads their payload as `qemu-img convert` does; key slots Platter changes are
// honoured by cryptsetup and the other way round; LUKS2 is refused as QEMU 7.2 refuses it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { SKIP_NO_FIXTURES, SKIP_NO_QEMU, fixture, fixtureById, have, md5, qemuImg, run, runOk } from '../helpers/qemu.ts';
import { openImage, probeFormat } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { parseOptions } from '../../core/block/options-schema.ts';
import { luksDriver } from '../../core/formats/luks/index.ts';
import { luksInteropContext } from '../helpers/luks.ts';

const SKIP_NO_CRYPTSETUP = have('cryptsetup') ? SKIP_NO_QEMU : 'cryptsetup not installed (apt-get install cryptsetup-bin)';
const PASS = 'Cryptsetup-Interop-Pass-51e2';
const PASS2 = 'Cryptsetup-Second-Pass-0c7a';
const { tmp, pool, seen, secrets, open, openFixture, assertNoPassphraseSeen } = luksInteropContext('platter-luks-cs-', PASS, PASS2);

/** `cryptsetup luksOpen --test-passphrase --key-file -`: exit status 0 when the passphrase opens a slot. */
const testPassphrase = (f: string, pass: string) => run('cryptsetup', ['luksOpen', '--test-passphrase', '--key-file', '-', f], { input: pass }).status;

test('a luks image Platter creates passes cryptsetup luksDump and luksOpen --test-passphrase; a wrong passphrase is rejected', { skip: SKIP_NO_CRYPTSETUP }, async () => {
  for (const [opts, mode, bits, hash] of [
    ['', 'xts-plain64', 512, 'sha256'],
    [',cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv,hash-alg=sha1', 'cbc-essiv:sha256', 128, 'sha1'],
  ] as const) {
    const f = tmp.path(`p${bits}.luks`);
    await createImage({ format: 'luks', filename: f, size: 1 << 20, options: `key-secret=s0,iter-time=10${opts}`, secrets: secrets(), workers: pool });
    const dump = runOk('cryptsetup', ['luksDump', f]);
    assert.match(dump, /Version:\s+1\n/);
    assert.match(dump, /Cipher name:\s+aes\n/);
    assert.match(dump, new RegExp(`Cipher mode:\\s+${mode.replace(/[:]/g, '\\$&')}\\n`));
    assert.match(dump, new RegExp(`Hash spec:\\s+${hash}\\n`));
    assert.match(dump, new RegExp(`MK bits:\\s+${bits}\\n`));
    assert.match(dump, /Key Slot 0: ENABLED/);
    assert.match(dump, /Key Slot 1: DISABLED/);
    assert.equal(testPassphrase(f, PASS), 0, 'cryptsetup accepts the passphrase');
    assert.notEqual(testPassphrase(f, 'wrong passphrase'), 0, 'cryptsetup rejects another one');
    await assert.rejects(open(f, 's1'), (e: Error) => {
      seen.push(e.message, JSON.stringify(e), String(e.stack));
      return /Invalid password, cannot unlock any keyslot/.test(e.message);
    });
    const n = await open(f);
    seen.push(JSON.stringify(await n.impl.info!()));
    await n.close();
  }
});

test('a header from cryptsetup luksFormat --type luks1 is unlocked by Platter; its payload reads as qemu-img convert decrypts it, and Platter writes read back in qemu-io', { skip: SKIP_NO_CRYPTSETUP }, async () => {
  const f = tmp.path('cs.luks');
  writeFileSync(f, Buffer.alloc(3 << 20));
  runOk('cryptsetup', ['luksFormat', '-q', '--type', 'luks1', '--batch-mode', '--cipher', 'aes-cbc-essiv:sha256', '--key-size', '256', '--hash', 'sha1', '--pbkdf-force-iterations', '1000', '--key-file', '-', f], { input: PASS });
  const raw = tmp.path('cs.raw');
  const spec = `driver=luks,file.filename=${f},key-secret=s0`;
  qemuImg('convert', '--object', `secret,id=s0,data=${PASS}`, '--image-opts', spec, '-O', 'raw', raw);
  const n = await open(f, 's0', false);
  try {
    assert.equal(n.size, (3 << 20) - 4096 * 512, 'payload after cryptsetup\'s 1 MiB-aligned offset (4096 sectors)');
    assert.equal(md5(await n.read(0, n.size)), md5(readFileSync(raw)));
    const info = (await n.impl.info!()).formatSpecific!.data;
    seen.push(JSON.stringify(info));
    assert.equal(info['cipher-alg'], 'aes-256');
    assert.equal(info['cipher-mode'], 'cbc');
    assert.equal(info['ivgen-alg'], 'essiv');
    assert.equal(info['ivgen-hash-alg'], 'sha256');
    assert.equal(info['hash-alg'], 'sha1');
    await n.write(8192, Buffer.alloc(8192, 0xe1));
  } finally {
    await n.close();
  }
  const out = runOk('qemu-io', ['--object', `secret,id=s0,data=${PASS}`, '--image-opts', spec, '-c', 'read -P 0xe1 8k 8k']);
  assert.match(out, /read 8192\/8192 bytes/);
});

test('fixture luks1-cryptsetup.luks (cryptsetup header, QEMU-written payload): Platter reads the raw md5', { skip: SKIP_NO_FIXTURES }, async () => {
  const facts = fixtureById('generated/luks1-cryptsetup.luks');
  const f = fixture('generated/luks1-cryptsetup.luks', tmp.dir);
  const n = await openFixture(f);
  try {
    assert.equal(n.size, facts.virtual_size);
    assert.equal(md5(await n.read(0, n.size)), facts.raw_md5);
    assert.deepEqual((await n.impl.info!()).formatSpecific, facts.qemu_info['format-specific']);
  } finally {
    await n.close();
  }
});

test('key slots Platter adds and erases are honoured by cryptsetup, and a key cryptsetup luksAddKey adds opens in Platter', { skip: SKIP_NO_CRYPTSETUP }, async () => {
  const f = tmp.path('slots.luks');
  await createImage({ format: 'luks', filename: f, size: 256 * 1024, options: 'key-secret=s0,iter-time=10', secrets: secrets(), workers: pool });
  const n = await open(f, 's0', false);
  const ctx = { secrets: secrets(), workers: pool, warn: (m: string) => seen.push(m), force: false };
  try {
    await n.impl.amend!(parseOptions(luksDriver.amendOptions!, 'state=active,new-secret=s1,keyslot=2,iter-time=10'), ctx);
    await n.impl.amend!(parseOptions(luksDriver.amendOptions!, 'state=inactive,old-secret=s0'), ctx);
  } finally {
    await n.close();
  }
  const dump = runOk('cryptsetup', ['luksDump', f]);
  assert.match(dump, /Key Slot 0: DISABLED/);
  assert.match(dump, /Key Slot 2: ENABLED/);
  assert.equal(testPassphrase(f, PASS2), 0);
  assert.notEqual(testPassphrase(f, PASS), 0);
  // cryptsetup adds the first passphrase back (in slot 0); Platter opens with it.
  const keyFile = tmp.path('key2');
  writeFileSync(keyFile, PASS2);
  runOk('cryptsetup', ['luksAddKey', '-q', '--batch-mode', '--pbkdf-force-iterations', '1000', '--key-file', keyFile, f, '-'], { input: PASS });
  const m = await open(f, 's0');
  await m.close();
});

test('LUKS2 (cryptsetup luksFormat default) is refused with QEMU 7.2\'s words and not probed as luks', { skip: SKIP_NO_FIXTURES }, async () => {
  const facts = fixtureById('generated/luks2-cryptsetup.luks');
  const f = fixture('generated/luks2-cryptsetup.luks');
  await assert.rejects(openFixture(f), (e: Error) => {
    seen.push(e.message);
    assert.match(e.message, /LUKS version 2 is not supported/);
    assert.ok(facts.qemu_error.includes('LUKS version 2 is not supported'));
    return true;
  });
  const raw = await openImage(f, { format: 'raw', readOnly: true, workers: pool });
  try {
    assert.notEqual((await probeFormat(raw.file!, f)).driver.name, 'luks');
  } finally {
    await raw.close();
  }
});

test('no output, error or info of these tests contains a passphrase', () => {
  assert.ok(seen.length >= 3, 'outputs were collected');
  assertNoPassphraseSeen();
});

// LUKS1 volumes over an in-memory store: create + unlock, the wrong passphrase refused with
// QEMU's message, key-slot management with qemu-img amend's rules, info in qemu-img's shape,
// and the legacy qcow AES key rule.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { WorkerPool } from '../../core/workers/pool.ts';
import { createLuksVolume, openLuksVolume, readLuksHeader, type LuksIo } from '../../core/crypto/luks-volume.ts';
import { qcowAesKey } from '../../core/crypto/qcow-aes.ts';
import { slotIterations } from '../../core/crypto/pbkdf2.ts';

const pool = new WorkerPool(2);
after(() => pool.close());

const PW = Buffer.from('unit-passphrase');

/** A byte store in memory (zeros past what was written). */
function memIo(size: number): LuksIo & { buf: Buffer } {
  const buf = Buffer.alloc(size);
  return {
    buf,
    size: () => buf.length,
    read: async (o, l) => {
      const out = Buffer.alloc(l);
      buf.copy(out, 0, o, Math.min(buf.length, o + l));
      return out;
    },
    write: async (o, d) => {
      if (o + d.length > buf.length) throw new Error('write past the end of the test store');
      d.copy(buf, o);
    },
  };
}

test('a created volume unlocks with its passphrase and the payload round-trips', async () => {
  const io = memIo(3 << 20);
  const v = await createLuksVolume(io, { passphrase: PW, iterTimeMs: 1 }, pool);
  assert.equal(v.payloadOffset, 4040 * 512, 'aes-256-xts layout as QEMU writes it');
  const data = randomBytes(64 * 1024);
  const enc = await v.cipher.encrypt(7, data);
  v.close();
  const w = await openLuksVolume(io, PW, pool);
  assert.deepEqual(await w.cipher.decrypt(7, enc), data);
  w.close();
  await assert.rejects(w.cipher.decrypt(7, enc), /closed/);
});

test('the wrong passphrase is refused with "Invalid password, cannot unlock any keyslot"', async () => {
  const io = memIo(3 << 20);
  (await createLuksVolume(io, { passphrase: PW, iterTimeMs: 1 }, pool)).close();
  const before = Buffer.from(io.buf);
  await assert.rejects(openLuksVolume(io, Buffer.from('not it'), pool), (e: Error) => e.message === 'Invalid password, cannot unlock any keyslot');
  assert.deepEqual(io.buf, before, 'nothing written');
});

test('key slots: add, refuse overwriting an active slot, erase by password, refuse erasing the last one', async () => {
  const io = memIo(2 << 20);
  const v = await createLuksVolume(io, { passphrase: PW, cipherAlg: 'aes-128', cipherMode: 'cbc', ivgenAlg: 'essiv', iterTimeMs: 1 }, pool);
  assert.equal(await v.addKeySlot({ newPassphrase: Buffer.from('second'), iterTimeMs: 1 }), 1);
  await assert.rejects(v.addKeySlot({ newPassphrase: Buffer.from('x'), keyslot: 0, iterTimeMs: 1 }), /Refusing to overwrite active keyslot 0/);
  await assert.rejects(v.addKeySlot({ newPassphrase: Buffer.from('x'), keyslot: 8 }), /Invalid keyslot 8 specified, must be between 0 and 7/);
  await assert.rejects(v.eraseKeySlots({ oldPassphrase: Buffer.from('nope') }), /No keyslots match given \(old\) password/);
  assert.deepEqual(await v.eraseKeySlots({ oldPassphrase: PW }), [0]);
  await assert.rejects(v.eraseKeySlots({ keyslot: 1 }), /only active keyslot 1/);
  await assert.rejects(v.eraseKeySlots({ keyslot: 0 }), /already erased/);
  await assert.rejects(v.eraseKeySlots({}), /either explicit keyslot index or the password/);
  v.close();
  await assert.rejects(openLuksVolume(io, PW, pool), /Invalid password/);
  const w = await openLuksVolume(io, Buffer.from('second'), pool);
  assert.deepEqual(w.activeSlots(), [1]);
  w.close();
});

test('info lists algorithms, slots and offsets as qemu-img info does, and no key material', async () => {
  const io = memIo(2 << 20);
  const v = await createLuksVolume(io, { passphrase: PW, cipherAlg: 'aes-128', cipherMode: 'cbc', ivgenAlg: 'essiv', hashAlg: 'sha1', iterTimeMs: 1 }, pool);
  const info = v.info();
  v.close();
  assert.deepEqual(Object.keys(info), ['ivgen-alg', 'hash-alg', 'cipher-alg', 'uuid', 'ivgen-hash-alg', 'cipher-mode', 'slots', 'payload-offset', 'master-key-iters']);
  assert.equal(info['cipher-alg'], 'aes-128');
  assert.equal(info['ivgen-hash-alg'], 'sha256');
  assert.equal(info['payload-offset'], 1032 * 512);
  const slots = info['slots'] as Record<string, unknown>[];
  assert.deepEqual(Object.keys(slots[0]!), ['active', 'iters', 'key-offset', 'stripes']);
  assert.deepEqual(slots[1], { active: false, 'key-offset': (8 + 128) * 512 });
  const { header } = await readLuksHeader(io);
  assert.equal(header.cipherMode, 'cbc-essiv:sha256');
});

test('qcow AES key: the passphrase cut to 16 bytes or zero padded, stopping at a NUL', () => {
  assert.deepEqual(qcowAesKey(Buffer.from('abc')), Buffer.concat([Buffer.from('abc'), Buffer.alloc(13)]));
  assert.deepEqual(qcowAesKey(Buffer.from('0123456789abcdefXYZ')), Buffer.from('0123456789abcdef'));
  assert.deepEqual(qcowAesKey(Buffer.from('ab\0cd')), Buffer.concat([Buffer.from('ab'), Buffer.alloc(14)]));
});

test('valid LUKS ciphers node:crypto lacks (twofish, serpent, cast5) are refused by name, before anything is written', async () => {
  for (const cipherAlg of ['twofish-256', 'serpent-128', 'cast5-128']) {
    const io = memIo(3 << 20);
    await assert.rejects(createLuksVolume(io, { passphrase: PW, cipherAlg, iterTimeMs: 1 }, pool), new RegExp(`Cipher '${cipherAlg.split('-')[0]}' is not supported`));
    assert.ok(io.buf.every((b) => b === 0), 'nothing written');
  }
  await assert.rejects(createLuksVolume(memIo(1 << 20), { passphrase: PW, cipherAlg: 'aes-512' }, pool), /does not accept value 'aes-512'/);
});

test('iter-time scales measured PBKDF2 speed, never below 1000 iterations nor above the open limit', async () => {
  const small = await slotIterations(pool, 'sha256', 32, 1);
  const big = await slotIterations(pool, 'sha256', 32, 200);
  assert.ok(small >= 1000);
  assert.ok(big > small, `200 ms gives more iterations (${big}) than 1 ms (${small})`);
  await assert.rejects(slotIterations(pool, 'sha256', 32, 86_400_000), /exceed Platter's limit/);
});

// qcow2 encryption metadata from disk and from the user is checked before use: a malformed full
// disk encryption header pointer (extension 0x0537be77) is refused with a clear message and no
// write; encrypt.* create options are checked as qemu-img checks them (secret required, luks
// options only with luks, luks not for qcow v1, unknown algorithms refused).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tempDir } from '../helpers/qemu.ts';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { SecretStore } from '../../core/block/secrets.ts';
import { WorkerPool } from '../../core/workers/pool.ts';
import { cryptoCreateParams, decodeCryptoExt, encodeCryptoExt, keySecretOption } from '../../core/formats/qcow2/encryption.ts';

const tmp = tempDir('platter-qcow2-enc-unit-');
const pool = new WorkerPool(2);
after(async () => {
  await pool.close();
  tmp.cleanup();
});
const CS = 65536;
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

test('decodeCryptoExt refuses missing, short, unaligned, header-overlapping and out-of-file pointers', () => {
  assert.throws(() => decodeCryptoExt(undefined, CS, 1 << 22, {}), /Missing header extension for crypto header/);
  assert.throws(() => decodeCryptoExt(Buffer.alloc(8), CS, 1 << 22, {}), /Invalid crypto header extension size: 8 bytes, expected 16/);
  assert.throws(() => decodeCryptoExt(encodeCryptoExt(CS + 512, 4096), CS, 1 << 22, {}), /not aligned to the cluster size/);
  assert.throws(() => decodeCryptoExt(encodeCryptoExt(0, 4096), CS, 1 << 22, {}), /overlaps the qcow2 header/);
  assert.throws(() => decodeCryptoExt(encodeCryptoExt(4 * CS, 1 << 22), CS, 1 << 22, {}), /lies outside the image/);
  assert.throws(() => decodeCryptoExt(encodeCryptoExt(4 * CS, 0), CS, 1 << 22, {}), /lies outside the image/);
  const huge = Buffer.alloc(16, 0xff);
  assert.throws(() => decodeCryptoExt(huge, CS, 1 << 22, {}), /out of range/);
  assert.deepEqual(decodeCryptoExt(encodeCryptoExt(4 * CS, 2068480), CS, 1 << 22, {}), { offset: 4 * CS, length: 2068480 });
});

test('encrypt.* create options are checked as qemu-img checks them', () => {
  assert.equal(cryptoCreateParams({}, 'qcow2').method, 0);
  assert.throws(() => cryptoCreateParams({ 'encrypt.format': 'luks' }, 'qcow2'), /Parameter 'encrypt.key-secret' is required for cipher/);
  assert.throws(() => cryptoCreateParams({ 'encrypt.format': 'luks', 'encrypt.key-secret': 's', 'encrypt.cipher-alg': 'rot13' }, 'qcow2'));
  assert.throws(() => cryptoCreateParams({ 'encrypt.format': 'aes', 'encrypt.key-secret': 's', 'encrypt.cipher-mode': 'xts' }, 'qcow2'), /encrypt.cipher-mode/);
  assert.throws(() => cryptoCreateParams({ 'encrypt.format': 'luks', 'encrypt.key-secret': 's' }, 'qcow'), /does not accept value 'luks'/);
  assert.throws(() => cryptoCreateParams({ encryption: true, 'encrypt.format': 'luks', 'encrypt.key-secret': 's' }, 'qcow2'), /incompatible/);
  assert.equal(cryptoCreateParams({ encryption: true, 'encrypt.key-secret': 's' }, 'qcow2').method, 1);
  assert.equal(cryptoCreateParams({ 'encrypt.format': 'luks', 'encrypt.key-secret': 's', 'encrypt.iter-time': 10 }, 'qcow2').method, 2);
  assert.equal(keySecretOption({ encrypt: { 'key-secret': 'a' } }), 'a');
  assert.equal(keySecretOption({ 'encrypt.key-secret': 'b' }), 'b');
  assert.equal(keySecretOption({}), undefined);
});

test('an image whose crypto header pointer leaves the file is refused at open, and the file is not written', async () => {
  const f = tmp.path('bad.qcow2');
  const s = new SecretStore();
  s.add('s0', 'pw');
  await createImage({ format: 'qcow2', filename: f, size: 1 << 20, options: 'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10', secrets: s, workers: pool });
  const buf = readFileSync(f);
  const at = buf.indexOf(Buffer.from([0x05, 0x37, 0xbe, 0x77]));
  assert.ok(at > 0, 'extension present');
  buf.writeBigUInt64BE(BigInt(buf.length) * 4n, at + 16); // length past the end of the file
  writeFileSync(f, buf);
  const before = md5(buf);
  await assert.rejects(openImage({ driver: 'qcow2', file: { filename: f }, encrypt: { 'key-secret': 's0' } }, { secrets: s, workers: pool }), /Crypto header .* lies outside the image/);
  assert.equal(md5(readFileSync(f)), before);
});

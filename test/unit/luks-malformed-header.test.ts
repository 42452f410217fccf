// Malformed LUKS1 headers: every broken rule of validate.ts is refused at open with a message
// naming what was found, quickly (iterations of 2^32-1 must not start a PBKDF2 that never ends),
// and the file is left byte-for-byte as it was.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tempDir } from '../helpers/qemu.ts';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { SecretStore } from '../../core/block/secrets.ts';
import { WorkerPool } from '../../core/workers/pool.ts';
import { luksDriver } from '../../core/formats/luks/index.ts';

const PASS = 'malformed-test-pass';
const tmp = tempDir('platter-luks-bad-');
const pool = new WorkerPool(2);
let good: Buffer;

/** phdr field offsets (LUKS1 spec 2.4) and key-slot record layout (2.5). */
const OFF = { version: 6, cipherName: 8, cipherMode: 40, hashSpec: 72, payloadOffset: 104, keyBytes: 108, mkIters: 164 };
const slot = (i: number, field: 'active' | 'iters' | 'keyOffset' | 'stripes') => 208 + i * 48 + { active: 0, iters: 4, keyOffset: 40, stripes: 44 }[field];

function secrets(): SecretStore {
  const s = new SecretStore();
  s.add('s0', PASS);
  return s;
}

before(async () => {
  const f = tmp.path('good.luks');
  await createImage({ format: 'luks', filename: f, size: 64 * 1024, options: 'key-secret=s0,cipher-alg=aes-128,cipher-mode=cbc,iter-time=1', secrets: secrets(), workers: pool });
  good = readFileSync(f);
});
after(async () => {
  await pool.close();
  tmp.cleanup();
});

const name = (s: string, n: number) => {
  const b = Buffer.alloc(32);
  b.write(s, 'latin1');
  return (buf: Buffer) => b.copy(buf, n);
};
const u32 = (off: number, v: number) => (buf: Buffer) => buf.writeUInt32BE(v, off);

const cases: { what: string; edit: (b: Buffer) => void; error: RegExp; size?: number }[] = [
  { what: 'bad magic', edit: (b) => b.write('XUKS', 0, 'latin1'), error: /Volume is not in LUKS format/ },
  { what: 'version 2', edit: (b) => b.writeUInt16BE(2, OFF.version), error: /LUKS version 2 is not supported/ },
  { what: 'version 7', edit: (b) => b.writeUInt16BE(7, OFF.version), error: /LUKS version 7 is not supported/ },
  { what: 'unknown cipher', edit: name('blowfish', OFF.cipherName), error: /Cipher 'blowfish' not supported/ },
  { what: 'twofish (valid LUKS, not in node:crypto)', edit: name('twofish', OFF.cipherName), error: /Cipher 'twofish' is not supported/ },
  { what: 'unknown cipher mode', edit: name('xyz-plain64', OFF.cipherMode), error: /Cipher mode xyz not supported/ },
  { what: 'mode without IV generator', edit: name('cbc', OFF.cipherMode), error: /Unexpected cipher mode string format cbc/ },
  { what: 'unknown IV generator', edit: name('cbc-benbi', OFF.cipherMode), error: /IV generator benbi not supported/ },
  { what: 'essiv without hash', edit: name('cbc-essiv', OFF.cipherMode), error: /Missing IV generator hash specification/ },
  { what: 'unknown hash', edit: name('whirlpool', OFF.hashSpec), error: /Hash algorithm whirlpool not supported/ },
  { what: 'key bytes 0', edit: u32(OFF.keyBytes, 0), error: /master key length 0 bytes is invalid/ },
  { what: 'key bytes 65', edit: u32(OFF.keyBytes, 65), error: /master key length 65 bytes is invalid/ },
  { what: 'key bytes 20', edit: u32(OFF.keyBytes, 20), error: /aes with key size 20 bytes not supported/ },
  { what: 'mk digest iterations 0', edit: u32(OFF.mkIters, 0), error: /digest iterations 0 out of range/ },
  { what: 'mk digest iterations 2^32-1', edit: u32(OFF.mkIters, 0xffffffff), error: /digest iterations 4294967295 out of range/ },
  { what: 'slot iterations 2^32-1', edit: u32(slot(0, 'iters'), 0xffffffff), error: /Keyslot 0 iterations 4294967295 out of range/ },
  { what: 'slot iterations 0', edit: u32(slot(0, 'iters'), 0), error: /Keyslot 0 iterations 0 out of range/ },
  { what: 'stripes 0', edit: u32(slot(3, 'stripes'), 0), error: /Keyslot 3 is corrupted \(stripes == 0\)/ },
  { what: 'stripes 2^32-1', edit: u32(slot(0, 'stripes'), 0xffffffff), error: /Keyslot 0 is corrupted \(stripes 4294967295 > 65536\)/ },
  { what: 'slot state neither active nor inactive', edit: u32(slot(2, 'active'), 0x12345678), error: /Keyslot 2 state \(active\/disable\) is corrupted/ },
  { what: 'key material inside the header', edit: u32(slot(0, 'keyOffset'), 0), error: /Keyslot 0 is overlapping with the LUKS header/ },
  { what: 'two slots sharing key material', edit: (b) => b.writeUInt32BE(b.readUInt32BE(slot(4, 'keyOffset')), slot(5, 'keyOffset')), error: /Keyslots 4 and 5 are overlapping in the header/ },
  { what: 'key material in the payload', edit: u32(slot(7, 'keyOffset'), 1030), error: /Keyslot 7 is overlapping with the encrypted payload/ },
  { what: 'payload offset 0', edit: u32(OFF.payloadOffset, 0), error: /payload offset 0 overlaps the LUKS header/ },
  { what: 'payload offset past the end of the file', edit: u32(OFF.payloadOffset, 0xffffffff), error: /payload offset 2199023255040 is beyond the end of the file/ },
  { what: 'truncated header', edit: () => {}, size: 300, error: /LUKS header is truncated: 300 bytes/ },
  { what: 'damaged key material', edit: (b) => (b[8 * 512 + 100]! ^= 0xff), error: /Invalid password, cannot unlock any keyslot/ },
];

for (const c of cases) {
  test(`refuses a LUKS header with ${c.what}, quickly, and leaves the file unchanged`, async () => {
    const bytes = Buffer.from(good.subarray(0, c.size ?? good.length));
    c.edit(bytes);
    const f = tmp.path(`bad-${c.what.replace(/\W+/g, '_')}.luks`);
    writeFileSync(f, bytes);
    const sum = createHash('sha256').update(bytes).digest('hex');
    const t0 = Date.now();
    await assert.rejects(openImage({ driver: 'luks', file: { filename: f }, 'key-secret': 's0' }, { secrets: secrets(), workers: pool }), (e: Error) => {
      assert.match(e.message, c.error);
      assert.ok(!e.message.includes(PASS), 'the passphrase never appears in errors');
      return true;
    });
    assert.ok(Date.now() - t0 < 20_000, 'refused without a long key derivation');
    assert.equal(createHash('sha256').update(readFileSync(f)).digest('hex'), sum, 'file unchanged');
  });
}

test('probing: LUKS1 magic scores 100, LUKS2 or anything else 0 (QEMU probes LUKS2 as raw)', () => {
  assert.equal(luksDriver.probe!(good.subarray(0, 512), 'x'), 100);
  const v2 = Buffer.from(good.subarray(0, 512));
  v2.writeUInt16BE(2, OFF.version);
  assert.equal(luksDriver.probe!(v2, 'x'), 0);
  assert.equal(luksDriver.probe!(Buffer.alloc(512), 'x'), 0);
});

// The crypto API the qcow2 driver calls, checked against files QEMU wrote: a LUKS header inside a
// qcow2 image (encrypt.format=luks, fixture made by qemu-img/qemu-io) unlocks through
// openLuksVolume over a LuksIo that maps the header's clusters, and its data clusters decrypt
// with IV = HOST offset / 512 (QEMU's qcow2 uses the physical offset for LUKS); legacy qcow2
// AES (`qemu-img create -o encrypt.format=aes` + `qemu-io write`) decrypts with IV = GUEST sector.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { SKIP_NO_FIXTURES, SKIP_NO_QEMU, fixture, qemuImg, qemuIo, tempDir } from '../helpers/qemu.ts';
import { WorkerPool } from '../../core/workers/pool.ts';
import { openLuksVolume, type LuksIo } from '../../core/crypto/luks-volume.ts';
import { openQcowAesCipher } from '../../core/crypto/qcow-aes.ts';

const tmp = tempDir('platter-luks-api-');
const pool = new WorkerPool(2);
after(async () => {
  await pool.close();
  tmp.cleanup();
});

/** qcow2 header extension "Full disk encryption header pointer" (qcow2 spec). */
const QCOW2_EXT_CRYPTO_HEADER = 0x0537be77;
const L2_OFFSET_MASK = 0x00fffffffffffe00n;

/** Host offset of the cluster holding guest offset 0 (L1[0] -> L2[0]), and the crypto header. */
function qcow2Layout(f: Buffer): { luksOffset: number; luksLength: number; guest0Host: number } {
  const headerLength = f.readUInt32BE(100);
  let luksOffset = 0;
  let luksLength = 0;
  for (let off = headerLength; ; ) {
    const type = f.readUInt32BE(off);
    const len = f.readUInt32BE(off + 4);
    if (type === 0) break;
    if (type === QCOW2_EXT_CRYPTO_HEADER) {
      luksOffset = Number(f.readBigUInt64BE(off + 8));
      luksLength = Number(f.readBigUInt64BE(off + 16));
    }
    off += 8 + Math.ceil(len / 8) * 8;
  }
  const l1 = Number(f.readBigUInt64BE(40));
  const l2 = Number(f.readBigUInt64BE(l1) & L2_OFFSET_MASK);
  return { luksOffset, luksLength, guest0Host: Number(f.readBigUInt64BE(l2) & L2_OFFSET_MASK) };
}

test('qcow2 encrypt.format=luks (fixture by qemu-img): openLuksVolume over the header clusters unlocks it, data decrypts with IV = host offset / 512', { skip: SKIP_NO_FIXTURES }, async () => {
  const f = readFileSync(fixture('generated/qcow2-luks.qcow2', tmp.dir));
  const { luksOffset, luksLength, guest0Host } = qcow2Layout(f);
  assert.ok(luksOffset > 0 && luksLength > 0, 'crypto header extension present');
  const io: LuksIo = {
    size: () => luksLength,
    read: async (o, l) => Buffer.from(f.subarray(luksOffset + o, luksOffset + o + l)),
    write: async () => assert.fail('unlocking never writes'),
  };
  await assert.rejects(openLuksVolume(io, Buffer.from('not the passphrase'), pool), /Invalid password/);
  const v = await openLuksVolume(io, Buffer.from('platter-fixture'), pool);
  try {
    const cluster = f.subarray(guest0Host, guest0Host + 65536);
    const plain = await v.cipher.decrypt(guest0Host / 512, cluster);
    assert.ok(plain.every((b) => b === 0x11), 'std4m: 0x11 at guest [0, 64 KiB)');
    assert.ok(!(await v.cipher.decrypt(0, cluster.subarray(0, 512))).every((b) => b === 0x11), 'the guest sector is not the IV');
    // Encrypting the plaintext again gives QEMU's bytes back.
    assert.deepEqual(await v.cipher.encrypt(guest0Host / 512, plain), Buffer.from(cluster));
  } finally {
    v.close();
  }
});

test('legacy qcow2 AES (qemu-img create -o encrypt.format=aes, qemu-io write): openQcowAesCipher decrypts with IV = guest sector', { skip: SKIP_NO_QEMU }, async () => {
  const img = tmp.path('aes.qcow2');
  const obj = ['--object', 'secret,id=s0,data=legacy-pass'];
  qemuImg('create', '-q', '-f', 'qcow2', ...obj, '-o', 'encrypt.format=aes,encrypt.key-secret=s0', img, '1M');
  qemuIo(...obj, '--image-opts', `driver=qcow2,file.filename=${img},encrypt.key-secret=s0`, '-c', 'write -P 0x5a 64k 64k');
  const f = readFileSync(img);
  const cipher = openQcowAesCipher(Buffer.from('legacy-pass'), pool);
  try {
    const hits: number[] = [];
    for (let host = 0; host + 65536 <= f.length; host += 65536) {
      const plain = await cipher.decrypt(65536 / 512, f.subarray(host, host + 65536));
      if (plain.every((b) => b === 0x5a)) hits.push(host);
    }
    assert.equal(hits.length, 1, 'exactly one cluster holds the guest data at 64 KiB');
  } finally {
    cipher.close();
  }
});

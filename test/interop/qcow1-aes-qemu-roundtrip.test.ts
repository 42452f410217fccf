// qcow (version 1) with legacy AES (crypt_method 1; `qemu-img create -f qcow -o
// encrypt.format=aes`) against QEMU 7.2: what `qemu-io` writes reads back through Platter; an
// image Platter creates and writes (in place, allocating, partial clusters, write-zeroes) reads
// back identically under `qemu-img compare`; compression is refused as qemu-img refuses it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { SKIP_NO_QEMU, qemuImg, qemuIo, run, tempDir } from '../helpers/qemu.ts';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { SecretStore } from '../../core/block/secrets.ts';
import { WorkerPool } from '../../core/workers/pool.ts';
import type { BlockNode } from '../../core/block/node.ts';

const PASS = 'Qcow1-Aes-Pass-71aa';
const tmp = tempDir('platter-qcow1-aes-');
const pool = new WorkerPool(2);
after(async () => {
  await pool.close();
  tmp.cleanup();
});

const obj = ['--object', `secret,id=s0,data=${PASS}`];
const spec = (f: string) => `driver=qcow,file.filename=${f},encrypt.key-secret=s0`;
function secrets(): SecretStore {
  const s = new SecretStore();
  s.add('s0', PASS);
  return s;
}
function open(f: string, readOnly = true, warnings: string[] = []): Promise<BlockNode> {
  return openImage({ driver: 'qcow', file: { filename: f }, encrypt: { 'key-secret': 's0' } }, { secrets: secrets(), workers: pool, readOnly, warn: (m) => warnings.push(m) });
}

test('qemu-img create -f qcow -o encrypt.format=aes + qemu-io write read back identically by Platter (qemu-img convert -O raw)', { skip: SKIP_NO_QEMU }, async () => {
  const f = tmp.path('q.qcow');
  qemuImg('create', '-q', ...obj, '-f', 'qcow', '-o', 'encrypt.format=aes,encrypt.key-secret=s0', f, '1M');
  qemuIo(...obj, '--image-opts', spec(f), '-c', 'write -P 0xab 0 64k', '-c', 'write -P 0x3d 70144 1024');
  const raw = tmp.path('q.raw');
  qemuImg('convert', ...obj, '--image-opts', spec(f), '-O', 'raw', raw);
  const warnings: string[] = [];
  const n = await open(f, true, warnings);
  try {
    assert.ok((await n.read(0, n.size)).equals(readFileSync(raw)));
    assert.equal((await n.impl.info!()).encrypted, true);
  } finally {
    await n.close();
  }
  assert.deepEqual(warnings, []); // qemu-img 7.2 opens AES images without a warning
});

test('a qcow image Platter creates with encryption=on and writes reads back identically under qemu-img compare; compression is refused', { skip: SKIP_NO_QEMU }, async () => {
  const f = tmp.path('p.qcow');
  await createImage({ format: 'qcow', filename: f, size: 1 << 20, options: 'encryption=on,encrypt.key-secret=s0', secrets: secrets(), workers: pool, warn: () => {} });
  const data = randomBytes(1 << 20);
  const n = await open(f, false);
  try {
    await n.write(0, data.subarray(0, 100000));
    await n.write(4096, data.subarray(4096, 9000)); // in place
    await n.write(600000, data.subarray(600000, 600100)); // partial new cluster
    await n.writeZeroes(8192, 1024, {});
    await assert.rejects(n.impl.writeCompressed!(65536 * 4, Buffer.alloc(4096, 1)), /Compression and encryption not supported at the same time/);
  } finally {
    await n.close();
  }
  const want = Buffer.alloc(1 << 20);
  data.copy(want, 0, 0, 100000);
  data.copy(want, 600000, 600000, 600100);
  want.fill(0, 8192, 9216);
  const raw = tmp.path('p.raw');
  writeFileSync(raw, want);
  const cmp = run('qemu-img', ['compare', ...obj, '--image-opts', `driver=raw,file.filename=${raw}`, spec(f)]);
  assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
  qemuIo(...obj, '--image-opts', spec(f), '-c', 'read -P 0 8192 1024');
});

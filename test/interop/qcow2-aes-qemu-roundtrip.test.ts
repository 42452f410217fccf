// Legacy qcow2 AES (crypt_method 1, `qemu-img create -o encrypt.format=aes` / encryption=on)
// against QEMU 7.2: data `qemu-io` writes reads back through Platter; an image Platter creates and
// writes reads back identically under `qemu-img compare` and passes `qemu-img check`; every use
// gives no warning (as qemu-img 7.2); info says encrypt.format=aes like qemu-img info.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { SKIP_NO_QEMU, qemuImg, qemuImgJson, qemuIo, run, tempDir } from '../helpers/qemu.ts';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { SecretStore } from '../../core/block/secrets.ts';
import { WorkerPool } from '../../core/workers/pool.ts';
import type { BlockNode } from '../../core/block/node.ts';

const PASS = 'Qcow2-Aes-Pass-0c9d';
const tmp = tempDir('platter-qcow2-aes-');
const pool = new WorkerPool(2);
after(async () => {
  await pool.close();
  tmp.cleanup();
});

const obj = ['--object', `secret,id=s0,data=${PASS}`];
const spec = (f: string) => `driver=qcow2,file.filename=${f},encrypt.key-secret=s0`;
function secrets(): SecretStore {
  const s = new SecretStore();
  s.add('s0', PASS);
  return s;
}
function open(f: string, warnings: string[], readOnly = true): Promise<BlockNode> {
  return openImage({ driver: 'qcow2', file: { filename: f }, encrypt: { 'key-secret': 's0' } }, { secrets: secrets(), workers: pool, readOnly, warn: (m) => warnings.push(m) });
}

test('qemu-img create -o encrypt.format=aes + qemu-io write read back identically by Platter, with the deprecation warning', { skip: SKIP_NO_QEMU }, async () => {
  const f = tmp.path('q.qcow2');
  qemuImg('create', '-q', ...obj, '-f', 'qcow2', '-o', 'encrypt.format=aes,encrypt.key-secret=s0', f, '1M');
  qemuIo(...obj, '--image-opts', spec(f), '-c', 'write -P 0xab 0 64k', '-c', 'write -P 0x3d 70000 1000');
  const raw = tmp.path('q.raw');
  qemuImg('convert', ...obj, '--image-opts', spec(f), '-O', 'raw', raw);
  const warnings: string[] = [];
  const n = await open(f, warnings);
  try {
    assert.ok((await n.read(0, n.size)).equals(readFileSync(raw)));
    const info = await n.impl.info!();
    assert.equal(info.encrypted, true);
    assert.deepEqual(info.formatSpecific!.data['encrypt'], qemuImgJson('info', f)['format-specific'].data.encrypt);
  } finally {
    await n.close();
  }
  assert.deepEqual(warnings, []); // qemu-img 7.2 opens AES images without a warning
});

for (const how of ['encrypt.format=aes', 'encryption=on']) {
  test(`an image Platter creates with -o ${how} and writes reads back identically under qemu-img compare and passes qemu-img check`, { skip: SKIP_NO_QEMU }, async () => {
    const f = tmp.path(`p-${how}.qcow2`);
    const warnings: string[] = [];
    await createImage({ format: 'qcow2', filename: f, size: 1 << 20, options: `${how},encrypt.key-secret=s0`, secrets: secrets(), workers: pool, warn: (m) => warnings.push(m) });
    const data = randomBytes(1 << 20);
    const n = await open(f, warnings, false);
    try {
      await Promise.all([n.write(0, data.subarray(0, 200000)), n.write(512 * 1000, data.subarray(512 * 1000, 512 * 1001 + 100))]);
    } finally {
      await n.close();
    }
    const want = Buffer.alloc(1 << 20);
    data.copy(want, 0, 0, 200000);
    data.copy(want, 512 * 1000, 512 * 1000, 512 * 1001 + 100);
    const raw = tmp.path(`p-${how}.raw`);
    writeFileSync(raw, want);
    const cmp = run('qemu-img', ['compare', ...obj, '--image-opts', `driver=raw,file.filename=${raw}`, spec(f)]);
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
    const chk = run('qemu-img', ['check', ...obj, '--image-opts', spec(f)]);
    assert.equal(chk.status, 0, chk.stdout + chk.stderr);
    assert.equal(qemuImgJson('info', f)['format-specific'].data.encrypt.format, 'aes');
    assert.deepEqual(warnings, []); // qemu-img 7.2 creates AES images without a warning
    assert.ok(!readFileSync(f).includes(Buffer.from(PASS)));
  });
}

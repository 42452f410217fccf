// qcow2 with encrypt.format=luks against QEMU 7.2: the qemu-img fixture reads with its raw md5;
// images made by `qemu-img create -o encrypt.format=luks` and written by `qemu-io --image-opts
// ...,encrypt.key-secret=` read back through Platter (aes-256-xts-plain64, aes-128-cbc-essiv);
// images Platter creates and writes read back through `qemu-io read -P`, `qemu-img compare` and
// pass `qemu-img check`; `qemu-img info` and Platter's info agree on the encrypt data; a wrong
// passphrase and a missing secret fail with QEMU's words; compression is refused; the CLI
// `platter convert` raw -> qcow2+luks -> raw is identical under `qemu-img compare`; no output
// carries the passphrase.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { SKIP_NO_FIXTURES, SKIP_NO_QEMU, fixture, fixtureById, md5, platter, qemuImg, qemuImgJson, qemuIo, run, tempDir } from '../helpers/qemu.ts';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { SecretStore } from '../../core/block/secrets.ts';
import { WorkerPool } from '../../core/workers/pool.ts';
import type { BlockNode } from '../../core/block/node.ts';

const PASS = 'Qcow2-Luks-Interop-Pass-5e21';
const tmp = tempDir('platter-qcow2-luks-');
const pool = new WorkerPool(2);
/** Everything Platter printed or returned here (scanned for the passphrase at the end). */
const seen: string[] = [];
after(async () => {
  await pool.close();
  tmp.cleanup();
});

const obj = (data = PASS) => ['--object', `secret,id=s0,data=${data}`];
const spec = (f: string) => `driver=qcow2,file.filename=${f},encrypt.key-secret=s0`;

function secrets(pass = PASS): SecretStore {
  const s = new SecretStore();
  s.add('s0', pass);
  return s;
}

function open(f: string, o: { readOnly?: boolean; pass?: string; noSecret?: boolean } = {}): Promise<BlockNode> {
  const tree = o.noSecret ? { driver: 'qcow2', file: { filename: f } } : { driver: 'qcow2', file: { filename: f }, encrypt: { 'key-secret': 's0' } };
  return openImage(tree, { secrets: secrets(o.pass), workers: pool, readOnly: o.readOnly ?? true, warn: (m) => seen.push(m) });
}

test('fixture generated/qcow2-luks.qcow2 (qemu-img + qemu-io) reads through Platter with its raw md5; info matches qemu-img info', { skip: SKIP_NO_FIXTURES }, async () => {
  const facts = fixtureById('generated/qcow2-luks.qcow2');
  const f = fixture('generated/qcow2-luks.qcow2', tmp.dir);
  const n = await openImage({ driver: 'qcow2', file: { filename: f }, encrypt: { 'key-secret': 's0' } }, { secrets: secrets('platter-fixture'), workers: pool, readOnly: true });
  try {
    assert.equal(md5(await n.read(0, n.size)), facts.raw_md5 ?? '46a4da6094732f35200ff1df5a0a2df2');
    const info = await n.impl.info!();
    assert.equal(info.encrypted, true);
    const q = qemuImgJson('info', f);
    assert.deepEqual(info.formatSpecific!.data['encrypt'], q['format-specific'].data.encrypt);
  } finally {
    await n.close();
  }
});

const COMBOS = [
  { name: 'aes-256-xts-plain64', opts: '' },
  { name: 'aes-128-cbc-essiv', opts: ',encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha256,encrypt.hash-alg=sha1' },
];

for (const c of COMBOS) {
  test(`${c.name}: qemu-img create -o encrypt.format=luks + qemu-io write read back identically by Platter`, { skip: SKIP_NO_QEMU }, async () => {
    const f = tmp.path(`q-${c.name}.qcow2`);
    qemuImg('create', '-q', ...obj(), '-f', 'qcow2', '-o', `encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10${c.opts}`, f, '1M');
    qemuIo(...obj(), '--image-opts', spec(f), '-c', 'write -P 0xab 0 64k', '-c', 'write -P 0x5c 700k 4k', '-c', 'write -P 0x3d 5120 1024');
    const n = await open(f);
    try {
      const all = await n.read(0, n.size);
      const want = Buffer.alloc(1 << 20);
      want.fill(0xab, 0, 65536);
      want.fill(0x3d, 5120, 6144);
      want.fill(0x5c, 700 * 1024, 704 * 1024);
      assert.ok(all.equals(want), 'guest content as qemu-io wrote it, zeros elsewhere');
    } finally {
      await n.close();
    }
  });

  test(`${c.name}: an image Platter creates and writes reads back through qemu-io, qemu-img compare and passes qemu-img check`, { skip: SKIP_NO_QEMU }, async () => {
    const f = tmp.path(`p-${c.name}.qcow2`);
    await createImage({ format: 'qcow2', filename: f, size: 2 << 20, options: `encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10${c.opts}`, secrets: secrets(), workers: pool, warn: (m) => seen.push(m) });
    const data = randomBytes(2 << 20);
    const n = await open(f, { readOnly: false });
    try {
      // Concurrent writes of different sizes, some unaligned to clusters (sector aligned by the generic layer).
      await Promise.all([n.write(0, data.subarray(0, 65536)), n.write(65536 + 512, data.subarray(65536 + 512, 300000)), n.write(1 << 20, data.subarray(1 << 20, (1 << 20) + 4096)), n.write(1500001, data.subarray(1500001, 1500001 + 777))]);
      await n.writeZeroes(300000, 1000, {});
    } finally {
      await n.close();
    }
    const want = Buffer.alloc(2 << 20);
    data.copy(want, 0, 0, 65536);
    data.copy(want, 65536 + 512, 65536 + 512, 300000);
    data.copy(want, 1 << 20, 1 << 20, (1 << 20) + 4096);
    data.copy(want, 1500001, 1500001, 1500001 + 777);
    const raw = tmp.path(`p-${c.name}.raw`);
    writeFileSync(raw, want);
    const cmp = run('qemu-img', ['compare', ...obj(), '--image-opts', `driver=raw,file.filename=${raw}`, spec(f)]);
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
    qemuIo(...obj(), '--image-opts', spec(f), '-c', `read -P 0 300000 1000`);
    const chk = run('qemu-img', ['check', ...obj(), '--image-opts', spec(f)]);
    assert.equal(chk.status, 0, chk.stdout + chk.stderr);
    assert.match(chk.stdout, /No errors were found/);
    const q = qemuImgJson('info', f);
    assert.equal(q.encrypted, true);
    assert.equal(q['format-specific'].data.encrypt.format, 'luks');
    const mine = await open(f, { noSecret: true });
    try {
      assert.deepEqual((await mine.impl.info!()).formatSpecific!.data['encrypt'], q['format-specific'].data.encrypt);
    } finally {
      await mine.close();
    }
  });
}

test('wrong passphrase: "Invalid password, cannot unlock any keyslot" and the file is untouched; no secret: info works, I/O needs encrypt.key-secret', { skip: SKIP_NO_QEMU }, async () => {
  const f = tmp.path('pw.qcow2');
  qemuImg('create', '-q', ...obj(), '-f', 'qcow2', '-o', 'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10', f, '1M');
  qemuIo(...obj(), '--image-opts', spec(f), '-c', 'write -P 0x42 0 4k');
  const before = md5(readFileSync(f));
  await assert.rejects(open(f, { pass: 'not-the-passphrase', readOnly: false }), /Invalid password, cannot unlock any keyslot/);
  assert.equal(md5(readFileSync(f)), before);
  const n = await open(f, { noSecret: true });
  try {
    assert.equal((await n.impl.info!()).encrypted, true);
    await assert.rejects(n.read(0, 512), /Parameter 'encrypt.key-secret' is required for cipher/);
  } finally {
    await n.close();
  }
});

test('compressed writes into qcow2+luks are refused as qemu-img convert -c refuses them', { skip: SKIP_NO_QEMU }, async () => {
  const f = tmp.path('c.qcow2');
  await createImage({ format: 'qcow2', filename: f, size: 1 << 20, options: 'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10', secrets: secrets(), workers: pool });
  const n = await open(f, { readOnly: false });
  try {
    await assert.rejects(n.impl.writeCompressed!(0, Buffer.alloc(65536, 1)), /Compression and encryption not supported at the same time/);
  } finally {
    await n.close();
  }
  const src = tmp.path('c.raw');
  writeFileSync(src, Buffer.alloc(1 << 20, 0x61));
  const r = platter(['convert', '-c', ...obj(), '-O', 'qcow2', '-o', 'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10', src, tmp.path('c2.qcow2')]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /Compression and encryption not supported at the same time/);
});

test('platter convert raw -> qcow2+luks -> raw through the CLI is identical under qemu-img compare; no output holds the passphrase', { skip: SKIP_NO_QEMU }, async () => {
  const raw = tmp.path('src.raw');
  const data = Buffer.alloc(3 << 20);
  randomBytes(1 << 20).copy(data, 65536);
  data.fill(0x77, 2 << 20, (2 << 20) + 8192);
  writeFileSync(raw, data);
  const enc = tmp.path('cli.qcow2');
  const r1 = platter(['convert', ...obj(), '-O', 'qcow2', '-o', 'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10', raw, enc]);
  assert.equal(r1.status, 0, r1.stderr);
  const c1 = run('qemu-img', ['compare', ...obj(), '--image-opts', `driver=raw,file.filename=${raw}`, spec(enc)]);
  assert.equal(c1.status, 0, c1.stdout + c1.stderr);
  const back = tmp.path('back.raw');
  const r2 = platter(['convert', ...obj(), '-O', 'raw', '--image-opts', spec(enc), back]);
  assert.equal(r2.status, 0, r2.stderr);
  assert.ok(readFileSync(back).equals(data));
  seen.push(r1.stdout, r1.stderr, r2.stdout, r2.stderr);
  for (const s of seen) assert.ok(!s.includes(PASS), 'passphrase printed');
  for (const name of readdirSync(tmp.dir)) {
    if (name.endsWith('.qcow2')) assert.ok(!readFileSync(tmp.path(name)).includes(Buffer.from(PASS)), `passphrase stored in ${name}`);
  }
});

test('amend -o encrypt.state=active/inactive (key slots) on qcow2+luks: qemu-io opens with the new passphrase and no longer with the erased one', { skip: SKIP_NO_QEMU }, async () => {
  const f = tmp.path('amend.qcow2');
  qemuImg('create', '-q', ...obj(), '-f', 'qcow2', '-o', 'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10', f, '1M');
  qemuIo(...obj(), '--image-opts', spec(f), '-c', 'write -P 0x42 0 4k');
  const PASS2 = 'Second-Slot-Pass-44f0';
  const two = ['--object', `secret,id=s0,data=${PASS}`, '--object', `secret,id=s1,data=${PASS2}`];
  const r1 = platter(['amend', ...two, '--image-opts', spec(f), '-o', 'encrypt.state=active,encrypt.new-secret=s1,encrypt.iter-time=10']);
  assert.equal(r1.status, 0, r1.stderr);
  qemuIo('--object', `secret,id=s0,data=${PASS2}`, '--image-opts', spec(f), '-c', 'read -P 0x42 0 4k');
  const r2 = platter(['amend', ...two, '--image-opts', `driver=qcow2,file.filename=${f},encrypt.key-secret=s1`, '-o', 'encrypt.state=inactive,encrypt.old-secret=s0']);
  assert.equal(r2.status, 0, r2.stderr);
  const old = run('qemu-io', [...obj(), '--image-opts', spec(f), '-c', 'read 0 512']);
  assert.notEqual(old.status, 0);
  assert.match(old.stderr + old.stdout, /Invalid password, cannot unlock any keyslot/);
  const slots = qemuImgJson('info', f)['format-specific'].data.encrypt.slots as { active: boolean }[];
  assert.deepEqual(slots.map((s) => s.active).slice(0, 2), [false, true]);
  for (const s of [r1.stdout, r1.stderr, r2.stdout, r2.stderr]) assert.ok(!s.includes(PASS) && !s.includes(PASS2));
});

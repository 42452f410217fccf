// luks images against QEMU 7.2: images made by `qemu-img create -f luks` and written by `qemu-io`
// read back through Platter exactly as `qemu-img convert -O raw` decrypts them (including the
// never-written sectors, which decrypt to key-dependent noise); images Platter creates and writes
// read back through `qemu-io` and `qemu-img compare`; `qemu-img info` shows the same luks data;
// key slots Platter adds or erases are honoured by qemu-io; the passphrase never leaks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { SKIP_NO_FIXTURES, SKIP_NO_QEMU, fixture, fixtureById, md5, qemuImg, qemuImgJson, qemuIo, run } from '../helpers/qemu.ts';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { parseOptions } from '../../core/block/options-schema.ts';
import { luksDriver } from '../../core/formats/luks/index.ts';
import { luksInteropContext } from '../helpers/luks.ts';

const PASS = 'Qemu-Interop-Passphrase-7d41';
const PASS2 = 'Second-Slot-Passphrase-93b0';
const { tmp, pool, seen, secrets, open, openFixture, assertNoPassphraseSeen } = luksInteropContext('platter-luks-qemu-', PASS, PASS2);

const obj = (id: string, data: string) => ['--object', `secret,id=${id},data=${data}`];
const spec = (f: string, id = 's0') => `driver=luks,file.filename=${f},key-secret=${id}`;

async function platterInfo(f: string): Promise<Record<string, unknown>> {
  const n = await openImage({ driver: 'luks', file: { filename: f } }, { workers: pool, readOnly: true });
  try {
    const info = await n.impl.info!();
    seen.push(JSON.stringify(info));
    return info.formatSpecific!.data;
  } finally {
    await n.close();
  }
}

const COMBOS = [
  { name: 'aes-256-xts-plain64 (defaults)', opts: '' },
  { name: 'aes-128-cbc-essiv', opts: ',cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv,hash-alg=sha1' },
  { name: 'aes-192-xts-plain', opts: ',cipher-alg=aes-192,cipher-mode=xts,ivgen-alg=plain,hash-alg=sha512' },
  { name: 'aes-128-ctr-plain64', opts: ',cipher-alg=aes-128,cipher-mode=ctr' },
];

for (const c of COMBOS) {
  test(`${c.name}: qemu-img create + qemu-io writes read back by Platter as qemu-img convert -O raw does`, { skip: SKIP_NO_QEMU }, async () => {
    const f = tmp.path(`q-${c.name.split(' ')[0]}.luks`);
    qemuImg('create', '-q', '-f', 'luks', ...obj('s0', PASS), '-o', `key-secret=s0,iter-time=10${c.opts}`, f, '1M');
    qemuIo(...obj('s0', PASS), '--image-opts', spec(f), '-c', 'write -P 0xab 0 64k', '-c', 'write -P 0x5c 700k 4k', '-c', 'write -P 0x3d 5000 1000');
    const raw = tmp.path(`q-${c.name.split(' ')[0]}.raw`);
    qemuImg('convert', ...obj('s0', PASS), '--image-opts', spec(f), '-O', 'raw', raw);
    const n = await open(f);
    try {
      assert.equal(n.size, 1 << 20);
      const all = await n.read(0, n.size);
      assert.equal(md5(all), md5(readFileSync(raw)), 'every byte, noise included, as QEMU decrypts it');
      assert.ok(all.subarray(5000, 6000).every((b) => b === 0x3d));
    } finally {
      await n.close();
    }
  });
}

for (const c of [COMBOS[0]!, COMBOS[1]!]) {
  test(`${c.name}: Platter creates and writes, qemu-io reads the patterns and qemu-img compare finds the images identical`, { skip: SKIP_NO_QEMU }, async () => {
    const f = tmp.path(`p-${c.name.split(' ')[0]}.luks`);
    await createImage({ format: 'luks', filename: f, size: 1 << 20, options: `key-secret=s0,iter-time=10${c.opts}`, secrets: secrets(), workers: pool });
    const content = randomBytes(1 << 20);
    const n = await open(f, 's0', false);
    try {
      // 16 concurrent 64 KiB writes, then an unaligned one (read-modify-write of two sectors).
      await Promise.all(Array.from({ length: 16 }, (_, i) => n.write(i * 65536, content.subarray(i * 65536, (i + 1) * 65536))));
      content.fill(0x3d, 5000, 6000);
      await n.write(5000, content.subarray(5000, 6000));
    } finally {
      await n.close();
    }
    const expected = tmp.path(`p-${c.name.split(' ')[0]}.raw`);
    writeFileSync(expected, content);
    const out = qemuIo(...obj('s0', PASS), '--image-opts', spec(f), '-c', 'read -P 0x3d 5000 1000');
    assert.match(out, /read 1000\/1000 bytes/);
    const cmp = run('qemu-img', ['compare', ...obj('s0', PASS), '--image-opts', spec(f), `driver=raw,file.filename=${expected}`]);
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
    assert.match(cmp.stdout, /Images are identical/);
    // qemu-img info shows what Platter shows.
    const q = qemuImgJson('info', f);
    assert.deepEqual(await platterInfo(f), q['format-specific'].data);
    assert.equal(q['virtual-size'], 1 << 20);
  });
}

test('key slots Platter adds and erases (qemu-img amend semantics) are honoured by qemu-io and qemu-img info', { skip: SKIP_NO_QEMU }, async () => {
  const f = tmp.path('amend.luks');
  await createImage({ format: 'luks', filename: f, size: 256 * 1024, options: 'key-secret=s0,iter-time=10', secrets: secrets(), workers: pool });
  const n = await open(f, 's0', false);
  const ctx = { secrets: secrets(), workers: pool, warn: (m: string) => seen.push(m), force: false };
  try {
    await n.write(0, Buffer.alloc(4096, 0x77));
    await n.impl.amend!(parseOptions(luksDriver.amendOptions!, 'state=active,new-secret=s1,iter-time=10'), ctx);
    await assert.rejects(n.impl.amend!(parseOptions(luksDriver.amendOptions!, 'state=inactive,keyslot=5'), ctx), (e: Error) => (seen.push(e.message), /already erased/.test(e.message)));
    await n.impl.amend!(parseOptions(luksDriver.amendOptions!, 'state=inactive,keyslot=0'), ctx);
    await assert.rejects(n.impl.amend!(parseOptions(luksDriver.amendOptions!, 'state=inactive,keyslot=1'), ctx), (e: Error) => (seen.push(e.message), /only active keyslot 1/.test(e.message)));
  } finally {
    await n.close();
  }
  const slots = qemuImgJson('info', f)['format-specific'].data.slots;
  assert.deepEqual(slots.map((s: { active: boolean }) => s.active), [false, true, false, false, false, false, false, false]);
  assert.match(qemuIo(...obj('s1', PASS2), '--image-opts', spec(f, 's1'), '-c', 'read -P 0x77 0 4k'), /read 4096\/4096/);
  const old = run('qemu-io', [...obj('s0', PASS), '--image-opts', spec(f), '-c', 'read 0 4k']);
  assert.notEqual(old.status, 0);
  assert.match(old.stderr + old.stdout, /Invalid password, cannot unlock any keyslot/);
  // And the other way round: a slot qemu-img amend adds opens in Platter.
  qemuImg('amend', ...obj('s1', PASS2), ...obj('s0', PASS), '--image-opts', spec(f, 's1'), '-o', 'state=active,new-secret=s0,keyslot=3,iter-time=10');
  const m = await open(f, 's0');
  try {
    assert.ok((await m.read(0, 4096)).every((b) => b === 0x77));
  } finally {
    await m.close();
  }
});

test('the wrong passphrase is refused as QEMU refuses it, and the image is left untouched', { skip: SKIP_NO_QEMU }, async () => {
  const f = tmp.path('wrong.luks');
  await createImage({ format: 'luks', filename: f, size: 256 * 1024, options: 'key-secret=s0,iter-time=10', secrets: secrets(), workers: pool });
  const before = createHash('sha256').update(readFileSync(f)).digest('hex');
  const q = run('qemu-io', [...obj('s1', PASS2), '--image-opts', spec(f, 's1'), '-c', 'read 0 512']);
  assert.match(q.stderr + q.stdout, /Invalid password, cannot unlock any keyslot/);
  await assert.rejects(open(f, 's1', false), (e: Error) => {
    seen.push(e.message, JSON.stringify(e), String(e.stack));
    return /Invalid password, cannot unlock any keyslot/.test(e.message);
  });
  await assert.rejects(openImage({ driver: 'luks', file: { filename: f } }, { workers: pool }).then((n) => n.read(0, 512).finally(() => n.close())), (e: Error) => {
    seen.push(e.message);
    return /Parameter 'key-secret' is required for cipher/.test(e.message);
  });
  assert.equal(createHash('sha256').update(readFileSync(f)).digest('hex'), before);
});

test('fixture luks1-qemu.luks: Platter reads the raw md5 and info fixtures.json records', { skip: SKIP_NO_FIXTURES }, async () => {
  const facts = fixtureById('generated/luks1-qemu.luks');
  const f = fixture('generated/luks1-qemu.luks', tmp.dir);
  const n = await openFixture(f);
  try {
    assert.equal(n.size, facts.virtual_size);
    assert.equal(md5(await n.read(0, n.size)), facts.raw_md5);
    const info = await n.impl.info!();
    assert.deepEqual(info.formatSpecific, facts.qemu_info['format-specific']);
    assert.equal(info.encrypted, true);
  } finally {
    await n.close();
  }
});

test('measure: Platter\'s required size for a luks target equals qemu-img measure -O luks --size 1G', async () => {
  // Printed by qemu-img 7.2 `measure -O luks --size 1G -o key-secret=s0[,...]` (it runs a real
  // PBKDF2 benchmark each time, too slow to repeat here).
  for (const [opts, qemuRequired] of [['', 1075810304], [',cipher-alg=aes-128,cipher-mode=cbc', 1074270208]] as const) {
    const p = await luksDriver.measure!(1 << 30, parseOptions(luksDriver.createOptions, `key-secret=s0${opts}`));
    assert.equal(p.required, qemuRequired);
    assert.equal(p.fullyAllocated, qemuRequired);
  }
  await assert.rejects(luksDriver.measure!(1 << 30, {}), /Parameter 'key-secret' is required for cipher/);
});

test('no output, error or info of these tests contains a passphrase', () => {
  assert.ok(seen.length > 5, 'outputs were collected');
  assertNoPassphraseSeen();
});

// Key slots through the API (core/api/safety/keyslots.ts, #16 item 4) on images made by qemu-img:
// a passphrase added opens the image in cryptsetup (luks format) and in qemu-img (compare with
// --object secret), change replaces the old one, and removing the last slot is refused.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { changeKeySlot, keySlotChangeInput, listKeySlots } from '../../core/api/safety/keyslots.ts';
import { defaultEnv } from '../../core/jobs/common.ts';
import { have, qemuImg, run, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';

const env = () => ({ ...defaultEnv(), warn: () => {} });

describe('LUKS key slots (amend)', { skip: SKIP_NO_QEMU }, () => {
  const tmp = tempDir('platter-keyslots-');
  after(() => tmp.cleanup());

  const change = async (i: Parameters<typeof keySlotChangeInput.parse>[0]) => {
    const input = keySlotChangeInput.parse(i);
    const e = env();
    for (const s of input.secrets) e.secrets.add(s.id, Buffer.from(s.data));
    return changeKeySlot(input, e);
  };

  test('luks: add, then cryptsetup opens the new passphrase; change; remove refuses the last', { skip: have('cryptsetup') ? false : 'cryptsetup not installed' }, async () => {
    const f = tmp.path('a.luks');
    qemuImg('create', '-q', '-f', 'luks', '--object', 'secret,id=s0,data=first pass', '-o', 'key-secret=s0,iter-time=10', f, '4M');
    const r = await change({ path: f, format: 'luks', action: 'add', iterTime: 10, secrets: [{ id: 'current', data: 'first pass' }, { id: 'new', data: 'second pass' }] });
    assert.deepEqual(r.slots.slots.filter((s) => s.active).map((s) => s.index), [0, 1]);
    assert.equal(run('cryptsetup', ['luksOpen', '--test-passphrase', '--key-file=-', f], { input: 'second pass' }).status, 0);
    assert.equal(run('cryptsetup', ['luksOpen', '--test-passphrase', '--key-file=-', f], { input: 'first pass' }).status, 0);
    await change({ path: f, format: 'luks', action: 'change', iterTime: 10, secrets: [{ id: 'current', data: 'first pass' }, { id: 'new', data: 'third pass' }] });
    assert.notEqual(run('cryptsetup', ['luksOpen', '--test-passphrase', '--key-file=-', f], { input: 'first pass' }).status, 0);
    assert.equal(run('cryptsetup', ['luksOpen', '--test-passphrase', '--key-file=-', f], { input: 'third pass' }).status, 0);
    const slots = await listKeySlots(f, env());
    assert.equal(slots.active, 2);
    await change({ path: f, format: 'luks', action: 'remove', keyslot: 1, secrets: [{ id: 'current', data: 'third pass' }] });
    const one = await listKeySlots(f, env());
    assert.equal(one.active, 1);
    const last = one.slots.find((s) => s.active)!.index;
    await assert.rejects(change({ path: f, format: 'luks', action: 'remove', keyslot: last, secrets: [{ id: 'current', data: 'third pass' }] }), /last one/);
    assert.equal(run('cryptsetup', ['luksOpen', '--test-passphrase', '--key-file=-', f], { input: 'third pass' }).status, 0);
  });

  test('qcow2 with encrypt.format=luks: a passphrase added opens it in qemu-img', async () => {
    const f = tmp.path('b.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '--object', 'secret,id=s0,data=one', '-o', 'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10', f, '4M');
    await change({ path: f, format: 'qcow2', action: 'add', iterTime: 10, secrets: [{ id: 'current', data: 'one' }, { id: 'new', data: 'two' }] });
    const cmp = run('qemu-img', ['compare', '--object', 'secret,id=a,data=one', '--object', 'secret,id=b,data=two', '--image-opts', `driver=qcow2,file.filename=${f},encrypt.key-secret=a`, `driver=qcow2,file.filename=${f},encrypt.key-secret=b`]);
    assert.equal(cmp.status, 0, cmp.stderr);
    const info = JSON.parse(qemuImg('info', '--output=json', f));
    assert.deepEqual(info['format-specific'].data.encrypt.slots.map((s: { active: boolean }) => s.active).slice(0, 3), [true, true, false]);
  });
});

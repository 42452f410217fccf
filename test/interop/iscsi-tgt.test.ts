// Interop: the iscsi protocol driver against a real target (Linux STGT's tgtd, started here on
// 127.0.0.1 with its own portal and control port, as qemu-block-drivers(7) "iSCSI LUNs" sets one
// up) with qemu-img's libiscsi driver as the second client. Proves: info and map equal
// qemu-img's byte for byte; convert onto and from a LUN (bytes equal the LUN's backing file,
// qemu-img compare equal), with and without -n, under tight burst/segment limits and unsolicited
// data; what qemu-io writes through iSCSI Platter reads; GET LBA STATUS, UNMAP and WRITE SAME(16)
// on a thin LUN; READ/WRITE(16) past 2 TiB; 4 KiB blocks; header digests; CHAP from the URL, a
// secret, the environment and an [iscsi] config section; QEMU's default initiator name;
// SendTargets; refusals (no credentials, wrong password, missing target, wrong LUN, dead portal,
// write-protected and CD LUNs written) in one line without hanging; a stopped target detected by
// NOP pings; and that no password ever reaches the output.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freePort } from '../helpers/nbd-peers.ts';
import { readFileSync, writeFileSync } from 'node:fs';
import { tempDir, have, run, platter, md5File, SKIP_NO_QEMU } from '../helpers/qemu.ts';
import { platterInProcess, qemuImg, qemuImgRaw, qemuWrite } from './harness.ts';
import { startTgtd, type Tgtd } from '../helpers/tgtd.ts';
import { IscsiSession } from '../../core/protocols/iscsi/session.ts';
import { discoverTargets, parseIscsiConfig, setIscsiConfig } from '../../core/protocols/iscsi/index.ts';
import { cdb } from '../../core/protocols/iscsi/scsi.ts';
import { openImage } from '../../core/drivers/open.ts';

const MiB = 1 << 20;
const PASSWORD = 'Pl4tter-s3cret-CHAP';
const USER = 'alice';
const DISK_IQN = 'iqn.2026-12.org.platter.test:disk';
const CHAP_IQN = 'iqn.2026-12.org.platter.test:chap';
const ACL_IQN = 'iqn.2026-12.org.platter.test:acl';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const SKIP = SKIP_NO_QEMU || (!have('tgtd') || !have('tgtadm') ? 'tgtd/tgtadm not installed (apt-get install tgt)' : !isRoot ? 'tgtd needs root' : false);


describe('iscsi protocol against tgtd, with qemu-img as the second client', { skip: SKIP }, () => {
  let t: ReturnType<typeof tempDir>;
  let tgtd: Tgtd | undefined;
  let port = 0;
  let portal = '';
  /** Every output of a run that was given the password, to prove it is never printed. */
  const outputs: string[] = [];
  const url = (lun: number, iqn = DISK_IQN, cred = '') => `iscsi://${cred}${portal}/${iqn}/${lun}`;
  const tgtadm = (...args: string[]) => tgtd!.tgtadm(...args);
  const p = async (args: string[]) => {
    const r = await platterInProcess(args);
    outputs.push(r.stdout, r.stderr);
    return r;
  };

  before(async () => {
    t = tempDir('platter-iscsi-');
    tgtd = await startTgtd();
    portal = tgtd.portal;
    port = Number(portal.slice(portal.lastIndexOf(':') + 1));
    qemuImg('create', '-f', 'raw', t.path('disk.img'), '64M');
    qemuWrite(t.path('disk.img'), 'raw', [[MiB, 64 * 1024, 0x11], [40 * MiB + 512, 4096, 0x22]]);
    writeFileSync(t.path('cd.iso'), Buffer.alloc(2 * MiB, 0x43));
    qemuImg('create', '-f', 'raw', t.path('thin.img'), '16M');
    qemuImg('create', '-f', 'raw', t.path('chap.img'), '8M');
    qemuWrite(t.path('chap.img'), 'raw', [[0, 4096, 0x33]]);
    tgtadm('--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid', '1', '-T', DISK_IQN);
    tgtadm('--lld', 'iscsi', '--mode', 'logicalunit', '--op', 'new', '--tid', '1', '--lun', '1', '-b', t.path('disk.img'));
    tgtadm('--lld', 'iscsi', '--mode', 'logicalunit', '--op', 'new', '--tid', '1', '--lun', '2', '-b', t.path('cd.iso'), '--device-type=cd');
    tgtadm('--lld', 'iscsi', '--mode', 'logicalunit', '--op', 'new', '--tid', '1', '--lun', '3', '-b', t.path('thin.img'));
    tgtadm('--lld', 'iscsi', '--mode', 'logicalunit', '--op', 'update', '--tid', '1', '--lun', '3', '--params', 'thin_provisioning=1');
    // A write-protected LUN and one of 4 KiB blocks.
    qemuImg('create', '-f', 'raw', t.path('ro.img'), '4M');
    tgtadm('--lld', 'iscsi', '--mode', 'logicalunit', '--op', 'new', '--tid', '1', '--lun', '4', '-b', t.path('ro.img'));
    tgtadm('--lld', 'iscsi', '--mode', 'logicalunit', '--op', 'update', '--tid', '1', '--lun', '4', '--params', 'readonly=1');
    qemuImg('create', '-f', 'raw', t.path('k4.img'), '8M');
    tgtadm('--lld', 'iscsi', '--mode', 'logicalunit', '--op', 'new', '--tid', '1', '--lun', '5', '-b', t.path('k4.img'), '--blocksize=4096');
    // Past 2 TiB of 512-byte blocks: LBAs need READ(16)/WRITE(16) (a sparse file).
    run('truncate', ['-s', String(2 ** 41 + 64 * MiB), t.path('huge.img')]);
    tgtadm('--lld', 'iscsi', '--mode', 'logicalunit', '--op', 'new', '--tid', '1', '--lun', '6', '-b', t.path('huge.img'));
    tgtadm('--lld', 'iscsi', '--mode', 'target', '--op', 'bind', '--tid', '1', '--initiator-address', 'ALL');
    // tgtd answers HeaderDigest=None whatever is offered unless the target allows CRC32C.
    tgtadm('--lld', 'iscsi', '--mode', 'target', '--op', 'update', '--tid', '1', '--name', 'HeaderDigest', '--value', 'CRC32C,None');
    tgtd!.addTarget('2', CHAP_IQN, t.path('chap.img'));
    // A target only QEMU's default initiator name may log in to.
    tgtadm('--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid', '3', '-T', ACL_IQN);
    tgtadm('--lld', 'iscsi', '--mode', 'logicalunit', '--op', 'new', '--tid', '3', '--lun', '1', '-b', t.path('chap.img'));
    tgtadm('--lld', 'iscsi', '--mode', 'target', '--op', 'bind', '--tid', '3', '--initiator-name', 'iqn.2008-11.org.linux-kvm');
    tgtadm('--lld', 'iscsi', '--mode', 'account', '--op', 'new', '--user', USER, '--password', PASSWORD);
    tgtadm('--lld', 'iscsi', '--mode', 'account', '--op', 'bind', '--tid', '2', '--user', USER);
    qemuImg('create', '-f', 'qcow2', t.path('src.qcow2'), '64M');
    run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 0 3M', '-c', 'write -P 0x6b 10M 1M', '-c', 'write -z 20M 1M', '-c', 'write -P 0x7c 63M 1M', t.path('src.qcow2')]);
  });

  after(async () => {
    await tgtd?.stop(['1', '2', '3']);
    t?.cleanup();
  });

  test('info (human and --output=json) equals qemu-img info for a disk LUN and a CD LUN', async () => {
    for (const lun of [1, 2, 3]) {
      const q = qemuImg('info', url(lun));
      const r = await p(['info', url(lun)]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, q);
      const qj = qemuImg('info', '--output=json', url(lun));
      const rj = await p(['info', '--output=json', url(lun)]);
      assert.equal(rj.stdout, qj);
    }
  });

  test('map --output=json and human map equal qemu-img map (all data without LBPME)', async () => {
    for (const args of [['map', '--output=json'], ['map']]) {
      const q = qemuImg(...args, url(1));
      const r = await p([...args, url(1)]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, q);
    }
  });

  test('convert onto a LUN: its backing file holds the image\'s bytes, qemu-img compare says identical', async () => {
    const r = await p(['convert', '-n', '-O', 'raw', t.path('src.qcow2'), url(1)]);
    assert.equal(r.status, 0, r.stderr);
    qemuImg('convert', '-O', 'raw', t.path('src.qcow2'), t.path('expect.raw'));
    assert.equal(md5File(t.path('disk.img')), md5File(t.path('expect.raw')));
    assert.equal(qemuImg('compare', t.path('src.qcow2'), url(1)), 'Images are identical.\n');
  });

  test('convert without -n onto a LUN (QEMU\'s simple create: the LUN must be large enough) and create -f qcow2 on a LUN', async () => {
    const r = await p(['convert', '-O', 'raw', t.path('src.qcow2'), url(1)]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(qemuImg('compare', t.path('src.qcow2'), url(1)), 'Images are identical.\n');
    // The 16 MiB LUN cannot take a 64 MiB raw image: qemu-img's words.
    const small = await p(['convert', '-O', 'raw', t.path('src.qcow2'), url(3)]);
    const q = qemuImgRaw('convert', '-O', 'raw', t.path('src.qcow2'), url(3));
    assert.equal(small.status, 1);
    assert.equal(small.stderr, q.stderr.replace('qemu-img:', 'platter:'));
    const c = await p(['create', '-f', 'qcow2', url(3), '1G']);
    assert.equal(c.status, 0, c.stderr);
    assert.equal(c.stdout, qemuImg('create', '-f', 'qcow2', url(3), '1G'));
    assert.match(qemuImg('check', url(3)), /No errors were found on the image/);
    const info = await p(['info', url(3)]);
    assert.equal(info.stdout, qemuImg('info', url(3)));
    // Leave the thin LUN as a fresh raw LUN for the tests below.
    qemuImg('create', '-f', 'raw', url(3), '16M');
  });

  test('what qemu-io writes through iSCSI, Platter reads; convert from a LUN passes qemu-img check and compare', async () => {
    run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x99 5M 70k', '-c', 'write -P 0x98 33554432 512', url(1)]);
    const r = await p(['convert', '-O', 'qcow2', url(1), t.path('from-lun.qcow2')]);
    assert.equal(r.status, 0, r.stderr);
    qemuImg('check', t.path('from-lun.qcow2'));
    assert.equal(qemuImg('compare', '-f', 'qcow2', '-F', 'raw', t.path('from-lun.qcow2'), t.path('disk.img')), 'Images are identical.\n');
    const raw = await p(['convert', '-O', 'raw', url(1), t.path('from-lun.raw')]);
    assert.equal(raw.status, 0, raw.stderr);
    assert.equal(md5File(t.path('from-lun.raw')), md5File(t.path('disk.img')));
  });

  test('writes follow the negotiated limits: unsolicited Data-Out with and without immediate data, small bursts and segments', async () => {
    const set = (name: string, value: string) => tgtadm('--lld', 'iscsi', '--mode', 'target', '--op', 'update', '--tid', '1', '--name', name, '--value', value);
    set('InitialR2T', 'No');
    set('FirstBurstLength', '16384');
    set('MaxBurstLength', '32768');
    set('MaxRecvDataSegmentLength', '4096');
    try {
      for (const immediate of ['No', 'Yes']) {
        set('ImmediateData', immediate);
        const s = await IscsiSession.open({ host: '127.0.0.1', port, initiatorName: 'iqn.2008-11.org.linux-kvm', targetName: DISK_IQN, sessionType: 'Normal', headerDigest: 'none', commandTimeoutMs: 10_000, loginTimeoutMs: 10_000 });
        assert.deepEqual({ ...s.negotiated, headerDigest: undefined }, { headerDigest: undefined, targetMaxRecv: 4096, maxBurst: 32768, firstBurst: 16384, immediateData: immediate === 'Yes', initialR2T: false });
        await s.logout();
        const src = immediate === 'No' ? t.path('src.qcow2') : t.path('from-lun.qcow2');
        const r = await p(['convert', '-n', '-O', 'raw', src, url(1)]);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(qemuImg('compare', src, t.path('disk.img')), 'Images are identical.\n');
      }
    } finally {
      set('InitialR2T', 'Yes');
      set('ImmediateData', 'Yes');
      set('FirstBurstLength', '65536');
      set('MaxBurstLength', '262144');
      set('MaxRecvDataSegmentLength', '8192');
    }
  });

  test('thin LUN (LBPME): GET LBA STATUS map equals qemu-img map after a convert with zeros and discards', async () => {
    qemuImg('create', '-f', 'qcow2', t.path('sparse.qcow2'), '16M');
    run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 1 1M 64k', '-c', 'write -P 2 9M 8k', t.path('sparse.qcow2')]);
    const r = await p(['convert', '-n', '-O', 'raw', t.path('sparse.qcow2'), url(3)]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(qemuImg('compare', t.path('sparse.qcow2'), url(3)), 'Images are identical.\n');
    const q = qemuImg('map', '--output=json', url(3));
    const m = await p(['map', '--output=json', url(3)]);
    assert.equal(m.stdout, q);
    assert.match(q, /"zero": true, "data": false/); // the target deallocated something
  });

  test('header digests: CRC32C or None as asked, and reads through either match the backing file', async () => {
    // With a list offered, tgtd picks by its own order (CRC32C first here), so only the single
    // offers have one right answer.
    const want = { crc32c: true, none: false, 'crc32c-none': undefined, 'none-crc32c': undefined } as const;
    for (const [digest, on] of Object.entries(want)) {
      const s = await IscsiSession.open({ host: '127.0.0.1', port, initiatorName: 'iqn.2008-11.org.linux-kvm', targetName: DISK_IQN, sessionType: 'Normal', headerDigest: digest as keyof typeof want, commandTimeoutMs: 10_000, loginTimeoutMs: 10_000 });
      try {
        if (on !== undefined) assert.equal(s.negotiated.headerDigest, on, digest);
        // A new session's first command meets the LUN's unit attention (power on): read again.
        let rd = await s.scsi(1, cdb.rw(false, false, 0, 128), { read: 128 * 512 });
        for (let i = 0; i < 3 && rd.status === 2; i++) rd = await s.scsi(1, cdb.rw(false, false, 0, 128), { read: 128 * 512 });
        assert.equal(rd.status, 0);
        assert.deepEqual(rd.data, readFileSync(t.path('disk.img')).subarray(0, 128 * 512));
      } finally {
        await s.logout();
      }
    }
    for (const d of ['crc32c', 'none', 'crc32c-none', 'none-crc32c']) {
      const spec = `json:{"driver":"raw","file":{"driver":"iscsi","transport":"tcp","portal":"${portal}","target":"${DISK_IQN}","lun":"1","header-digest":"${d}"}}`;
      const r = await p(['compare', spec, t.path('disk.img')]);
      assert.equal(r.stdout, 'Images are identical.\n', `${d}: ${r.stderr}`);
    }
  });

  test('CHAP from the URL, from --object secret (password-secret) and from LIBISCSI_CHAP_* reads the LUN', async () => {
    const fromUrl = await p(['compare', url(1, CHAP_IQN, `${USER}%${PASSWORD}@`), t.path('chap.img')]);
    assert.equal(fromUrl.stdout, 'Images are identical.\n', fromUrl.stderr);
    const opts = `driver=iscsi,transport=tcp,portal=${portal},target=${CHAP_IQN},lun=1,user=${USER},password-secret=sec0`;
    const fromSecret = await p(['info', '--object', `secret,id=sec0,data=${PASSWORD}`, '--image-opts', opts]);
    assert.equal(fromSecret.status, 0, fromSecret.stderr);
    assert.match(fromSecret.stdout, /virtual size: 8 MiB/);
    const env = { ...process.env, LIBISCSI_CHAP_USERNAME: USER, LIBISCSI_CHAP_PASSWORD: PASSWORD };
    const fromEnv = platter(['compare', url(1, CHAP_IQN), t.path('chap.img')], { env });
    outputs.push(fromEnv.stdout, fromEnv.stderr);
    assert.equal(fromEnv.stdout, 'Images are identical.\n', fromEnv.stderr);
    // info names the user, as qemu-img does, but not the password (qemu-img 7.2 prints it).
    const q = run('qemu-img', ['info', url(1, CHAP_IQN)], { env }).stdout;
    const i = platter(['info', url(1, CHAP_IQN)], { env });
    outputs.push(i.stdout, i.stderr);
    assert.ok(q.includes(`"password": "${PASSWORD}", `));
    assert.equal(i.stdout, q.replace(`"password": "${PASSWORD}", `, ''));
  });

  test('CHAP and the initiator name from an [iscsi "TARGET"] configuration section', async () => {
    setIscsiConfig(parseIscsiConfig(`[iscsi "${CHAP_IQN}"]\n  user = "${USER}"\n  password = "${PASSWORD}"\n  initiator-name = "iqn.2026-12.org.platter.test:initiator"\n`));
    try {
      const r = await p(['compare', url(1, CHAP_IQN), t.path('chap.img')]);
      assert.equal(r.stdout, 'Images are identical.\n', r.stderr);
    } finally {
      setIscsiConfig([]);
    }
  });

  test('a target requiring CHAP: without credentials, or with a wrong password, one clear line', async () => {
    const none = await p(['info', url(1, CHAP_IQN)]);
    assert.equal(none.status, 1);
    assert.equal(none.stderr, `platter: Could not open '${url(1, CHAP_IQN)}': iSCSI: Failed to connect to LUN : Failed to log in to target. Status: Authentication failure(513)\n`);
    assert.equal(qemuImgRaw('info', url(1, CHAP_IQN)).stderr, none.stderr.replace('platter:', 'qemu-img:'));
    const wrong = await p(['info', url(1, CHAP_IQN, `${USER}%not-${PASSWORD}@`)]);
    assert.equal(wrong.status, 1);
    assert.equal(wrong.stderr, `platter: Could not open '${url(1, CHAP_IQN, `${USER}@`)}': iSCSI: Failed to connect to LUN : Failed to log in to target. Status: Authentication failure(513)\n`);
    const noSecret = await p(['info', '--image-opts', `driver=iscsi,transport=tcp,portal=${portal},target=${CHAP_IQN},lun=1,user=${USER},password-secret=nope`]);
    assert.equal(noSecret.status, 1);
    assert.match(noSecret.stderr, /No secret with id 'nope'\n$/);
  });

  test('missing target, wrong LUN, dead portal, non-disk LUN, bad URL: one line each, quickly', async () => {
    const dead = await freePort();
    const cases: [string, RegExp][] = [
      [url(1, 'iqn.2026-12.org.platter.test:nope'), /Failed to log in to target\. Status: Target not found\(515\)$/],
      [url(7), /SENSE KEY:ILLEGAL_REQUEST\(5\) ASCQ:LOGICAL_UNIT_NOT_SUPPORTED\(0x2500\)$/],
      [`iscsi://127.0.0.1:${dead}/${DISK_IQN}/1`, /Failed to connect to 127\.0\.0\.1:\d+: Connection refused$/],
      [url(0), /LUN 0 is a storage array controller device/],
      [`iscsi://${USER}%${PASSWORD}@${portal}/${DISK_IQN}`, /Failed to parse URL : iscsi:\/\/alice@/],
    ];
    for (const [name, want] of cases) {
      const started = Date.now();
      const r = await p(['info', name]);
      assert.equal(r.status, 1, name);
      assert.equal(r.stdout, '');
      const lines = r.stderr.split('\n');
      assert.equal(lines.length, 2, r.stderr);
      assert.match(lines[0]!, want);
      assert.ok(Date.now() - started < 15_000, `${name} took ${Date.now() - started} ms`);
    }
  });

  test('a write-protected LUN is refused read-write in qemu-img\'s words; a 4 KiB-block LUN takes unaligned data', async () => {
    const w = await p(['convert', '-n', '-O', 'raw', t.path('chap.img'), url(4)]);
    assert.equal(w.status, 1);
    assert.equal(w.stderr, qemuImgRaw('convert', '-n', '-O', 'raw', t.path('chap.img'), url(4)).stderr.replace('qemu-img:', 'platter:'));
    const info = await p(['info', url(4)]);
    assert.equal(info.stdout, qemuImg('info', url(4)));
    qemuImg('create', '-f', 'qcow2', t.path('odd.qcow2'), '8M');
    run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 3 1000 3000', '-c', 'write -P 4 5M 513', t.path('odd.qcow2')]);
    const r = await p(['convert', '-n', '-O', 'raw', t.path('odd.qcow2'), url(5)]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(qemuImg('compare', t.path('odd.qcow2'), t.path('k4.img')), 'Images are identical.\n');
    for (const args of [['info'], ['map', '--output=json']]) assert.equal((await p([...args, url(5)])).stdout, qemuImg(...args, url(5)));
  });

  test('a LUN past 2 TiB: READ(16)/WRITE(16) at its end, read back by qemu-io', async () => {
    const node = await openImage(url(6), { format: 'raw' });
    try {
      assert.equal(node.size, 2 ** 41 + 64 * MiB);
      const at = node.size - 3 * MiB - 4096;
      await node.write(at, Buffer.alloc(8192, 0x5c));
      await node.flush();
      assert.deepEqual(await node.read(at - 512, 1024), Buffer.concat([Buffer.alloc(512), Buffer.alloc(512, 0x5c)]));
      assert.match(run('qemu-io', ['-f', 'raw', '-r', '-c', `read -P 0x5c ${at} 8192`, url(6)]).stdout, /read 8192\/8192 bytes/);
    } finally {
      await node.close();
    }
  });

  test('thin LUN: discard (UNMAP) and write-zeroes with unmap (WRITE SAME 16) deallocate, as qemu-img map then shows', async () => {
    qemuImg('create', '-f', 'raw', url(3), '16M'); // leaves it a raw LUN
    const node = await openImage(url(3), { format: 'raw' });
    try {
      await node.write(MiB, Buffer.alloc(256 * 1024, 0x61));
      await node.write(8 * MiB, Buffer.alloc(256 * 1024, 0x62));
      await node.flush();
      assert.match(qemuImg('map', '--output=json', url(3)), /"start": 1048576, "length": 262144, "depth": 0, "present": true, "zero": false, "data": true/);
      await node.discard(MiB, 256 * 1024);
      await node.writeZeroes(8 * MiB, 256 * 1024, { mayUnmap: true });
      await node.flush();
    } finally {
      await node.close();
    }
    const map = qemuImg('map', '--output=json', url(3));
    const extents = JSON.parse(map) as { start: number; length: number; data: boolean }[];
    for (const at of [MiB, 8 * MiB]) {
      const e = extents.find((x) => x.start <= at && at < x.start + x.length)!;
      assert.equal(e.data, false, map);
      assert.ok(e.start + e.length >= at + 256 * 1024, map);
    }
    assert.equal((await p(['map', '--output=json', url(3)])).stdout, map);
    assert.match(run('qemu-io', ['-f', 'raw', '-r', '-c', `read -P 0 ${MiB} 256k`, '-c', `read -P 0 ${8 * MiB} 256k`, url(3)]).stdout, /read 262144\/262144 bytes[\s\S]*read 262144\/262144 bytes/);
  });

  test('a connection the target drops is logged in again and the request goes on (as libiscsi reconnects)', async () => {
    const node = await openImage(url(1), { format: 'raw' });
    try {
      const before = await node.read(0, 65536);
      const sessions = [...tgtadm('--lld', 'iscsi', '--mode', 'conn', '--op', 'show', '--tid', '1').matchAll(/^Session: (\d+)/gm)].map((m) => m[1]!);
      assert.ok(sessions.length >= 1);
      for (const sid of sessions) tgtadm('--lld', 'iscsi', '--mode', 'conn', '--op', 'delete', '--tid', '1', '--sid', sid, '--cid', '0');
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(await node.read(0, 65536), before);
      await node.write(4096, Buffer.alloc(4096, 0xee));
      await node.flush();
      // It is a new session: the old ones are gone.
      const now = [...tgtadm('--lld', 'iscsi', '--mode', 'conn', '--op', 'show', '--tid', '1').matchAll(/^Session: (\d+)/gm)].map((m) => m[1]!);
      assert.ok(now.length >= 1 && now.every((sid) => !sessions.includes(sid)), `${sessions} -> ${now}`);
    } finally {
      await node.close();
    }
    assert.deepEqual(readFileSync(t.path('disk.img')).subarray(4096, 8192), Buffer.alloc(4096, 0xee));
  });

  test('a CD/DVD LUN reads like its backing file and refuses writes', async () => {
    const r = await p(['compare', url(2), t.path('cd.iso')]);
    assert.equal(r.stdout, 'Images are identical.\n', r.stderr);
    const w = await p(['convert', '-n', '-O', 'raw', t.path('chap.img'), url(2)]);
    assert.equal(w.status, 1);
    assert.match(w.stderr, /LUN 2 is a CD\/DVD device, which is read-only\n$/);
  });

  test('the initiator name: QEMU\'s default when none is given, initiator-name= otherwise', async () => {
    const ok = await p(['info', url(1, ACL_IQN)]);
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stdout, qemuImg('info', url(1, ACL_IQN)));
    const other = await p(['info', '--image-opts', `driver=iscsi,transport=tcp,portal=${portal},target=${ACL_IQN},lun=1,initiator-name=iqn.2026-12.org.platter.test:other`]);
    assert.equal(other.status, 1);
    assert.match(other.stderr, /Failed to log in to target\. Status: Target not found\(515\)\n$/);
  });

  test('SendTargets discovery lists the targets with the portal', async () => {
    const found = await discoverTargets(portal);
    const names = found.map((f) => f.name).sort();
    assert.deepEqual(names, [ACL_IQN, CHAP_IQN, DISK_IQN].sort());
    for (const f of found) assert.ok(f.addresses.some((a) => a.startsWith(`127.0.0.1:${port},`)), JSON.stringify(f));
    // tgtd lists only the targets the initiator (by name) may use.
    const other = await discoverTargets(portal, { initiatorName: 'iqn.2026-12.org.platter.test:other' });
    assert.deepEqual(other.map((f) => f.name).sort(), [CHAP_IQN, DISK_IQN].sort());
  });

  test('a target that stops answering (tgtd stopped) fails the request through the NOP pings, no hang', async () => {
    const s = await IscsiSession.open({ host: '127.0.0.1', port, initiatorName: 'iqn.2008-11.org.linux-kvm', targetName: DISK_IQN, sessionType: 'Normal', headerDigest: 'none', commandTimeoutMs: 0, loginTimeoutMs: 10_000, nopIntervalMs: 200 });
    // Pings answered while the target runs: the session stays up.
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(s.alive, true);
    process.kill(tgtd!.pid, 'SIGSTOP');
    try {
      const started = Date.now();
      await assert.rejects(s.scsi(1, cdb.testUnitReady(), {}), /NOP timeout: the target at 127\.0\.0\.1:\d+ stopped answering/);
      assert.ok(Date.now() - started < 5000);
    } finally {
      process.kill(tgtd!.pid, 'SIGCONT');
      s.close();
    }
  });

  test('the password never appears in any output above', () => {
    assert.ok(outputs.length > 10);
    for (const o of outputs) assert.ok(!o.includes(PASSWORD), `password printed in: ${o}`);
  });
});

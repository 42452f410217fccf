// The sheepdog protocol driver against a real one-node Sheepdog cluster, with the daemon's own
// CLI `dog` as the oracle (QEMU 7.2 has no sheepdog driver; QEMU 5.2's is the behaviour
// followed): what Platter creates, converts, snapshots and clones, `dog vdi list` lists and
// `dog vdi read` reads back byte for byte; what `dog vdi write` wrote, Platter reads identically.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { platterInProcess } from './harness.ts';
import { qemuImg, qemuIo, tempDir, SKIP_NO_QEMU, REPO_ROOT } from '../helpers/qemu.ts';
import { freePort, sheepdogBinaries, startSheep, vdiList, type SheepCluster } from '../helpers/sheepdog.ts';
import { openImage } from '../../core/drivers/open.ts';

const bins = sheepdogBinaries();
const SKIP = bins.skip || SKIP_NO_QEMU;
if (bins.skip) console.log(`# sheepdog tests skipped: ${bins.skip}`);

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const MiB = 1024 * 1024;

describe("sheepdog protocol vs dog (the sheepdog daemon's CLI) on a one-node cluster", { skip: SKIP }, () => {
  let c: SheepCluster;
  let tmp: ReturnType<typeof tempDir>;
  before(async () => {
    c = await startSheep(bins.dir!);
    tmp = tempDir('platter-sheepdog-');
  });
  after(async () => {
    await c?.stop();
    tmp?.cleanup();
  });

  /** Write through Platter's own driver (raw over sheepdog), as a guest would. */
  async function platterWrite(name: string, writes: [offset: number, data: Buffer][]): Promise<void> {
    const node = await openImage(name, { format: 'raw' });
    try {
      for (const [o, d] of writes) await node.write(o, d);
      await node.flush();
    } finally {
      await node.close();
    }
  }

  test('create: dog vdi list shows the vdi with the size asked', async () => {
    const r = await platterInProcess(['create', '-f', 'raw', c.uri('created'), '10M']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `Formatting '${c.uri('created')}', fmt=raw size=10485760\n`);
    const row = vdiList(c).find((v) => v.name === 'created');
    assert.ok(row, 'dog lists the new vdi');
    assert.equal(row.kind, '=');
    assert.equal(row.size, 10 * MiB);
    // Creating it again: the daemon's refusal, in one line.
    const again = await platterInProcess(['create', '-f', 'raw', c.uri('created'), '10M']);
    assert.equal(again.status, 1);
    assert.equal(again.stderr, `platter: ${c.uri('created')}: VDI exists already, created\n`);
  });

  test('create -o object_size=1M,redundancy=1: dog shows block size shift 20', async () => {
    const r = await platterInProcess(['create', '-f', 'raw', '-o', 'object_size=1M,redundancy=1', c.uri('small-objects'), '3M']);
    assert.equal(r.status, 0, r.stderr);
    const row = vdiList(c).find((v) => v.name === 'small-objects')!;
    assert.match(row.line, / 20$/);
    const bad = await platterInProcess(['create', '-f', 'raw', '-o', 'object_size=3M', c.uri('bad-objects'), '3M']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /Object size needs to be power of 2/);
    const badr = await platterInProcess(['create', '-f', 'raw', '-o', 'redundancy=3:1', c.uri('bad-red'), '3M']);
    assert.equal(badr.status, 1);
    assert.match(badr.stderr, /Invalid data strips number/);
  });

  test('create -o preallocation=full: dog counts every object used; a preallocated clone owns all its objects', async () => {
    const r = await platterInProcess(['create', '-f', 'raw', '-o', 'preallocation=full', c.uri('prealloc'), '9M']);
    assert.equal(r.status, 0, r.stderr);
    const used = (name: string) => Number(vdiList(c).find((v) => v.name === name && v.kind !== 's')!.line.split(' ')[4]);
    assert.equal(used('prealloc'), 12 * MiB);
    assert.deepEqual(c.dogOk(['vdi', 'read', 'prealloc']), Buffer.alloc(9 * MiB));
    c.dogOk(['vdi', 'write', 'prealloc', '0', '4096'], Buffer.alloc(4096, 9));
    c.dogOk(['vdi', 'snapshot', '-s', 'p', 'prealloc']);
    const cl = await platterInProcess(['create', '-o', 'preallocation=full', '-b', `${c.uri('prealloc')}#p`, c.uri('prealloc-clone')]);
    assert.equal(cl.status, 0, cl.stderr);
    assert.equal(used('prealloc-clone'), 12 * MiB);
    assert.deepEqual(c.dogOk(['vdi', 'read', 'prealloc-clone', '0', '4096']), Buffer.alloc(4096, 9));
  });

  test('convert a qemu-img image into a new vdi: dog vdi read equals the source bytes', async () => {
    const src = tmp.path('src.qcow2');
    qemuImg('create', '-f', 'qcow2', src, '9M');
    qemuIo('-f', 'qcow2', '-c', 'write -P 0x11 0 1M', '-c', 'write -P 0x22 4194000 300k', '-c', 'write -P 0x33 8M 512', src);
    const r = await platterInProcess(['convert', '-O', 'raw', '-o', 'redundancy=1,object_size=2M', src, c.uri('converted')]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(vdiList(c).find((v) => v.name === 'converted')!.line, / 21$/, 'the object size reached the daemon');
    qemuImg('convert', '-O', 'raw', src, tmp.path('src.raw'));
    const want = readFileSync(tmp.path('src.raw'));
    const got = c.dogOk(['vdi', 'read', 'converted']);
    assert.equal(got.length, 9 * MiB);
    assert.equal(md5(got), md5(want));
    // Zero ranges of the source stay unallocated objects: of the 2 MiB objects, 0, 1 and 2 (the
    // write across 4 MiB) and 4 hold data.
    const info = JSON.parse((await platterInProcess(['info', '--output=json', c.uri('converted')])).stdout);
    assert.equal(info['virtual-size'], 9 * MiB);
    assert.equal(info['actual-size'], 8 * MiB);
  });

  test('convert -O qcow2 onto a vdi: the bytes dog reads pass qemu-img check and compare', async () => {
    const src = tmp.path('q-src.qcow2');
    qemuImg('create', '-f', 'qcow2', src, '20M');
    qemuIo('-f', 'qcow2', '-c', 'write -P 0x41 0 3M', '-c', 'write -P 0x42 15M 1M', src);
    const r = await platterInProcess(['convert', '-O', 'qcow2', src, c.uri('qcow2-on-vdi')]);
    assert.equal(r.status, 0, r.stderr);
    writeFileSync(tmp.path('q-dog.qcow2'), c.dogOk(['vdi', 'read', 'qcow2-on-vdi']));
    assert.equal(spawnSync('qemu-img', ['check', tmp.path('q-dog.qcow2')]).status, 0);
    const cmp = spawnSync('qemu-img', ['compare', src, tmp.path('q-dog.qcow2')], { encoding: 'utf8' });
    assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
    const info = JSON.parse((await platterInProcess(['info', '--output=json', c.uri('qcow2-on-vdi')])).stdout);
    assert.equal(info.format, 'qcow2');
    assert.equal(info['virtual-size'], 20 * MiB);
  });

  test('read back a vdi dog wrote: bytes equal (convert from sheepdog to a file)', async () => {
    c.dogOk(['vdi', 'create', 'dogwritten', '6M']);
    const a = randomBytes(70_000);
    const b = randomBytes(4096);
    c.dogOk(['vdi', 'write', 'dogwritten', '100', String(a.length)], a);
    c.dogOk(['vdi', 'write', 'dogwritten', String(5 * MiB - 10), String(b.length)], b);
    const want = c.dogOk(['vdi', 'read', 'dogwritten']);
    const r = await platterInProcess(['convert', '-O', 'raw', c.uri('dogwritten'), tmp.path('dw.raw')]);
    assert.equal(r.status, 0, r.stderr);
    const got = readFileSync(tmp.path('dw.raw'));
    assert.equal(got.length, 6 * MiB);
    assert.equal(md5(got), md5(want));
    assert.deepEqual(got.subarray(100, 100 + a.length), a);
    // qemu-img compare agrees the file is what dog reads.
    writeFileSync(tmp.path('dw-dog.raw'), want);
    assert.equal(spawnSync('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', tmp.path('dw.raw'), tmp.path('dw-dog.raw')]).status, 0);
  });

  test('snapshot -c: dog lists the snapshot; writes after it leave the snapshot as it was', async () => {
    c.dogOk(['vdi', 'create', 'snapped', '8M']);
    const before0 = randomBytes(MiB);
    await platterWrite(c.uri('snapped'), [[0, before0]]);
    const r = await platterInProcess(['snapshot', '-c', 'first', c.uri('snapped')]);
    assert.equal(r.status, 0, r.stderr);
    const rows = vdiList(c).filter((v) => v.name === 'snapped');
    const snap = rows.find((v) => v.kind === 's');
    assert.ok(snap, `dog lists a snapshot: ${rows.map((x) => x.line).join('\n')}`);
    assert.equal(snap.tag, 'first');
    assert.equal(snap.id, 1);
    assert.equal(rows.filter((v) => v.kind === '=').length, 1, 'one working vdi');
    // Copy-on-write: a write to the working vdi's object owned by the snapshot.
    const after0 = randomBytes(4096);
    await platterWrite(c.uri('snapped'), [[512, after0]]);
    const snapBytes = c.dogOk(['vdi', 'read', '-s', 'first', 'snapped', '0', String(MiB)]);
    assert.deepEqual(snapBytes, before0, 'the snapshot still reads as before');
    const cur = c.dogOk(['vdi', 'read', 'snapped', '0', String(MiB)]);
    const expect = Buffer.from(before0);
    after0.copy(expect, 512);
    assert.deepEqual(cur, expect, 'the working vdi has the old object with the new bytes');
    // snapshot -l and info list it as QEMU 5.2's sd_snapshot_list does.
    const l = await platterInProcess(['snapshot', '-l', c.uri('snapped')]);
    assert.equal(l.status, 0, l.stderr);
    assert.match(l.stdout, /^Snapshot list:\nID {8}TAG {15}VM SIZE {16}DATE {5}VM CLOCK {5}ICOUNT\n1 {9}first {17}0 B \d{4}-\d\d-\d\d \d\d:\d\d:\d\d 00:00:00\.000 {11}\n$/);
    const info = await platterInProcess(['info', c.uri('snapped')]);
    assert.equal(info.status, 0, info.stderr);
    assert.match(info.stdout, new RegExp(`^image: ${c.uri('snapped')}\nfile format: raw\nvirtual size: 8 MiB \\(8388608 bytes\\)\ndisk size: 4 MiB\nSnapshot list:\n`));
    // A snapshot cannot be written: one clear line.
    await assert.rejects(platterWrite(`${c.uri('snapped')}#first`, [[0, Buffer.alloc(512)]]), /is a snapshot/);
    // snapshot -a: QEMU 5.2 loads only snapshots with a VM state.
    const a = await platterInProcess(['snapshot', '-a', 'first', c.uri('snapped')]);
    assert.equal(a.status, 1);
    assert.match(a.stderr, /platter: Invalid snapshot\nplatter: Could not apply snapshot 'first': -2 \(No such file or directory\)\n$/);
    // snapshot -d: dog no longer lists it; the working vdi still reads the same.
    const d = await platterInProcess(['snapshot', '-d', 'first', c.uri('snapped')]);
    assert.equal(d.status, 0, d.stderr);
    assert.equal(vdiList(c).filter((v) => v.name === 'snapped' && v.kind === 's').length, 0);
    assert.deepEqual(c.dogOk(['vdi', 'read', 'snapped', '0', String(MiB)]), expect);
  });

  test('clone with create -b sheepdog://.../BASE#TAG reads as the snapshot; its writes leave the base alone', async () => {
    c.dogOk(['vdi', 'create', 'base', '8M']);
    const data = randomBytes(5 * MiB);
    await platterWrite(c.uri('base'), [[0, data]]);
    c.dogOk(['vdi', 'snapshot', '-s', 'gold', 'base']);
    const r = await platterInProcess(['create', '-b', `${c.uri('base')}#gold`, c.uri('clone')]);
    assert.equal(r.status, 0, r.stderr);
    const row = vdiList(c).find((v) => v.name === 'clone');
    assert.ok(row);
    assert.equal(row.kind, 'c', 'dog lists a clone');
    assert.equal(row.size, 8 * MiB, 'the size is the snapshot\'s');
    const snapAll = c.dogOk(['vdi', 'read', '-s', 'gold', 'base']);
    const r2 = await platterInProcess(['convert', '-O', 'raw', c.uri('clone'), tmp.path('clone.raw')]);
    assert.equal(r2.status, 0, r2.stderr);
    assert.equal(md5(readFileSync(tmp.path('clone.raw'))), md5(snapAll), 'the clone reads as the snapshot');
    // Writes to the clone (one object copied from the snapshot, one fresh) leave the base alone.
    const w = randomBytes(8192);
    await platterWrite(c.uri('clone'), [[4 * MiB + 4096, w], [7 * MiB, w]]);
    assert.equal(md5(c.dogOk(['vdi', 'read', '-s', 'gold', 'base'])), md5(snapAll));
    assert.equal(md5(c.dogOk(['vdi', 'read', 'base'])), md5(snapAll));
    const cl = c.dogOk(['vdi', 'read', 'clone']);
    const expect = Buffer.from(snapAll);
    w.copy(expect, 4 * MiB + 4096);
    w.copy(expect, 7 * MiB);
    assert.equal(md5(cl), md5(expect));
    // Only a snapshot can be cloned.
    const bad = await platterInProcess(['create', '-b', c.uri('base'), c.uri('clone2')]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /cannot clone from a non snapshot vdi\n$/);
  });

  test('the legacy name form, sheepdog+unix and --image-opts name the same snapshot as the URI', async () => {
    c.dogOk(['vdi', 'create', 'forms', '2M']);
    const d = randomBytes(2 * MiB);
    c.dogOk(['vdi', 'write', 'forms', '0', String(d.length)], d);
    c.dogOk(['vdi', 'snapshot', '-s', 'tagged', 'forms']);
    c.dogOk(['vdi', 'write', 'forms', '0', '512'], Buffer.alloc(512, 0xee));
    const legacy = await platterInProcess(['convert', '-O', 'raw', `sheepdog:127.0.0.1:${c.port}:forms:tagged`, tmp.path('legacy.raw')]);
    assert.equal(legacy.status, 0, legacy.stderr);
    assert.deepEqual(readFileSync(tmp.path('legacy.raw')), d);
    const byId = await platterInProcess(['convert', '-O', 'raw', `${c.uri('forms')}#1`, tmp.path('byid.raw')]);
    assert.equal(byId.status, 0, byId.stderr);
    assert.deepEqual(readFileSync(tmp.path('byid.raw')), d);
    const opts = await platterInProcess(['convert', '--image-opts', '-O', 'raw', `driver=raw,file.driver=sheepdog,file.server.type=inet,file.server.host=127.0.0.1,file.server.port=${c.port},file.vdi=forms,file.tag=tagged`, tmp.path('opts.raw')]);
    assert.equal(opts.status, 0, opts.stderr);
    assert.deepEqual(readFileSync(tmp.path('opts.raw')), d);
    const unix = await platterInProcess(['convert', '-O', 'raw', `sheepdog+unix:///forms?socket=${c.socketPath}#tagged`, tmp.path('unix.raw')]);
    assert.equal(unix.status, 0, unix.stderr);
    assert.deepEqual(readFileSync(tmp.path('unix.raw')), d);
    const cur = await platterInProcess(['convert', '-O', 'raw', `sheepdog:127.0.0.1:${c.port}:forms`, tmp.path('cur.raw')]);
    assert.equal(cur.status, 0, cur.stderr);
    assert.deepEqual(readFileSync(tmp.path('cur.raw')).subarray(0, 512), Buffer.alloc(512, 0xee));
  });

  test('resize grows the vdi (dog sees the size); shrinking is refused', async () => {
    c.dogOk(['vdi', 'create', 'grow', '4M']);
    const r = await platterInProcess(['resize', c.uri('grow'), '12M']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(vdiList(c).find((v) => v.name === 'grow')!.size, 12 * MiB);
    await platterWrite(c.uri('grow'), [[11 * MiB, Buffer.alloc(4096, 0x5a)]]);
    assert.deepEqual(c.dogOk(['vdi', 'read', 'grow', String(11 * MiB), '4096']), Buffer.alloc(4096, 0x5a));
    const s = await platterInProcess(['resize', '--shrink', c.uri('grow'), '4M']);
    assert.equal(s.status, 1);
    assert.match(s.stderr, /shrinking is not supported/);
  });

  test('discard drops whole objects: dog reads zeros there', async () => {
    c.dogOk(['vdi', 'create', 'trim', '12M']);
    c.dogOk(['vdi', 'write', 'trim', '0', String(12 * MiB)], Buffer.alloc(12 * MiB, 0x77));
    const node = await openImage(c.uri('trim'), { format: 'raw' });
    try {
      await node.discard(2 * MiB, 8 * MiB); // covers object 1 [4M, 8M) only
    } finally {
      await node.close();
    }
    const all = c.dogOk(['vdi', 'read', 'trim']);
    assert.deepEqual(all.subarray(4 * MiB, 8 * MiB), Buffer.alloc(4 * MiB));
    assert.deepEqual(all.subarray(0, 4 * MiB), Buffer.alloc(4 * MiB, 0x77));
    assert.deepEqual(all.subarray(8 * MiB), Buffer.alloc(4 * MiB, 0x77));
  });

  test('a missing vdi or snapshot: one clear line', async () => {
    const r = await platterInProcess(['info', c.uri('no-such-vdi')]);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, `platter: Could not open '${c.uri('no-such-vdi')}': cannot get vdi info, No vdi found, no-such-vdi\n`);
    const s = await platterInProcess(['info', `${c.uri('forms')}#nosnap`]);
    assert.equal(s.status, 1);
    assert.equal(s.stderr.split('\n').length, 2, s.stderr);
    assert.match(s.stderr, /cannot get vdi info, .*forms snapshot 'nosnap'\n$/);
  });

  test('a hyper volume (dog vdi create -y, a B-tree object table QEMU never read): one clear line', async () => {
    c.dogOk(['vdi', 'create', '-y', 'hyper', '8M']);
    const r = await platterInProcess(['info', c.uri('hyper')]);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, `platter: Could not open '${c.uri('hyper')}': sheepdog vdi 'hyper' is a hyper volume (store_policy 1), which QEMU's driver does not read\n`);
  });

  test('map: objects dog wrote are data, the rest zero', async () => {
    c.dogOk(['vdi', 'create', 'mapped', '12M']);
    c.dogOk(['vdi', 'write', 'mapped', String(4 * MiB + 7), '10'], Buffer.alloc(10, 1));
    const r = await platterInProcess(['map', '--output=json', '-f', 'raw', c.uri('mapped')]);
    assert.equal(r.status, 0, r.stderr);
    const m = JSON.parse(r.stdout) as { start: number; length: number; data: boolean; zero: boolean }[];
    assert.deepEqual(m.map((e) => [e.start, e.length, e.data, e.zero]), [[0, 4 * MiB, false, true], [4 * MiB, 4 * MiB, true, false], [8 * MiB, 4 * MiB, false, true]]);
  });

  test('a dead server: one clear line, quickly', async () => {
    const port = await freePort();
    const t0 = Date.now();
    const r = await platterInProcess(['info', `sheepdog://127.0.0.1:${port}/x`]);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, `platter: Could not open 'sheepdog://127.0.0.1:${port}/x': Failed to connect to sheepdog server '127.0.0.1:${port}': Connection refused\n`);
    assert.ok(Date.now() - t0 < 10_000);
    // The same as a subprocess: no stack trace, exit status 1.
    const p = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/platter.mjs'), 'create', '-f', 'raw', `sheepdog://127.0.0.1:${port}/x`, '1M'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(p.status, 1);
    assert.match(p.stderr, /Failed to connect to sheepdog server '127\.0\.0\.1:\d+': Connection refused\n$/);
    assert.doesNotMatch(p.stderr, /\n\s+at /);
  });
});

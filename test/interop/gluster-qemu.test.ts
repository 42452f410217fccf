// The gluster protocol against qemu-img's own gluster driver (QEMU 7.2 block/gluster.c over
// libgfapi, from qemu-block-extra), both talking to a real glusterd and a one-brick volume this
// file makes (test/helpers/gluster.ts; glusterd is started only if none runs, and stopped only if
// started here). create, info, map, convert onto and from the volume, the JSON form with a server
// list (unix + tcp), rdma's fallback, debug/logfile and every failure print the same bytes as
// qemu-img (program name and libgfapi's own log lines aside); what Platter writes passes
// `qemu-img check` and `qemu-img compare` through qemu-img's gluster driver and is on the brick.
// Every open and close of a volume costs libgfapi ~10 s (glfs_fini), for both tools: independent
// commands run side by side.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, SKIP_NO_QEMU, qemuImg, qemuIo, tempDir } from '../helpers/qemu.ts';
import { runAsync, startGlusterVolume, withoutGlusterLog, type GlusterVolume } from '../helpers/gluster.ts';

const MiB = 1 << 20;
const HAVE_QEMU_GLUSTER = existsSync('/usr/lib/x86_64-linux-gnu/qemu/block-gluster.so') || existsSync('/usr/lib/aarch64-linux-gnu/qemu/block-gluster.so');
const SKIP_BASE = SKIP_NO_QEMU || (!HAVE_QEMU_GLUSTER ? "qemu-img's gluster driver not installed (apt-get install qemu-block-extra)" : false);

/** Output with the program's name and libgfapi's log lines taken out. */
const clean = (text: string) => withoutGlusterLog(text).replace(/^(platter|qemu-img): /gm, '');

const platter = (...args: string[]) => runAsync(process.execPath, [join(REPO_ROOT, 'bin/platter.mjs'), ...args]);
const qemu = (...args: string[]) => runAsync('qemu-img', args);

let vol: GlusterVolume | undefined;
let skipReason: string | false = SKIP_BASE;
const tmp = tempDir('platter-gluster-test-');

before(async () => {
  if (skipReason) {
    console.log(`# gluster interop skipped: ${skipReason}`);
    return;
  }
  const v = await startGlusterVolume();
  if (typeof v === 'string') {
    skipReason = v;
    console.log(`# gluster interop skipped: ${v}`);
  } else vol = v;
});

after(async () => {
  await vol?.stop();
  tmp.cleanup();
});

/** gluster://HOST/VOLUME/NAME */
const uri = (name: string) => `gluster://${vol!.host}/${vol!.volume}/${name}`;

/** Run both tools with the same arguments, side by side, and assert the same status and output. */
async function same(args: string[], label = args.join(' ')): Promise<{ stdout: string; stderr: string; status: number | null }> {
  const [p, q] = await Promise.all([platter(...args), qemu(...args)]);
  assert.equal(p.status, q.status, `${label}: exit status (platter stderr: ${p.stderr})`);
  assert.equal(p.stdout, q.stdout, `${label}: stdout`);
  assert.equal(clean(p.stderr), clean(q.stderr), `${label}: stderr`);
  return p;
}

describe('gluster against qemu-img and glusterd', () => {
  test('create qcow2 and raw on a volume: the same "Formatting" line, the files on the brick, info equal to qemu-img info (human and JSON), qemu-img check clean', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const [pq, pr, qr, qq] = await Promise.all([
      platter('create', '-f', 'qcow2', uri('made.qcow2'), '64M'),
      platter('create', '-f', 'raw', '-o', 'preallocation=full', uri('made.raw'), '3000000'),
      qemu('create', '-f', 'raw', '-o', 'preallocation=full', uri('q.raw'), '3000000'),
      qemu('create', '-f', 'qcow2', uri('q.qcow2'), '64M'),
    ]);
    assert.equal(qq.status, 0, qq.stderr);
    // The qcow2 file is as long as qemu-img's (the protocol file is created empty: qcow2 keeps the size).
    assert.equal(statSync(join(vol!.brick, 'made.qcow2')).size, statSync(join(vol!.brick, 'q.qcow2')).size);
    assert.equal(pq.status, 0, pq.stderr);
    assert.equal(pq.stdout, `Formatting '${uri('made.qcow2')}', fmt=qcow2 cluster_size=65536 extended_l2=off compression_type=zlib size=67108864 lazy_refcounts=off refcount_bits=16\n`);
    assert.equal(pr.status, 0, pr.stderr);
    assert.equal(qr.status, 0, qr.stderr);
    assert.equal(pr.stdout, qr.stdout.replace('q.raw', 'made.raw'));
    // On the brick: the qcow2 header, and the raw file rounded up to 512 bytes and fully allocated (0600, as QEMU's create).
    assert.equal(readFileSync(join(vol!.brick, 'made.qcow2')).subarray(0, 4).toString('latin1'), 'QFI\xfb');
    const st = statSync(join(vol!.brick, 'made.raw'));
    assert.equal(st.size, 3000320);
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.size, statSync(join(vol!.brick, 'q.raw')).size);
    assert.ok(st.blocks * 512 >= st.size, 'preallocation=full allocates the file');
    await Promise.all([
      same(['info', uri('made.qcow2')]),
      same(['info', '--output=json', uri('made.qcow2')]),
      same(['info', uri('made.raw')]),
      same(['map', '--output=json', uri('made.raw')]),
      same(['check', uri('made.qcow2')]),
    ]);
  });

  test('convert onto the volume: qemu-img check and compare through its gluster driver; map equals qemu-img map; the brick file equals the source', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const src = tmp.path('src.qcow2');
    qemuImg('create', '-f', 'qcow2', src, '48M');
    qemuIo('-c', 'write -P 0xab 1M 3M', '-c', 'write -P 0x11 40M 1M', '-c', 'write -z 44M 1M', src);
    const [toQcow2, toRaw] = await Promise.all([platter('convert', '-O', 'qcow2', src, uri('conv.qcow2')), platter('convert', '-O', 'raw', src, uri('conv.raw'))]);
    assert.equal(toQcow2.status, 0, toQcow2.stderr);
    assert.equal(toRaw.status, 0, toRaw.stderr);
    const [check, cmp, cmpRaw] = await Promise.all([qemu('check', uri('conv.qcow2')), qemu('compare', src, uri('conv.qcow2')), qemu('compare', src, uri('conv.raw'))]);
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stdout, /^No errors were found on the image\./);
    assert.equal(cmp.stdout, 'Images are identical.\n', cmp.stderr);
    assert.equal(cmpRaw.stdout, 'Images are identical.\n', cmpRaw.stderr);
    await Promise.all([same(['map', '--output=json', uri('conv.qcow2')]), same(['map', uri('conv.raw')]), same(['info', uri('conv.raw')])]);
    // The raw file on the brick holds the guest bytes.
    const onBrick = readFileSync(join(vol!.brick, 'conv.raw'));
    assert.equal(onBrick.length, 48 * MiB);
    assert.ok(onBrick.subarray(MiB, 4 * MiB).every((b) => b === 0xab));
    assert.ok(onBrick.subarray(40 * MiB, 41 * MiB).every((b) => b === 0x11));
  });

  test('convert from the volume: what qemu-img wrote there reads back identically (qemu-img compare), and Platter reads it through the JSON form', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const src = tmp.path('seed.raw');
    qemuImg('create', '-f', 'raw', src, '8M');
    qemuIo('-f', 'raw', '-c', 'write -P 0x5a 512k 1M', '-c', 'write -P 0x77 6M 64k', src);
    const up = await qemu('convert', '-O', 'qcow2', src, uri('from-qemu.qcow2'));
    assert.equal(up.status, 0, up.stderr);
    const json = `json:{"driver":"qcow2","file":{"driver":"gluster","volume":"${vol!.volume}","path":"from-qemu.qcow2","server":[{"type":"tcp","host":"${vol!.host}","port":"24007"}]}}`;
    const [a, b] = await Promise.all([platter('convert', '-O', 'raw', uri('from-qemu.qcow2'), tmp.path('back.raw')), platter('convert', '-O', 'qcow2', json, tmp.path('back-json.qcow2'))]);
    assert.equal(a.status, 0, a.stderr);
    assert.equal(b.status, 0, b.stderr);
    assert.equal(qemuImg('compare', src, tmp.path('back.raw')), 'Images are identical.\n');
    assert.equal(qemuImg('compare', src, tmp.path('back-json.qcow2')), 'Images are identical.\n');
  });

  test('the JSON form with a server list (unix socket, then tcp) and the gluster+unix URI: info equals qemu-img info, json: names in QEMU order', async (t) => {
    if (skipReason) return t.skip(skipReason);
    if (!existsSync(vol!.socket)) return t.skip(`glusterd's socket ${vol!.socket} is absent`);
    const made = await qemu('create', '-f', 'qcow2', uri('list.qcow2'), '16M');
    assert.equal(made.status, 0, made.stderr);
    const servers = `[{"type":"unix","socket":"${vol!.socket}"},{"type":"tcp","host":"${vol!.host}","port":"24007"}]`;
    const json = `json:{"driver":"qcow2","file":{"driver":"gluster","volume":"${vol!.volume}","path":"list.qcow2","server":${servers}}}`;
    // The protocol named at the top: the node itself, "file format: gluster", as qemu-img shows it.
    const top = `json:{"driver":"gluster","volume":"${vol!.volume}","path":"list.qcow2","server":${servers}}`;
    const [human, js, unix, topInfo] = await Promise.all([same(['info', json]), same(['info', '--output=json', json]), same(['info', `gluster+unix:///${vol!.volume}/list.qcow2?socket=${vol!.socket}`]), same(['info', top])]);
    assert.match(topInfo.stdout, /^image: json:\{.*\}\nfile format: gluster\n/);
    assert.match(human.stdout, /^image: json:\{"driver": "qcow2", "file": \{.*"server\.0\.socket": /);
    assert.match(js.stdout, /"format": "qcow2"/);
    assert.match(unix.stdout, /^image: gluster\+unix:\/\/\//);
  });

  test('gluster+rdma falls back to tcp with QEMU\'s warning; debug and logfile send libgfapi\'s log to the file', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const made = await qemu('create', '-f', 'raw', uri('log.raw'), '1M');
    assert.equal(made.status, 0, made.stderr);
    const rdma = await same(['info', `gluster+rdma://${vol!.host}/${vol!.volume}/log.raw`]);
    assert.match(rdma.stderr, /^platter: warning: rdma feature is not supported, falling back to tcp$/m);
    const log = tmp.path('gfapi.log');
    const r = await platter('info', '--image-opts', `driver=raw,file.driver=gluster,file.filename=${uri('log.raw')},file.debug=9,file.logfile=${log}`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(withoutGlusterLog(r.stderr), r.stderr, 'nothing of libgfapi on stderr');
    assert.match(readFileSync(log, 'utf8'), / D \[/, 'debug level 9 logs debug lines');
  });

  test('a missing volume, a dead server, a missing file, a bad URI and bad JSON servers: the same lines as qemu-img, in bounded time', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const started = Date.now();
    const cases = [
      uri('nope.qcow2').replace(`/${vol!.volume}/`, '/no-such-volume/'),
      `gluster://${vol!.host}:1/${vol!.volume}/a.qcow2`,
      uri('missing.qcow2'),
      `gluster://${vol!.host}/${vol!.volume}`,
      `gluster+unix://${vol!.host}/${vol!.volume}/a?socket=/x`,
      `json:{"driver":"gluster","volume":"${vol!.volume}","path":"a"}`,
      `json:{"driver":"gluster","volume":"${vol!.volume}","path":"a","server":[{"type":"rdma","host":"h","port":"1"}]}`,
      `json:{"driver":"gluster","volume":"${vol!.volume}","path":"a","server":[{"type":"tcp","host":"h"}]}`,
      `json:{"driver":"gluster","volume":"${vol!.volume}","path":"a","server":[{"type":"tcp","host":"h","port":"99999"}]}`,
    ];
    const results = await Promise.all(cases.map((c) => same(['info', c])));
    for (const r of results) assert.equal(r.status, 1);
    const missingVolume = clean(results[0]!.stderr).split('\n').filter((l) => l !== '');
    assert.deepEqual(missingVolume, [
      `Could not open '${cases[0]}': Gluster connection for volume no-such-volume, path nope.qcow2 failed to connect`,
      `hint: failed on host ${vol!.host} and port 24007 Please refer to gluster logs for more info`,
    ]);
    assert.equal(clean(results[2]!.stderr).trim(), `Could not open '${cases[2]}': Could not open '${cases[2]}': No such file or directory`);
    assert.ok(Date.now() - started < 120_000, 'failures answer within two minutes');
  });
});

// Platter's NBD client (core/protocols/nbd) against real servers: qemu-nbd and nbdkit on unix
// sockets and random 127.0.0.1 ports, started and stopped here. Oracle: qemu-img run on the same
// exports (info/map JSON byte for byte, convert results, error lines), and qemu-img compare.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { have, run, tempDir, qemuImg, qemuIo, SKIP_NO_QEMU } from '../helpers/qemu.ts';
import { platterInProcess } from './harness.ts';
import { freePort, startPeer, startStub, type Peer } from '../helpers/nbd-peers.ts';

const SKIP = SKIP_NO_QEMU || (have('qemu-nbd') ? false : 'qemu-nbd not installed');
const SKIP_NBDKIT = SKIP || (have('nbdkit') ? false : 'nbdkit not installed');

const tmp = tempDir('platter-nbd-client-');
const img = tmp.path('src.qcow2');
const sock = tmp.path('q.sock');
let port = 0;
const peers: Peer[] = [];

before(async () => {
  if (SKIP) return;
  // Data, a zero cluster, a discarded range and holes, so block status has every kind.
  qemuImg('create', '-f', 'qcow2', img, '64M');
  qemuIo('-f', 'qcow2', '-c', 'write -P 0x55 1M 1M', '-c', 'write -z 4M 1M', '-c', 'write -P 0xaa 8M 64k', '-c', 'write -P 0x01 63M 512', img);
  peers.push(await startPeer('qemu-nbd', ['-r', '-t', '-e', '0', '-k', sock, '-f', 'qcow2', '-x', 'exp', img], { path: sock }));
  port = await freePort();
  peers.push(await startPeer('qemu-nbd', ['-r', '-t', '-e', '0', '-b', '127.0.0.1', '-p', String(port), '-f', 'qcow2', '-x', 'exp', img], { port }));
});

after(async () => {
  for (const p of peers) await p.stop();
  tmp.cleanup();
});

/** Every way QEMU 7.2 lets a user name the same export (qemu-img's own answers are the oracle). */
function forms(): { name: string; args: string[] }[] {
  const unixUri = `nbd+unix:///exp?socket=${sock}`;
  return [
    { name: 'nbd+unix URI', args: [unixUri] },
    { name: 'nbd:unix:PATH:exportname=', args: [`nbd:unix:${sock}:exportname=exp`] },
    { name: 'nbd://host:port/export', args: [`nbd://127.0.0.1:${port}/exp`] },
    { name: 'nbd+tcp://', args: [`nbd+tcp://127.0.0.1:${port}/exp`] },
    { name: 'nbd:host:port:exportname=', args: [`nbd:127.0.0.1:${port}:exportname=exp`] },
    { name: '--image-opts server.type=unix', args: ['--image-opts', `driver=nbd,server.type=unix,server.path=${sock},export=exp`] },
    { name: '--image-opts server.type=inet', args: ['--image-opts', `driver=nbd,server.type=inet,server.host=127.0.0.1,server.port=${port},export=exp`] },
    { name: '--image-opts raw over nbd', args: ['--image-opts', `driver=raw,file.driver=nbd,file.server.type=unix,file.server.path=${sock},file.export=exp`] },
    { name: '--image-opts legacy host/port', args: ['--image-opts', `driver=nbd,host=127.0.0.1,port=${port},export=exp`] },
    { name: 'json: nbd', args: [`json:{"driver":"nbd","server":{"type":"unix","path":"${sock}"},"export":"exp"}`] },
    { name: 'json: raw over nbd', args: [`json:{"driver":"raw","file":{"driver":"nbd","path":"${sock}","export":"exp"}}`] },
  ];
}

test('info (human and --output=json) equals qemu-img info over qemu-nbd, for every filename form', { skip: SKIP }, async () => {
  for (const f of forms()) {
    for (const out of [[], ['--output=json']]) {
      const q = run('qemu-img', ['info', ...out, ...f.args]);
      const p = await platterInProcess(['info', ...out, ...f.args]);
      assert.equal(q.status, 0, `${f.name}: ${q.stderr}`);
      assert.equal(p.stderr, '', f.name);
      assert.equal(p.stdout, q.stdout, `${f.name} ${out.join(' ')}`);
    }
  }
});

test('map --output=json (and human) equals qemu-img map over qemu-nbd (base:allocation)', { skip: SKIP }, async () => {
  for (const f of forms().slice(0, 3)) {
    for (const out of [['--output=json'], []]) {
      const q = run('qemu-img', ['map', ...out, ...f.args]);
      const p = await platterInProcess(['map', ...out, ...f.args]);
      assert.equal(q.status, 0, q.stderr);
      assert.equal(p.stdout, q.stdout, `${f.name} ${out.join(' ')}`);
    }
  }
});

test('map --output=json with x-dirty-bitmap=qemu:allocation-depth equals qemu-img map over qemu-nbd -A (the context read as base:allocation flags, iotest nbd-qemu-allocation)', { skip: SKIP }, async () => {
  // A base with 2 MiB of data, an overlay writing 2 MiB across its end: depth 2, 1 and 0 ranges.
  const base = tmp.path('depth-base.qcow2');
  const top = tmp.path('depth-top.qcow2');
  const dsock = tmp.path('depth.sock');
  qemuImg('create', '-f', 'qcow2', base, '4M');
  qemuIo('-f', 'qcow2', '-c', 'write 0 2M', base);
  qemuImg('create', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top, '4M');
  qemuIo('-f', 'qcow2', '-c', 'write 1M 2M', top);
  const peer = await startPeer('qemu-nbd', ['-r', '-t', '-A', '-k', dsock, '-f', 'qcow2', top], { path: dsock });
  try {
    for (const opts of [`driver=nbd,server.type=unix,server.path=${dsock}`, `driver=nbd,server.type=unix,server.path=${dsock},x-dirty-bitmap=qemu:allocation-depth`]) {
      const q = run('qemu-img', ['map', '--output=json', '--image-opts', opts]);
      const p = await platterInProcess(['map', '--output=json', '--image-opts', opts]);
      assert.equal(q.status, 0, q.stderr);
      assert.equal(p.stdout, q.stdout, opts);
    }
  } finally {
    await peer.stop();
  }
});

test('convert from a qemu-nbd export equals the image, and holes stay holes', { skip: SKIP }, async () => {
  const out = tmp.path('from-nbd.raw');
  const p = await platterInProcess(['convert', '-f', 'raw', '-O', 'raw', `nbd+unix:///exp?socket=${sock}`, out]);
  assert.equal(p.status, 0, p.stderr);
  assert.equal(run('qemu-img', ['compare', '-U', '-f', 'qcow2', '-F', 'raw', img, out]).status, 0);
  // The holes of the export are holes of the copy: same map as qemu-img's own convert gives.
  const ref = tmp.path('from-nbd-qemu.raw');
  qemuImg('convert', '-f', 'raw', '-O', 'raw', `nbd+unix:///exp?socket=${sock}`, ref);
  assert.equal(run('qemu-img', ['map', '--output=json', '-f', 'raw', out]).stdout, run('qemu-img', ['map', '--output=json', '-f', 'raw', ref]).stdout);
  // And to qcow2 over TCP: qemu-img compare says identical.
  const q2 = tmp.path('from-nbd.qcow2');
  const p2 = await platterInProcess(['convert', '-O', 'qcow2', `nbd://127.0.0.1:${port}/exp`, q2]);
  assert.equal(p2.status, 0, p2.stderr);
  assert.equal(run('qemu-img', ['compare', '-U', img, q2]).status, 0);
  assert.equal(run('qemu-img', ['check', q2]).status, 0);
});

test('convert -n into a writable qemu-nbd export: the image behind it equals the source and passes check', { skip: SKIP }, async () => {
  const target = tmp.path('target.qcow2');
  qemuImg('create', '-f', 'qcow2', target, '64M');
  const tsock = tmp.path('t.sock');
  const peer = await startPeer('qemu-nbd', ['-t', '-k', tsock, '-f', 'qcow2', '-x', 'tgt', target], { path: tsock });
  try {
    const p = await platterInProcess(['convert', '-n', '-O', 'raw', '-U', img, `nbd+unix:///tgt?socket=${tsock}`]);
    assert.equal(p.status, 0, p.stderr);
    // Zeros and writes arrive; compare over the export itself too (FLUSH reached the server).
    const c = run('qemu-img', ['compare', '-U', '-F', 'raw', img, `nbd+unix:///tgt?socket=${tsock}`]);
    assert.equal(c.status, 0, c.stdout + c.stderr);
  } finally {
    await peer.stop();
  }
  assert.equal(run('qemu-img', ['compare', img, target]).status, 0);
  assert.equal(run('qemu-img', ['check', target]).status, 0);
});

test('convert from nbdkit memory, pattern and data exports equals qemu-img convert of the same export', { skip: SKIP_NBDKIT }, async () => {
  const plugins: [string, string[]][] = [
    ['memory', ['memory', '8M']],
    ['pattern', ['pattern', 'size=8M']],
    ['data', ['data', 'data=1 2 3 @0x100000 4 5 6 @0x300000 0x55*4096', 'size=6M']],
  ];
  for (const [name, args] of plugins) {
    const s = tmp.path(`k-${name}.sock`);
    const peer = await startPeer('nbdkit', ['-f', '--exit-with-parent', '-U', s, ...args], { path: s });
    try {
      const mine = tmp.path(`k-${name}.platter.raw`);
      const ref = tmp.path(`k-${name}.qemu.raw`);
      const uri = `nbd+unix://?socket=${s}`;
      const p = await platterInProcess(['convert', '-f', 'raw', '-O', 'raw', uri, mine]);
      assert.equal(p.status, 0, p.stderr);
      qemuImg('convert', '-f', 'raw', '-O', 'raw', uri, ref);
      assert.ok(readFileSync(mine).equals(readFileSync(ref)), name);
      assert.equal(run('qemu-img', ['map', '--output=json', '-f', 'raw', mine]).stdout, run('qemu-img', ['map', '--output=json', '-f', 'raw', ref]).stdout, name);
      // info/map over the nbdkit export too.
      for (const cmd of [['info', '--output=json'], ['map', '--output=json']]) {
        const q = run('qemu-img', [...cmd, uri]);
        const pl = await platterInProcess([...cmd, uri]);
        assert.equal(pl.stdout, q.stdout, `${name}: ${cmd.join(' ')}`);
      }
    } finally {
      await peer.stop();
    }
  }
});

/** Run a command without blocking this process's event loop; its stderr. */
function runAsync(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (b) => (err += b));
    const t = setTimeout(() => c.kill('SIGKILL'), 20_000);
    c.on('close', () => {
      clearTimeout(t);
      resolve(err);
    });
  });
}

/** One error line as qemu-img prints it, with our program name. */
function asPlatter(stderr: string): string {
  return stderr.replace(/^qemu-img: /gm, 'platter: ');
}

test('a dead server, a wrong export, a bad name: the same error lines as qemu-img, at once', { skip: SKIP }, async () => {
  const dead = await freePort();
  const cases = [
    [`nbd://127.0.0.1:${dead}/x`],
    [`nbd:127.0.0.1:${dead}`],
    [`nbd+unix:///x?socket=${tmp.path('nobody.sock')}`],
    [`nbd:unix:${tmp.path('nobody.sock')}:exportname=x`],
    [`nbd+unix:///nope?socket=${sock}`],
    [`nbd://127.0.0.1:${port}/nope`],
    ['nbd+unix:///exp'],
    ['nbd://'],
    ['nbd:'],
    ['nbd:localhost'],
    ['--image-opts', 'driver=nbd'],
    ['--image-opts', 'driver=nbd,server.type=inet,server.host=127.0.0.1'],
    ['--image-opts', 'driver=nbd,server.type=foo'],
  ];
  for (const c of cases) {
    const q = run('qemu-img', ['info', ...c]);
    const t0 = Date.now();
    const p = await platterInProcess(['info', ...c]);
    assert.ok(Date.now() - t0 < 10_000, `${c.join(' ')} took too long`);
    assert.equal(p.status, 1, c.join(' '));
    assert.equal(p.stderr, asPlatter(q.stderr), c.join(' '));
  }
});

test('a server that closes or goes silent mid-read: one error line naming the offset, no hang', { skip: SKIP }, async () => {
  for (const mode of ['close', 'stall'] as const) {
    const s = tmp.path(`stub-${mode}.sock`);
    const stub = await startStub(s, { size: 4 << 20, onRequest: (r, correct) => (r.type === 0 ? (mode === 'close' ? 'close' : 'stall') : correct) });
    const prev = process.env.PLATTER_NBD_TIMEOUT_MS;
    process.env.PLATTER_NBD_TIMEOUT_MS = '1500';
    try {
      const t0 = Date.now();
      const p = await platterInProcess(['convert', '-f', 'raw', '-O', 'raw', `nbd+unix:///?socket=${s}`, tmp.path(`stub-${mode}.raw`)]);
      assert.ok(Date.now() - t0 < 15_000, `${mode}: took ${Date.now() - t0} ms`);
      assert.equal(p.status, 1);
      const lines = p.stderr.trimEnd().split('\n');
      // QEMU's line (qemu-img: error while reading at byte 0: Input/output error), after one
      // warning that names the server and the cause.
      assert.match(lines[lines.length - 1]!, /^platter: error while reading at byte \d+: Input\/output error$/);
      assert.equal(lines.length, 2, p.stderr);
      assert.match(lines[0]!, new RegExp(`NBD server 'nbd\\+unix://\\?socket=.*stub-${mode}\\.sock' connection lost: Connection ${mode === 'close' ? '(closed|reset)' : 'timed out'}`));
      assert.ok(!/\n\s+at /.test(p.stderr), 'no stack trace');
    } finally {
      if (prev === undefined) delete process.env.PLATTER_NBD_TIMEOUT_MS;
      else process.env.PLATTER_NBD_TIMEOUT_MS = prev;
      await stub.close();
    }
  }
  // qemu-img says the same last line for the closing server.
  const s = tmp.path('stub-q.sock');
  const stub = await startStub(s, { size: 4 << 20, onRequest: (r, correct) => (r.type === 0 ? 'close' : correct) });
  try {
    // (Asynchronously: the stub server answers from this process.)
    const q = await runAsync('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', `nbd+unix:///?socket=${s}`, tmp.path('stub-q.raw')]);
    assert.match(q.split('\n')[0]!, /^qemu-img: error while reading at byte \d+: Input\/output error$/);
  } finally {
    await stub.close();
  }
});

test('the server\'s block size limits are honoured (nbdkit blocksize-policy refuses anything else): splits, alignment, read-modify-write', { skip: SKIP_NBDKIT }, async () => {
  const src = tmp.path('limits-src.raw');
  const ref = tmp.path('limits-ref.raw');
  // 3 MiB of data then zeros, as bytes qemu-io writes.
  qemuImg('create', '-f', 'raw', src, '8M');
  qemuIo('-f', 'raw', '-c', 'write -P 0x3c 0 3M', '-c', 'write -P 0x3d 5M 100k', src);
  const s = tmp.path('limits.sock');
  const peer = await startPeer('nbdkit', ['-f', '--exit-with-parent', '-U', s, '--filter=blocksize-policy', 'memory', '8M', 'blocksize-minimum=4096', 'blocksize-preferred=65536', 'blocksize-maximum=65536', 'blocksize-error-policy=error'], { path: s });
  const u = `nbd+unix:///?socket=${s}`;
  try {
    const p = await platterInProcess(['convert', '-n', '-f', 'raw', '-O', 'raw', src, u]);
    assert.equal(p.status, 0, p.stderr);
    assert.equal(run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, u]).status, 0);
    // A write smaller than the minimum block, at an odd offset: read-modify-write by Platter.
    const { openImage } = await import('../../core/drivers/open.ts');
    const node = await openImage(u, { format: 'raw' });
    try {
      assert.equal(node.file!.alignment, 4096);
      await node.write(100, Buffer.alloc(1000, 0x77));
      assert.ok((await node.read(100, 1000)).equals(Buffer.alloc(1000, 0x77)));
    } finally {
      await node.close();
    }
    qemuImg('convert', '-f', 'raw', '-O', 'raw', src, ref);
    qemuIo('-f', 'raw', '-c', 'write -P 0x77 100 1000', ref);
    assert.equal(run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', ref, u]).status, 0);
    // And the platter compare (reads split to 64 KiB) agrees.
    const c = await platterInProcess(['compare', '-f', 'raw', '-F', 'raw', ref, u]);
    assert.equal(c.stdout, 'Images are identical.\n');
  } finally {
    await peer.stop();
  }
});

test('servers without WRITE_ZEROES or block status (nbdkit nozero, noextents): convert still gives the same image', { skip: SKIP_NBDKIT }, async () => {
  for (const filter of ['nozero', 'noextents']) {
    const s = tmp.path(`${filter}.sock`);
    const peer = await startPeer('nbdkit', ['-f', '--exit-with-parent', '-U', s, `--filter=${filter}`, 'memory', '64M'], { path: s });
    const u = `nbd+unix:///?socket=${s}`;
    try {
      const p = await platterInProcess(['convert', '-n', '-U', '-O', 'raw', img, u]);
      assert.equal(p.status, 0, p.stderr);
      assert.equal(run('qemu-img', ['compare', '-U', '-F', 'raw', img, u]).status, 0, filter);
      // map equals qemu-img's over the same export (all data without base:allocation).
      assert.equal((await platterInProcess(['map', '--output=json', u])).stdout, run('qemu-img', ['map', '--output=json', u]).stdout, filter);
    } finally {
      await peer.stop();
    }
  }
});

test('create and convert onto an existing NBD export (QEMU\'s create fallback): same lines and the same image as qemu-img', { skip: SKIP }, async () => {
  const src = tmp.path('fallback-src.raw');
  qemuImg('convert', '-U', '-O', 'raw', img, src);
  const results: string[][] = [];
  for (const tool of ['qemu-img', 'platter'] as const) {
    const backing = tmp.path(`fallback-${tool}.raw`);
    qemuImg('create', '-f', 'raw', backing, '64M');
    const s = tmp.path(`fallback-${tool}.sock`);
    const peer = await startPeer('qemu-nbd', ['-t', '-k', s, '-f', 'raw', backing], { path: s });
    const u = `nbd+unix:///?socket=${s}`;
    const go = async (args: string[]) => {
      const r = tool === 'qemu-img' ? run('qemu-img', args) : await platterInProcess(args);
      return `${r.status} ${r.stdout}${r.stderr}`.replaceAll(s, 'SOCK').replace(/^(\d+ )?platter: /gm, '$1qemu-img: ');
    };
    try {
      const out = [await go(['create', '-f', 'raw', u, '32M']), await go(['create', '-f', 'raw', u, '128M']), await go(['convert', '-f', 'raw', '-O', 'qcow2', src, u])];
      results.push(out);
      assert.equal(run('qemu-img', ['check', '-f', 'qcow2', u]).status, 0, tool);
      assert.equal(run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', src, u]).status, 0, tool);
    } finally {
      await peer.stop();
    }
  }
  assert.deepEqual(results[1], results[0]);
  assert.match(results[0]![1]!, /Cannot grow NBD nodes/);
});

// The gluster protocol's names and options as QEMU 7.2 block/gluster.c reads them
// (qemu_gluster_parse_uri, qemu_gluster_parse_json, the json: name of bdrv_refresh_filename), the
// one line without libgfapi, and the bounded wait for a server that never answers. No glusterd
// needed: test/interop/gluster-qemu.test.ts proves the same forms against qemu-img and glusterd.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { glusterConfig, glusterJsonName, parseGlusterUri } from '../../core/protocols/gluster/options.ts';
import { BlockError } from '../../core/errors.ts';
import { REPO_ROOT } from '../helpers/qemu.ts';

const USAGE = 'Usage: file=gluster[+transport]://[host[:port]]volume/path[?socket=...][,file.debug=N][,file.logfile=/path/filename.log]\n';

test('URI forms: gluster, +tcp, +unix with ?socket=, default host localhost and port 24007', () => {
  assert.deepEqual(parseGlusterUri('gluster://1.2.3.4/testvol/a.img'), { volume: 'testvol', path: 'a.img', servers: [{ type: 'tcp', host: '1.2.3.4', port: '24007' }] });
  assert.deepEqual(parseGlusterUri('gluster+tcp://host.domain.com:24008/testvol/dir/a.img'), { volume: 'testvol', path: 'dir/a.img', servers: [{ type: 'tcp', host: 'host.domain.com', port: '24008' }] });
  assert.deepEqual(parseGlusterUri('gluster:///testvol//a.img'), { volume: 'testvol', path: 'a.img', servers: [{ type: 'tcp', host: 'localhost', port: '24007' }] });
  assert.deepEqual(parseGlusterUri('gluster+unix:///testvol/dir/a.img?socket=/tmp/glusterd.socket'), { volume: 'testvol', path: 'dir/a.img', servers: [{ type: 'unix', socket: '/tmp/glusterd.socket' }] });
});

test("gluster+rdma falls back to tcp with QEMU's warning", () => {
  const warnings: string[] = [];
  assert.deepEqual(parseGlusterUri('gluster+rdma://h/v/p', (m) => warnings.push(m)).servers, [{ type: 'tcp', host: 'h', port: '24007' }]);
  assert.deepEqual(warnings, ['warning: rdma feature is not supported, falling back to tcp']);
});

test('URIs QEMU refuses: "invalid URI" with its usage line as the hint', () => {
  for (const bad of ['gluster://h/vol', 'gluster://h/', 'gluster+foo://h/v/p', 'gluster://h/v/p?socket=/s', 'gluster+unix:///v/p', 'gluster+unix://h/v/p?socket=/s', 'gluster+unix:///v/p?sock=/s', 'gluster+unix:///v/p?socket=/a&socket=/b']) {
    assert.throws(() => parseGlusterUri(bad), (e: unknown) => e instanceof BlockError && e.message === `invalid URI ${bad}` && e.hint === USAGE, bad);
  }
});

test('the JSON form: servers in order (tcp/inet, unix by path or socket), debug clamped to 0..9, logfile', () => {
  const cfg = glusterConfig({ volume: 'v', path: '/d/a.qcow2', debug: '12', logfile: '/tmp/g.log', server: [{ type: 'unix', socket: '/s' }, { type: 'inet', host: 'a', port: '1' }, { type: 'tcp', host: 'b', port: '24007' }, { type: 'unix', path: '/p' }] });
  assert.deepEqual(cfg, {
    volume: 'v',
    path: '/d/a.qcow2',
    servers: [{ type: 'unix', socket: '/s' }, { type: 'tcp', host: 'a', port: '1' }, { type: 'tcp', host: 'b', port: '24007' }, { type: 'unix', socket: '/p' }],
    debug: 9,
    logfile: '/tmp/g.log',
  });
  // Dotted options (--image-opts file.server.0.host=...) arrive as an object keyed 0..n-1.
  assert.deepEqual(glusterConfig({ volume: 'v', path: 'p', debug: '-3', server: { 0: { type: 'tcp', host: 'h', port: '5' } } }).servers, [{ type: 'tcp', host: 'h', port: '5' }]);
  assert.equal(glusterConfig({ filename: 'gluster://h/v/p' }).debug, 4);
  assert.equal(glusterConfig({ filename: 'gluster://h/v/p' }).logfile, '-');
});

test("the JSON form's refusals, in QEMU's words and order, with the server index hint", () => {
  const msg = (o: Record<string, unknown>) => {
    try {
      glusterConfig(o as never);
    } catch (e) {
      return [(e as BlockError).message, ((e as BlockError).hint ?? '').split('\n')[0]];
    }
    return undefined;
  };
  assert.deepEqual(msg({ volume: 'v', path: 'p' }), ["Parameter 'server' is missing", 'Usage: -drive driver=qcow2,file.driver=gluster,file.volume=testvol,file.path=/path/a.qcow2[,file.debug=9][,file.logfile=/path/filename.log],file.server.0.type=inet,file.server.0.host=1.2.3.4,file.server.0.port=24007,file.server.1.transport=unix,file.server.1.path=/var/run/glusterd.socket ...']);
  assert.deepEqual(msg({ path: 'p', server: [{ type: 'tcp', host: 'h', port: '1' }] }), ["Parameter 'volume' is missing", msg({ volume: 'v', path: 'p' })![1]]);
  assert.deepEqual(msg({ volume: 'v', path: 'p', server: [{ type: 'tcp', host: 'h', port: '1' }, { type: 'rdma' }] }), ["Parameter 'type' may be 'inet' or 'unix'", "hint: check in 'server' array index '1'"]);
  assert.deepEqual(msg({ volume: 'v', path: 'p', server: [{ host: 'h' }] }), ["Parameter 'type' is missing", "hint: check in 'server' array index '0'"]);
  assert.deepEqual(msg({ volume: 'v', path: 'p', server: [{ type: 'tcp', host: 'h' }] }), ["Parameter 'port' is missing", "hint: check in 'server' array index '0'"]);
  assert.deepEqual(msg({ volume: 'v', path: 'p', server: [{ type: 'tcp', host: 'h', port: '1', to: '3' }] })![0], "Parameter 'to' not supported");
  assert.deepEqual(msg({ volume: 'v', path: 'p', server: [{ type: 'unix', path: '/a', socket: '/b' }] }), ["Conflicting parameters 'path' and 'socket'", "hint: check in 'server' array index '0'"]);
  assert.deepEqual(msg({ volume: 'v', path: 'p', foo: '1', server: [{ type: 'tcp', host: 'h', port: '1' }] })![0], "Block protocol 'gluster' doesn't support the option 'foo'");
});

test("a JSON-form node is named json:{...} with the driver and its strong options flattened, in QEMU's QDict order; a URI node keeps its URI", () => {
  // qemu-img info: image: json:{"server.0.host": "vm", "driver": "gluster", "path": "a.qcow2", "server.0.type": "tcp", "server.0.port": "24007", "volume": "hv1"}
  assert.equal(
    glusterJsonName({ volume: 'hv1', path: 'a.qcow2', debug: '9', logfile: '/x', server: [{ type: 'tcp', host: 'vm', port: '24007' }] }),
    '{"server.0.host": "vm", "driver": "gluster", "path": "a.qcow2", "server.0.type": "tcp", "server.0.port": "24007", "volume": "hv1"}',
  );
  assert.equal(glusterJsonName({ filename: 'gluster://vm/hv1/a.qcow2' }), undefined);
});

const HAVE_GFAPI = ['/usr/lib/x86_64-linux-gnu/libgfapi.so.0', '/usr/lib/aarch64-linux-gnu/libgfapi.so.0', '/usr/lib64/libgfapi.so.0'].some((p) => existsSync(p));

function platterCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/platter.mjs'), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stderr, ms: Date.now() - started });
    });
  });
}

test('without libgfapi: one line naming the package to install', async () => {
  const r = await platterCli(['info', 'gluster://h/v/p.qcow2'], { PLATTER_GFAPI_LIBRARY: '/nonexistent/libgfapi.so.0' });
  assert.equal(r.status, 1);
  assert.equal(r.stderr, "platter: Could not open 'gluster://h/v/p.qcow2': GlusterFS support needs libgfapi (/nonexistent/libgfapi.so.0), which could not be loaded: install glusterfs-common (Debian, Ubuntu) or glusterfs-api (Fedora, RHEL)\n");
});

test('a server that accepts and never answers: the connection is given up after the timeout and the command exits (qemu-img waits on)', { skip: HAVE_GFAPI ? false : 'libgfapi not installed (apt-get install glusterfs-common)' }, async () => {
  const silent = createServer(() => {});
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const port = (silent.address() as AddressInfo).port;
  try {
    const r = await platterCli(['info', '--image-opts', `driver=qcow2,file.driver=gluster,file.filename=gluster://127.0.0.1:${port}/v/p,file.logfile=/dev/null`], { PLATTER_GLUSTER_TIMEOUT_MS: '2000' });
    assert.equal(r.status, 1);
    assert.equal(r.stderr, `platter: Could not open 'driver=qcow2,file.driver=gluster,file.filename=gluster://127.0.0.1:${port}/v/p,file.logfile=/dev/null': Gluster connection for volume v, path p failed to connect (no answer within 2 s)\nhint: failed on host 127.0.0.1 and port ${port} Please refer to gluster logs for more info\n`);
    assert.ok(r.ms < 60_000, `exited after ${r.ms} ms`);
  } finally {
    silent.close();
  }
});

// NBD_CMD_FLAG_FAST_ZERO (issue #18): a zero write that must not fall back to writing zeros
// (QEMU's BDRV_REQ_NO_FALLBACK, e.g. `qemu-io -c 'write -z -n'`, qcow2's zeroing of new clusters)
// goes out as WRITE_ZEROES with FAST_ZERO, as QEMU 7.2's nbd client sends it; nbdkit's log
// filter records the flags of every request, and Platter's must equal qemu-io's. A server that
// offers WRITE_ZEROES but not FAST_ZERO gets no request at all: both fail with "Operation not
// supported". And Platter's server takes FAST_ZERO as qemu-nbd does (same qemu-io outcome).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { have, run, tempDir, SKIP_NO_QEMU } from '../helpers/qemu.ts';
import { startPeer, startPlatterNbd, type Peer } from '../helpers/nbd-peers.ts';
import { openImage } from '../../core/drivers/open.ts';
import { BlockError } from '../../core/errors.ts';

const SKIP = SKIP_NO_QEMU || (!have('nbdkit') ? 'nbdkit not installed' : false);
const MiB = 1 << 20;

const t = tempDir('platter-fastzero-');
const peers: Peer[] = [];
const uri = (sock: string) => `nbd+unix:///?socket=${sock}`;

/** The Zero requests in an nbdkit log: offset, count and the flags (trim = may unmap, fast). */
function zeroRequests(log: string): { offset: string; count: string; trim: string; fast: string }[] {
  return [...readFileSync(log, 'utf8').matchAll(/ Zero id=\d+ offset=(\S+) count=(\S+) trim=(\d) fua=\d fast=(\d)/g)].map((m) => ({ offset: m[1]!, count: m[2]!, trim: m[3]!, fast: m[4]! }));
}

async function nbdkit(name: string, args: string[]): Promise<{ sock: string; log: string }> {
  const sock = t.path(`${name}.sock`);
  const log = t.path(`${name}.log`);
  peers.push(await startPeer('nbdkit', ['-f', '-U', sock, '--filter=log', ...args, `logfile=${log}`], { path: sock }));
  return { sock, log };
}

after(async () => {
  await Promise.all(peers.map((p) => p.stop()));
  t.cleanup();
});

test('zero writes without fallback send WRITE_ZEROES with FAST_ZERO, flags equal to qemu-io write -z -n (nbdkit log)', { skip: SKIP }, async () => {
  const { sock, log } = await nbdkit('fast', ['memory', 'size=16M']);
  const q = run('qemu-io', ['-f', 'raw', '-c', 'write -z -n 1M 1M', '-c', 'write -z -n -u 3M 1M', '-c', 'write -z 5M 1M', uri(sock)]);
  assert.equal(q.status, 0, q.stderr);
  const fromQemu = zeroRequests(log);
  assert.equal(fromQemu.length, 3, readFileSync(log, 'utf8'));
  const node = await openImage(uri(sock), { format: 'raw' });
  try {
    assert.equal(node.zeroNoFallback, true);
    await node.writeZeroes(1 * MiB, MiB, { noFallback: true });
    await node.writeZeroes(3 * MiB, MiB, { noFallback: true, mayUnmap: true });
    await node.writeZeroes(5 * MiB, MiB, {});
  } finally {
    await node.close();
  }
  const fromPlatter = zeroRequests(log).slice(3);
  assert.deepEqual(fromPlatter, fromQemu);
  assert.deepEqual(
    fromPlatter.map((r) => r.fast),
    ['1', '1', '0'],
  );
});

test('a server without FAST_ZERO gets no zero request: Operation not supported, as qemu-io write -z -n', { skip: SKIP }, async () => {
  const { sock, log } = await nbdkit('slow', ['--filter=nozero', 'memory', 'size=16M', 'zeromode=plugin', 'fastzeromode=none']);
  const q = run('qemu-io', ['-f', 'raw', '-c', 'write -z -n 1M 1M', uri(sock)]);
  assert.match(q.stdout + q.stderr, /write failed: Operation not supported/);
  const node = await openImage(uri(sock), { format: 'raw' });
  try {
    await assert.rejects(node.writeZeroes(MiB, MiB, { noFallback: true }), (e: unknown) => e instanceof BlockError && e.kind === 'Unsupported' && /Operation not supported/.test(e.message));
    // Without the flag the zeroing happens (the server's WRITE_ZEROES, no FAST_ZERO).
    await node.writeZeroes(2 * MiB, MiB, {});
  } finally {
    await node.close();
  }
  assert.deepEqual(zeroRequests(log), [{ offset: '0x200000', count: '0x100000', trim: '0', fast: '0' }]);
});

test('platter nbd answers write -z -n (FAST_ZERO) as qemu-nbd does for a raw file, and the range reads as zeros', { skip: SKIP }, async () => {
  const outcome: string[] = [];
  for (const server of ['qemu-nbd', 'platter'] as const) {
    const img = t.path(`${server}.raw`);
    writeFileSync(img, Buffer.alloc(4 * MiB, 0x5a));
    const sock = t.path(`${server}-srv.sock`);
    const peer = server === 'qemu-nbd' ? await startPeer('qemu-nbd', ['-t', '-f', 'raw', '-k', sock, img], { path: sock }) : await startPlatterNbd(['-t', '-f', 'raw', '-k', sock, img], { path: sock });
    peers.push(peer);
    const r = run('qemu-io', ['-f', 'raw', '-c', 'write -z -n 1M 1M', '-c', 'read -P 0 1M 1M', '-c', 'read -P 0x5a 0 1M', uri(sock)]);
    await peer.stop();
    outcome.push(`${r.status} ${(r.stdout + r.stderr).replace(/^.*ops\/sec\)\n/gm, '')}`);
  }
  assert.equal(outcome[1], outcome[0]);
  assert.match(outcome[0]!, /wrote 1048576\/1048576 bytes at offset 1048576/);
});

// A hostile client for Platter's NBD server (core/nbd-server/server.ts): a correct session
// (handshake, GO, reads, writes, block status, flush, disconnect) recorded as bytes, then
// mutated (bytes flipped, fields set to extremes, cut, repeated) and sent. Verdict: the server
// never crashes (nothing thrown outside its promises), never writes outside the export, and
// still serves a correct client afterwards. Seeded and reproducible.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { openImage } from '../../core/drivers/open.ts';
import { NbdServer } from '../../core/nbd-server/server.ts';
import { NbdClient } from '../../core/protocols/nbd/client.ts';
import { tempDir, qemuImg, SKIP_NO_QEMU } from '../helpers/qemu.ts';

const CASES = Number(process.env.PLATTER_NBD_FUZZ_CASES ?? (process.env.PLATTER_TEST_LONG ? 5000 : 1000));

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}
function opt(o: number, data: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([Buffer.from('IHAVEOPT'), u32(o), u32(data.length), data]);
}
function req(type: number, flags: number, handle: number, offset: number, length: number, payload?: Buffer): Buffer {
  const h = Buffer.alloc(28);
  h.writeUInt32BE(0x25609513, 0);
  h.writeUInt16BE(flags, 4);
  h.writeUInt16BE(type, 6);
  h.writeUInt32BE(handle, 12);
  h.writeBigUInt64BE(BigInt(offset), 16);
  h.writeUInt32BE(length, 24);
  return payload ? Buffer.concat([h, payload]) : h;
}

/** The messages of a correct session (each may be mutated on its own). */
function session(): Buffer[] {
  const q = Buffer.from('base:allocation');
  const meta = Buffer.concat([u32(0), u32(1), u32(q.length), q]);
  const go = Buffer.concat([u32(0), Buffer.from([0, 1, 0, 3])]);
  return [
    u32(3),
    opt(8),
    opt(10, meta),
    opt(3),
    opt(7, go),
    req(0, 0, 1, 0, 4096),
    req(1, 1, 2, 8192, 512, Buffer.alloc(512, 0x5a)),
    req(7, 8, 3, 0, 65536),
    req(6, 2, 4, 16384, 4096),
    req(4, 0, 5, 32768, 4096),
    req(3, 0, 6, 0, 0),
    req(0, 0, 7, (1 << 20) - 512, 512),
    req(2, 0, 8, 0, 0),
  ];
}

function mutate(b0: Buffer, r: () => number): Buffer {
  const b = Buffer.from(b0);
  const pos = (w: number) => Math.floor(r() * Math.max(1, Math.min(b.length, 32) - w + 1));
  switch (Math.floor(r() * 6)) {
    case 0:
      if (b.length) b[pos(1)] ^= 1 + Math.floor(r() * 255);
      return b;
    case 1:
      if (b.length >= 4) b.writeUInt32BE([0, 0xffffffff, 0x80000000, 0x7fffffff, 33554433][Math.floor(r() * 5)]! >>> 0, Math.min(pos(4), b.length - 4));
      return b;
    case 2:
      if (b.length >= 2) b.writeUInt16BE([0, 0xffff, 8, 9, 0x8000][Math.floor(r() * 5)]!, Math.min(pos(2), b.length - 2));
      return b;
    case 3:
      return b.subarray(0, Math.floor(r() * b.length));
    case 4:
      return Buffer.concat([b, b]);
    default:
      if (b.length >= 24) b.writeBigUInt64BE(BigInt.asUintN(64, BigInt(Math.floor(r() * 2 ** 32)) << 20n), 16);
      return b;
  }
}

test(`hostile clients: ${CASES} mutated sessions, the server never crashes and still serves correctly`, { skip: SKIP_NO_QEMU, timeout: 600_000 }, async () => {
  const tmp = tempDir('platter-nbd-sfuzz-');
  const img = tmp.path('disk.raw');
  qemuImg('create', '-f', 'raw', img, '1M');
  const node = await openImage(img, { format: 'raw' });
  const sock = tmp.path('s.sock');
  const server = new NbdServer({ export: { node, name: '', readOnly: false, allocationDepth: true, discard: 'unmap', detectZeroes: 'off' }, shared: 0, persistent: true });
  await server.listen({ path: sock });
  const stray: unknown[] = [];
  const onStray = (e: unknown) => stray.push(e);
  process.on('uncaughtException', onStray);
  process.on('unhandledRejection', onStray);
  try {
    const one = (seed: number) =>
      new Promise<void>((resolve) => {
        const r = rng(seed);
        const msgs = session().map((m) => (r() < 0.2 ? mutate(m, r) : m));
        const s = connect({ path: sock });
        // A dropped or finished client ends the case; one the server waits on is closed by us.
        const done = () => {
          clearTimeout(t);
          s.destroy();
          resolve();
        };
        const t = setTimeout(done, 400);
        s.on('error', done);
        s.on('close', done);
        s.on('data', () => {});
        s.on('connect', () => {
          for (const m of msgs) s.write(m);
        });
      });
    for (let i = 0; i < CASES; i += 8) await Promise.all(Array.from({ length: Math.min(8, CASES - i) }, (_, k) => one(i + k)));
    // A correct client still gets correct service.
    const c = await NbdClient.connect({ server: { type: 'unix', path: sock }, exportName: '', metaContexts: ['base:allocation'], timeoutMs: 10_000, label: 'check' });
    try {
      assert.equal(c.info.size, 1 << 20);
      await c.write(100_000, Buffer.alloc(1000, 0x42), true);
      assert.ok((await c.read(100_000, 1000)).equals(Buffer.alloc(1000, 0x42)));
      await c.flush();
    } finally {
      await c.close();
    }
  } finally {
    process.off('uncaughtException', onStray);
    process.off('unhandledRejection', onStray);
    await server.close();
    await node.close();
  }
  assert.deepEqual(stray.map(String), []);
  // Nothing was written past the export's end (the file never grew).
  const { statSync } = await import('node:fs');
  assert.equal(statSync(img).size, 1 << 20);
  tmp.cleanup();
});

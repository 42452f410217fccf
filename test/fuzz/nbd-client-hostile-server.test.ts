// A hostile NBD server for Platter's client (core/protocols/nbd/client.ts): a scripted server
// (test/helpers/nbd-peers.ts) whose greeting, option replies or transmission replies are mutated
// (bytes flipped, fields set to extremes, cut short, lengthened, repeated). Each case connects,
// reads, asks block status and disconnects. Verdict per case: it finishes within its time bound,
// every failure is a BlockError with a message (no TypeError/RangeError leaking from an unchecked
// field), and nothing is thrown outside the promises (no crash). 2,000 cases (PLATTER_TEST_LONG:
// 10,000), seeded, so a failure names a reproducible case.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockError } from '../../core/errors.ts';
import { NbdClient } from '../../core/protocols/nbd/client.ts';
import { startStub } from '../helpers/nbd-peers.ts';
import { tempDir } from '../helpers/qemu.ts';

const CASES = Number(process.env.PLATTER_NBD_FUZZ_CASES ?? (process.env.PLATTER_TEST_LONG ? 10_000 : 2000));
const PARALLEL = 16;
const CASE_TIMEOUT_MS = 250;

/** mulberry32: a small seeded PRNG. */
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

function mutate(buf: Buffer, r: () => number): Buffer {
  const b = Buffer.from(buf);
  const kind = Math.floor(r() * 7);
  // Mostly in the headers (the first 40 bytes), where the fields are; now and then anywhere.
  const span = r() < 0.85 ? Math.min(b.length, 40) : b.length;
  const pos = (width: number) => Math.floor(r() * Math.max(1, span - width + 1));
  const at = b.length ? pos(0) : 0;
  switch (kind) {
    case 0: // flip a few bytes
      for (let i = 0, n = 1 + Math.floor(r() * 3); i < n && b.length; i++) b[pos(1)] ^= 1 + Math.floor(r() * 255);
      return b;
    case 1: // a 32-bit field to an extreme
      if (b.length >= 4) b.writeUInt32BE([0, 1, 0x7fffffff, 0xffffffff, 0x80000000, b.length][Math.floor(r() * 6)]! >>> 0, Math.min(pos(4), b.length - 4));
      return b;
    case 2: // cut short
      return b.subarray(0, at);
    case 3: // extra bytes after
      return Buffer.concat([b, Buffer.from(Array.from({ length: 1 + Math.floor(r() * 40) }, () => Math.floor(r() * 256)))]);
    case 4: // said twice
      return Buffer.concat([b, b]);
    case 5: // a 16-bit field to an extreme
      if (b.length >= 2) b.writeUInt16BE([0, 1, 0xffff, 0x8000, 0x8001, 5][Math.floor(r() * 6)]!, Math.min(pos(2), b.length - 2));
      return b;
    default: // nothing at all
      return Buffer.alloc(0);
  }
}

test(`hostile server: ${CASES} mutated handshakes and replies, 0 crashes, 0 hangs, only BlockErrors`, { timeout: 600_000 }, async () => {
  const tmp = tempDir('platter-nbd-fuzz-');
  const prev = process.env.PLATTER_NBD_TIMEOUT_MS;
  const stray: unknown[] = [];
  const onStray = (e: unknown) => stray.push(e);
  process.on('uncaughtException', onStray);
  process.on('unhandledRejection', onStray);
  const bad: string[] = [];
  let connected = 0;
  try {
    const runCase = async (seed: number) => {
      const r = rng(seed);
      const stage = Math.floor(r() * 3); // 0 greeting, 1 option replies, 2 transmission replies
      let optsLeft = Math.floor(r() * 3);
      const sock = tmp.path(`f${seed % PARALLEL}.sock`);
      const stub = await startStub(sock, {
        size: [4096, 1 << 20, 512 * 3 + 1][Math.floor(r() * 3)]!,
        ...(stage === 0 ? { greeting: (g: Buffer) => mutate(g, r) } : {}),
        ...(stage === 1 ? { optReply: (_o: number, rep: Buffer) => (optsLeft-- === 0 ? mutate(rep, r) : rep) } : {}),
        ...(stage === 2 ? { onRequest: (_q: unknown, correct: Buffer) => (r() < 0.7 ? mutate(correct, r) : correct) } : {}),
      });
      const t0 = Date.now();
      try {
        const c = await NbdClient.connect({ server: { type: 'unix', path: sock }, exportName: '', metaContexts: ['base:allocation'], timeoutMs: CASE_TIMEOUT_MS, label: `case ${seed}` });
        connected++;
        // Why the connection ended, when it broke: a protocol error in words, never a leaked
        // RangeError of a field read without a check.
        c.onDisconnect = (why) => {
          if (!/^(Protocol error: |Connection |Payload too large)/.test(why)) bad.push(`seed ${seed}: connection ended by ${why}`);
        };
        const size = c.info.size;
        const ops: Promise<unknown>[] = [];
        if (size > 0) ops.push(c.read(0, Math.min(size, 4096)));
        if (size > 0 && c.info.contexts.size > 0) ops.push(c.blockStatus(0, Math.min(size, 65536)));
        if (size > 0) ops.push(c.read(Math.max(0, size - 512), Math.min(size, 512)));
        for (const res of await Promise.allSettled(ops)) {
          if (res.status === 'rejected' && !(res.reason instanceof BlockError)) bad.push(`seed ${seed}: request failed with ${String(res.reason)}`);
        }
        await c.close();
      } catch (e) {
        if (!(e instanceof BlockError)) bad.push(`seed ${seed}: connect failed with ${String(e)}`);
        else if (/RangeError|TypeError|out of range|ERR_|undefined|NaN/.test(e.message)) bad.push(`seed ${seed}: unchecked field: ${e.message}`);
      } finally {
        await stub.close();
      }
      // Each wait is bounded by the timeout; a case is a handful of them at most.
      if (Date.now() - t0 > CASE_TIMEOUT_MS * 8 + 2000) bad.push(`seed ${seed}: took ${Date.now() - t0} ms`);
    };
    for (let base = 0; base < CASES; base += PARALLEL) {
      await Promise.all(Array.from({ length: Math.min(PARALLEL, CASES - base) }, (_, i) => runCase(base + i)));
    }
  } finally {
    process.off('uncaughtException', onStray);
    process.off('unhandledRejection', onStray);
    if (prev !== undefined) process.env.PLATTER_NBD_TIMEOUT_MS = prev;
    tmp.cleanup();
  }
  assert.deepEqual(stray.map(String), [], 'errors thrown outside the client promises');
  assert.deepEqual(bad.slice(0, 20), [], `${bad.length} bad cases`);
  // The mutations must not all be fatal at the greeting: some cases got as far as requests.
  assert.ok(connected > CASES / 10, `only ${connected} cases connected`);
});

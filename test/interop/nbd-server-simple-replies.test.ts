// platter nbd answers a client that never asks for structured replies (as old clients and the
// kernel's nbd-client do; QEMU, nbdcopy and nbdinfo always ask, so this client is a few lines of
// the protocol here): READ gets a simple reply whose data are the image's bytes, for small reads
// and for large ones (which the server sends from its reused read buffers without a copy), many
// in flight at once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { tempDir } from '../helpers/qemu.ts';
import { startPlatterNbd } from '../helpers/nbd-peers.ts';

const MiB = 1 << 20;

/** Bytes from a socket, exactly n at a time. */
function reader(s: Socket): (n: number) => Promise<Buffer> {
  let buf = Buffer.alloc(0);
  let want: { n: number; resolve: (b: Buffer) => void } | undefined;
  const pump = () => {
    if (want && buf.length >= want.n) {
      const out = buf.subarray(0, want.n);
      buf = buf.subarray(want.n);
      const w = want;
      want = undefined;
      w.resolve(Buffer.from(out));
    }
  };
  s.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    pump();
  });
  return (n) =>
    new Promise((resolve) => {
      want = { n, resolve };
      pump();
    });
}

test('READ without structured replies: simple replies carry the image bytes (small, large and back-to-back adjacent reads, 24 in flight)', async () => {
  const t = tempDir('platter-nbd-simple-');
  const img = t.path('img.raw');
  const data = randomBytes(8 * MiB);
  writeFileSync(img, data);
  const sock = t.path('s.sock');
  const peer = await startPlatterNbd(['-t', '-r', '-f', 'raw', '-k', sock, img], { path: sock });
  const s = connect({ path: sock });
  try {
    await new Promise((r) => s.once('connect', r));
    const read = reader(s);
    const hello = await read(18);
    assert.equal(hello.subarray(0, 8).toString('latin1'), 'NBDMAGIC');
    s.write(Buffer.from([0, 0, 0, 3])); // FIXED_NEWSTYLE | NO_ZEROES
    // NBD_OPT_GO for the default export, no info requests; no NBD_OPT_STRUCTURED_REPLY before it.
    const opt = Buffer.alloc(16 + 6);
    opt.write('IHAVEOPT', 0, 'latin1');
    opt.writeUInt32BE(7, 8);
    opt.writeUInt32BE(6, 12);
    s.write(opt);
    for (;;) {
      const h = await read(20);
      const type = h.readUInt32BE(12);
      const len = h.readUInt32BE(16);
      if (len) await read(len);
      if (type === 1) break; // NBD_REP_ACK
      assert.ok(type === 3, `option reply type ${type}`); // NBD_REP_INFO
    }
    const reads = [
      [0, 512],
      [5, 70_000],
      [MiB - 3, 3 * MiB],
      [4 * MiB, 256 * 1024],
      [7 * MiB, MiB],
    ] as const;
    // Back-to-back adjacent reads too (the server reads such a run in one request and answers
    // each from its part).
    const adjacent = Array.from({ length: 12 }, (_, k) => [2 * MiB + k * 96 * 1024, 96 * 1024] as const);
    const all = [...reads, ...reads, [123, 1], [MiB, 64 * 1024], ...adjacent] as const;
    all.forEach(([off, len], i) => {
      const r = Buffer.alloc(28);
      r.writeUInt32BE(0x25609513, 0);
      r.writeUInt16BE(0, 6); // NBD_CMD_READ
      r.writeBigUInt64BE(BigInt(i), 8);
      r.writeBigUInt64BE(BigInt(off), 16);
      r.writeUInt32BE(len, 24);
      s.write(r);
    });
    const seen = new Set<number>();
    for (let k = 0; k < all.length; k++) {
      const h = await read(16);
      assert.equal(h.readUInt32BE(0), 0x67446698, 'simple reply magic');
      assert.equal(h.readUInt32BE(4), 0, 'error');
      const i = Number(h.readBigUInt64BE(8));
      const [off, len] = all[i]!;
      const body = await read(len);
      assert.ok(body.equals(data.subarray(off, off + len)), `read ${i} (${off}+${len})`);
      seen.add(i);
    }
    assert.equal(seen.size, all.length);
  } finally {
    s.destroy();
    await peer.stop();
    t.cleanup();
  }
});

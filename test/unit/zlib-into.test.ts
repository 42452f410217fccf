// inflateInto (core/codecs/zlib-threadpool.ts), the decoder of dmg's zlib chunks and cloop's
// blocks: through the native zlib (zlib-native.ts, uncompress(3) through koffi, straight into
// the caller's buffer) and through node:zlib it gives the same bytes, ignores the same trailing
// bytes and fails on the same damaged streams in node:zlib's words; many calls at once queue
// instead of overrunning koffi's limit of 256 queued async calls.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import { inflateInto } from '../../core/codecs/zlib-threadpool.ts';
import { nativeZlib } from '../../core/codecs/zlib-native.ts';

const native = nativeZlib();
const decoders = [
  ['native zlib', native ?? null],
  ['node:zlib', null],
] as const;

function sample(n: number): Buffer {
  const b = randomBytes(n);
  // Half random, half repeated text: stored and compressed deflate blocks both.
  for (let i = n >> 1; i < n; i++) b[i] = 'clusters and sectors '.charCodeAt(i % 21);
  return b;
}

test('a native zlib is found on Linux and macOS (Node exports its own), so the fast path is the one tested', () => {
  if (process.platform === 'linux' || process.platform === 'darwin') assert.ok(native, 'no uncompress in this process nor in the system zlib');
});

for (const [name, using] of decoders) {
  test(`${name}: streams decode into the given buffer byte for byte, trailing bytes ignored`, async () => {
    for (const n of [1, 512, 65536, 1 << 20]) {
      const src = sample(n);
      const into = Buffer.alloc(n + 16, 0xee);
      await inflateInto(deflateSync(src), into.subarray(8, 8 + n), using);
      assert.ok(into.subarray(8, 8 + n).equals(src), `${n} bytes`);
      assert.ok(into.subarray(0, 8).equals(Buffer.alloc(8, 0xee)) && into.subarray(8 + n).equals(Buffer.alloc(8, 0xee)), `${n} bytes: nothing written outside`);
      const trailing = Buffer.concat([deflateSync(src), Buffer.from('not zlib')]);
      const again = Buffer.alloc(n);
      await inflateInto(trailing, again, using);
      assert.ok(again.equals(src), `${n} bytes with trailing bytes`);
    }
  });

  test(`${name}: cut, corrupt, short and long streams fail in node:zlib's words`, async () => {
    const src = sample(8192);
    const z = deflateSync(src);
    const corrupt = Buffer.from(z);
    corrupt[corrupt.length - 1]! ^= 0xff; // the adler32 trailer
    const cases: [Buffer, number, RegExp][] = [
      [z.subarray(0, z.length - 6), 8192, /unexpected end of file/],
      [corrupt, 8192, /incorrect data check/],
      [Buffer.from('garbage, not a zlib stream'), 8192, /incorrect header check/],
      [z, 16384, /zlib data decodes to 8192 bytes, expected 16384/],
      [z, 4096, /Cannot create a Buffer larger than|decodes to more/],
    ];
    for (const [data, n, words] of cases) await assert.rejects(inflateInto(data, Buffer.alloc(n), using), words);
  });
}

test('native zlib: 1,000 streams at once all decode (calls beyond 8 wait their turn)', { skip: native ? false : 'no native zlib here' }, async () => {
  const src = sample(4096);
  const z = deflateSync(src);
  const outs = Array.from({ length: 1000 }, () => Buffer.alloc(4096));
  await Promise.all(outs.map((o) => inflateInto(z, o, native!)));
  assert.ok(outs.every((o) => o.equals(src)));
});

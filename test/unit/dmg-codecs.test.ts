// The DMG chunk codecs on their own: ADC (adc.ts), LZFSE with its LZVN blocks (lzfse.ts), bzip2
// (seek-bzip) and zlib (codecs.ts decodeChunk), each decoding the node-udif fixtures' chunks to
// the bytes of the zlib twin's chunks (7-Zip and QEMU agree on those), plus hand-made streams
// for the block kinds the fixtures lack and damaged input that must give a clear error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync, inflateSync } from 'node:zlib';
import { adcDecode, AdcError } from '../../core/codecs/adc.ts';
import { lzfseDecode, LzfseError } from '../../core/codecs/lzfse.ts';
import { decodeChunk, CHUNK_ADC, CHUNK_BZIP2, CHUNK_LZFSE, CHUNK_ZLIB } from '../../core/codecs/dmg-chunk.ts';
import { FIXTURES, SKIP_NO_FIXTURES } from '../helpers/qemu.ts';
import { parseDmgChunks } from '../helpers/dmg-parse.ts';
import { bzip2 } from '../helpers/dmg-build.ts';

const udif = (name: string) => readFileSync(join(FIXTURES, 'third-party/node-udif', name));

/** The disk of the zlib twin, sector by sector, decoded with node:zlib (not Platter's code). */
function zlibTwinDisk(): Buffer {
  const { sectors, chunks } = parseDmgChunks(udif('compression-zlib.dmg'));
  const disk = Buffer.alloc(sectors * 512);
  for (const c of chunks) if (c.type === CHUNK_ZLIB) inflateSync(c.data).copy(disk, c.sector * 512);
  return disk;
}

function checkAgainstTwin(file: string, type: number, decode: (d: Buffer, n: number) => Uint8Array): number {
  const disk = zlibTwinDisk();
  const { chunks } = parseDmgChunks(udif(file));
  let seen = 0;
  for (const c of chunks.filter((x) => x.type === type)) {
    const out = Buffer.from(decode(c.data, c.count * 512));
    assert.ok(out.equals(disk.subarray(c.sector * 512, (c.sector + c.count) * 512)), `${file}: chunk at sector ${c.sector}`);
    seen++;
  }
  return seen;
}

test('ADC chunks of compression-adc.dmg decode to the zlib twin\'s bytes', { skip: SKIP_NO_FIXTURES }, () => {
  assert.ok(checkAgainstTwin('compression-adc.dmg', CHUNK_ADC, adcDecode) >= 1);
});

test('LZFSE chunks (bvx2 and bvxn blocks) of compression-lzfse.dmg decode to the zlib twin\'s bytes', { skip: SKIP_NO_FIXTURES }, () => {
  assert.ok(checkAgainstTwin('compression-lzfse.dmg', CHUNK_LZFSE, lzfseDecode) >= 3);
});

test('bzip2 chunks of compression-bz2.dmg decode (seek-bzip) to the zlib twin\'s bytes', { skip: SKIP_NO_FIXTURES }, () => {
  assert.ok(checkAgainstTwin('compression-bz2.dmg', CHUNK_BZIP2, (d, n) => decodeChunk(CHUNK_BZIP2, d, n)) >= 1);
});

test('ADC: literal runs, both copy forms and overlapping copies', () => {
  // "abc", then copy 3 from 3 back (2-byte form), then copy 5 from 1 back (3-byte form, overlapping).
  const src = Buffer.from([0x82, 0x61, 0x62, 0x63, 0x00, 0x02, 0x41, 0x00, 0x00]);
  assert.equal(Buffer.from(adcDecode(src, 11)).toString('latin1'), 'abcabcccccc');
});

test('ADC: damaged input gives a clear error, never a read outside the output', () => {
  assert.throws(() => adcDecode(Buffer.from([0x00, 0x05]), 3), (e: unknown) => e instanceof AdcError && /reaches 6 bytes back with only 0 decoded/.test(e.message));
  assert.throws(() => adcDecode(Buffer.from([0x85, 0x61]), 6), (e: unknown) => e instanceof AdcError && /runs past the end/.test(e.message));
  assert.throws(() => adcDecode(Buffer.from([0x80, 0x61]), 2), (e: unknown) => e instanceof AdcError && /decodes to 1 bytes, expected 2/.test(e.message));
  assert.throws(() => adcDecode(Buffer.from([0x81, 0x61, 0x62]), 1), (e: unknown) => e instanceof AdcError && /more than 1 bytes/.test(e.message));
  assert.throws(() => adcDecode(Buffer.from([0x80, 0x61, 0x40]), 8), (e: unknown) => e instanceof AdcError && /cut off/.test(e.message));
});

/** An LZFSE stream of one block and the end marker. */
const stream = (...blocks: Buffer[]) => Buffer.concat([...blocks, Buffer.from('bvx$', 'latin1')]);
function lzvnBlock(raw: number, payload: number[]): Buffer {
  const h = Buffer.alloc(12);
  h.write('bvxn', 0, 'latin1');
  h.writeUInt32LE(raw, 4);
  h.writeUInt32LE(payload.length, 8);
  return Buffer.concat([h, Buffer.from(payload)]);
}
const EOS = [0x06, 0, 0, 0, 0, 0, 0, 0];

test('LZFSE: raw (bvx-) blocks and LZVN (bvxn) opcodes, matches reaching into earlier blocks', () => {
  const raw = Buffer.alloc(8 + 4);
  raw.write('bvx-', 0, 'latin1');
  raw.writeUInt32LE(4, 4);
  raw.write('wxyz', 8, 'latin1');
  // 3 literals "abc", small-distance match (M=3, D=3), then a match of 4 at the previous distance
  // (sml_m), then a large-distance match reaching back into the raw block (L=0, M=3, D=14).
  const lzvn = lzvnBlock(13, [0xe3, 0x61, 0x62, 0x63, 0x00, 0x03, 0xf4, 0x07, 0x0e, 0x00, ...EOS]);
  assert.equal(Buffer.from(lzfseDecode(stream(raw, lzvn), 17)).toString('latin1'), 'wxyzabcabcabcawxy');
});

test('LZFSE: damaged streams give a clear error', () => {
  const bad = (s: Buffer, n: number, re: RegExp) => assert.throws(() => lzfseDecode(s, n), (e: unknown) => e instanceof LzfseError && re.test(e.message), re.source);
  bad(stream(lzvnBlock(3, [0xe3, 0x61, 0x62, 0x63, ...EOS])), 4, /decoded to 3 bytes, expected 4/);
  bad(lzvnBlock(3, [0xe3, 0x61, 0x62, 0x63, ...EOS]), 3, /without an end-of-stream block/);
  bad(stream(lzvnBlock(6, [0xe1, 0x61, 0x00, 0x05, ...EOS])), 6, /distance 5 reaches before the start/);
  bad(stream(lzvnBlock(3, [0x70, ...EOS])), 3, /undefined LZVN opcode 0x70/);
  bad(stream(lzvnBlock(3, [0xe3, 0x61])), 3, /ends inside an opcode/);
  bad(stream(lzvnBlock(100, [0xe3, 0x61, 0x62, 0x63, ...EOS])), 3, /longer than expected/);
  bad(Buffer.from('bvxQ....', 'latin1'), 3, /unknown block magic/);
});

test('LZFSE: every single-byte change of a bvx2 chunk is decoded or refused in words, never a crash', { skip: SKIP_NO_FIXTURES }, () => {
  const { chunks } = parseDmgChunks(udif('compression-lzfse.dmg'));
  const c = chunks.find((x) => x.type === CHUNK_LZFSE && x.data.toString('latin1', 0, 4) === 'bvx2')!;
  for (let i = 0; i < c.data.length; i++) {
    const d = Buffer.from(c.data);
    d[i] ^= 0x5a;
    try {
      assert.equal(lzfseDecode(d, c.count * 512).length, c.count * 512);
    } catch (e) {
      assert.ok(e instanceof LzfseError, `byte ${i}: ${String(e)}`);
    }
  }
});

test('zlib and bzip2 chunks must decode to exactly the chunk size', () => {
  const data = Buffer.alloc(4096, 7);
  assert.ok(Buffer.from(decodeChunk(CHUNK_ZLIB, deflateSync(data), 4096)).equals(data));
  assert.throws(() => decodeChunk(CHUNK_ZLIB, deflateSync(data), 8192), /decodes to 4096 bytes, expected 8192/);
  assert.throws(() => decodeChunk(CHUNK_ZLIB, deflateSync(data), 1024), /Cannot create a Buffer larger than|buffer/i);
  assert.throws(() => decodeChunk(CHUNK_ZLIB, deflateSync(data).subarray(0, 8), 4096), /unexpected end of file/);
  const bz = bzip2(data);
  assert.ok(Buffer.from(decodeChunk(CHUNK_BZIP2, bz, 4096)).equals(data));
  assert.throws(() => decodeChunk(CHUNK_BZIP2, bz, 8192), /bzip2 data decodes to 4096 bytes, expected 8192/);
  assert.throws(() => decodeChunk(CHUNK_BZIP2, bzip2(Buffer.alloc(1 << 20)), 4096), /bzip2 data decodes to more than 4096 bytes/);
  const broken = Buffer.from(bz);
  broken[20] ^= 0xff;
  assert.throws(() => decodeChunk(CHUNK_BZIP2, broken, 4096));
});

// qcow2 persistent bitmap codecs and the in-memory dirty bitmap (docs/interop/qcow2.txt "Bitmaps
// extension", "Bitmap directory", "Bitmap table", "Bitmap data"): directory entries round-trip
// with 8-byte padding and are refused with QEMU's words when they break the constraints; bitmap
// table entries keep their offsets and all-ones flag and refuse reserved bits; bits serialize
// least significant bit first, sparse, merged across granularities as QEMU's hbitmap_merge.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BME_FLAG_AUTO,
  BME_FLAG_IN_USE,
  decodeBitmapDirectory,
  decodeBitmapsExt,
  decodeBitmapTable,
  decodeBitmapTableEntry,
  dirEntrySize,
  encodeBitmapDirectory,
  encodeBitmapsExt,
  encodeBitmapTable,
  tableEntriesFor,
  type BitmapEntry,
} from '../../core/formats/qcow2/bitmaps.ts';
import { DirtyBitmap } from '../../core/block/dirty-bitmap.ts';

const CS = 65536;
const GiB = 1 << 30;

function entry(name: string, over: Partial<BitmapEntry> = {}): BitmapEntry {
  return { name, flags: BME_FLAG_AUTO, granularityBits: 16, tableOffset: 5 * CS, tableSize: 1, type: 1, ...over };
}

test('bitmap directory entries round-trip, each padded to 8 bytes', () => {
  const entries = [entry('b0'), entry('a-longer-name', { flags: BME_FLAG_IN_USE, granularityBits: 9, tableOffset: 9 * CS, tableSize: 4 })];
  const buf = encodeBitmapDirectory(entries);
  assert.equal(buf.length, dirEntrySize(2) + dirEntrySize(13));
  assert.equal(dirEntrySize(2), 32); // 24 fixed + 2 name, rounded to 8
  assert.equal(dirEntrySize(8), 32);
  assert.equal(dirEntrySize(9), 40);
  assert.deepEqual(decodeBitmapDirectory(buf, 2, CS, GiB), entries);
});

test('bitmap directory: QEMU refuses counts that disagree, extra data and broken entries', () => {
  const buf = encodeBitmapDirectory([entry('b0'), entry('b1')]);
  assert.throws(() => decodeBitmapDirectory(buf, 1, CS, GiB), /More bitmaps found than specified in header extension/);
  assert.throws(() => decodeBitmapDirectory(buf, 3, CS, GiB), /Less bitmaps found than specified in header extension/);
  assert.throws(() => decodeBitmapDirectory(buf.subarray(0, 40), 2, CS, GiB), /Broken bitmap directory/);
  assert.throws(() => decodeBitmapDirectory(Buffer.alloc(0), 0, CS, GiB), /Requested bitmap directory size is zero/);
  const extra = Buffer.from(buf);
  extra.writeUInt32BE(8, 20);
  assert.throws(() => decodeBitmapDirectory(extra, 2, CS, GiB), /Bitmap extra data is not supported/);
  const bad = (over: Partial<BitmapEntry>) => () => decodeBitmapDirectory(encodeBitmapDirectory([entry('x', over)]), 1, CS, GiB);
  assert.throws(bad({ granularityBits: 8 }), /Bitmap 'x' doesn't satisfy the constraints/);
  assert.throws(bad({ granularityBits: 32 }), /doesn't satisfy the constraints/);
  assert.throws(bad({ tableOffset: CS + 512 }), /doesn't satisfy the constraints/);
  assert.throws(bad({ tableSize: 0 }), /doesn't satisfy the constraints/);
  assert.throws(bad({ flags: 4 }), /doesn't satisfy the constraints/);
  assert.throws(bad({ type: 2 }), /doesn't satisfy the constraints/);
  // A consistent bitmap's table must cover the image; one in use may be stale (after a resize).
  assert.throws(bad({ granularityBits: 9, tableSize: 1 }), /doesn't satisfy the constraints/);
  assert.doesNotThrow(bad({ granularityBits: 9, tableSize: 1, flags: BME_FLAG_IN_USE }));
});

test('bitmaps extension: count, directory size and offset round-trip in 24 bytes', () => {
  const b = encodeBitmapsExt({ count: 3, dirSize: 96, dirOffset: 7 * CS });
  assert.equal(b.length, 24);
  assert.equal(b.readUInt32BE(4), 0); // reserved
  assert.deepEqual(decodeBitmapsExt(b), { count: 3, dirSize: 96, dirOffset: 7 * CS });
});

test('bitmap table entries: offsets, the all-ones flag, and QEMU refusing reserved bits', () => {
  const t = [
    { offset: 0, allOnes: false },
    { offset: 0, allOnes: true },
    { offset: 0x123 * CS, allOnes: false },
  ];
  const buf = encodeBitmapTable(t);
  assert.equal(buf.readBigUInt64BE(8), 1n);
  assert.deepEqual(decodeBitmapTable(buf, 3, CS), t);
  assert.equal(decodeBitmapTableEntry(0x2n, CS), undefined, 'bits 1..8 are reserved');
  assert.equal(decodeBitmapTableEntry(1n << 56n, CS), undefined, 'bits 56..63 are reserved');
  assert.equal(decodeBitmapTableEntry(BigInt(CS) | 1n, CS), undefined, 'all-ones with an offset');
  assert.equal(decodeBitmapTableEntry(BigInt(CS + 512), CS), undefined, 'an unaligned data cluster');
  assert.throws(() => decodeBitmapTable(Buffer.from('0000000000000002', 'hex'), 1, CS), /Invalid argument/);
});

test('bitmap table size: one entry per cluster of bitmap data (qemu-iotests 190 figures)', () => {
  const T2 = 2 * 1024 * GiB;
  assert.equal(tableEntriesFor(T2, 9, CS), 8192); // 2 TiB at 512 bytes: 512 MiB of bits
  assert.equal(tableEntriesFor(T2, 9, 2 << 20), 256);
  assert.equal(tableEntriesFor(T2, 21, CS), 2);
  assert.equal(tableEntriesFor(10 << 20, 16, CS), 1);
});

test('dirty bitmap: ranges set every bit they touch, serialized least significant bit first', () => {
  const b = new DirtyBitmap(10 << 20, 65536); // 160 bits
  b.setRange(65536 + 100, 1); // bit 1
  b.setRange(3 << 20, 1 << 20); // bits 48..63
  assert.deepEqual([...b.dirtyRuns()], [[1, 2], [48, 64]]);
  assert.deepEqual([...b.dirtyRanges()], [[65536, 131072], [3 << 20, 4 << 20]]);
  const s = b.serialize(0, CS * 8)!;
  assert.equal(s.length, CS);
  assert.equal(s[0], 0b10);
  assert.deepEqual([...s.subarray(6, 8)], [0xff, 0xff]);
  assert.equal(b.count(), 17);
  const c = new DirtyBitmap(10 << 20, 65536);
  c.deserialize(0, CS * 8, s);
  assert.deepEqual([...c.dirtyRuns()], [[1, 2], [48, 64]]);
  b.clear();
  assert.equal(b.serialize(0, CS * 8), undefined, 'an empty part stores no cluster');
});

test('dirty bitmap: huge and sparse, all-ones parts, and nothing past the end', () => {
  const b = new DirtyBitmap(2 * 1024 * GiB, 512); // 2^32 bits
  assert.equal(b.bits, 2 ** 32);
  b.setRange(2 * 1024 * GiB - 512, 512);
  assert.deepEqual([...b.dirtyRuns()], [[2 ** 32 - 1, 2 ** 32]]);
  b.deserializeOnes(0, 1 << 20);
  assert.equal(b.count(), (1 << 20) + 1);
  const small = new DirtyBitmap(1000, 512); // 2 bits
  small.deserializeOnes(0, CS * 8);
  assert.equal(small.count(), 2);
  const s = small.serialize(0, CS * 8)!;
  assert.equal(s[0], 0b11);
  assert.equal(s[1], 0);
});

test('dirty bitmap: merge ORs at one granularity and rounds out across granularities', () => {
  const a = new DirtyBitmap(10 << 20, 65536);
  const b = new DirtyBitmap(10 << 20, 65536);
  a.setRange(0, 65536);
  b.setRange(1 << 20, 65536);
  a.merge(b);
  assert.deepEqual([...a.dirtyRuns()], [[0, 1], [16, 17]]);
  const coarse = new DirtyBitmap(10 << 20, 512 << 10);
  coarse.merge(a); // each 64 KiB dirty range marks the 512 KiB bit holding it
  assert.deepEqual([...coarse.dirtyRuns()], [[0, 1], [2, 3]]);
  const fine = new DirtyBitmap(10 << 20, 4096);
  fine.merge(coarse);
  assert.deepEqual([...fine.dirtyRuns()], [[0, 128], [256, 384]]);
});

test('dirty bitmap: resize drops bits past a smaller end and adds clear bits', () => {
  const b = new DirtyBitmap(1 << 20, 65536);
  b.setRange(0, 1 << 20);
  b.resize(100000);
  assert.deepEqual([...b.dirtyRuns()], [[0, 2]]);
  b.resize(2 << 20);
  assert.deepEqual([...b.dirtyRuns()], [[0, 2]]);
  assert.equal(b.bits, 32);
});

// The qcow2 on-disk codecs round-trip: refcount entries of every width 1..64 bits packed as
// qcow2.txt says (sub-byte widths from the least significant bit), L2 entries (standard,
// zero, extended, compressed descriptors), the header with its extensions, and the snapshot
// table; the measure arithmetic gives QEMU's documented figure for a 1 GiB image.
import { test } from 'node:test';
import { nonZeroPrefix } from '../../core/formats/qcow2/refcount.ts';
import assert from 'node:assert/strict';
import { readRefcountEntry, writeRefcountEntry, maxRefcount } from '../../core/formats/qcow2/refcount.ts';
import { decodeL2, encodeCompressedL2, encodeL2 } from '../../core/formats/qcow2/entries.ts';
import { decodeExtensions, decodeFixedHeader, emptyHeader, encodeHeader, INCOMPAT_EXTL2 } from '../../core/formats/qcow2/header.ts';
import { encodeSnapshotTable } from '../../core/formats/qcow2/snapshots-table.ts';
import { fullyAllocatedSize } from '../../core/formats/qcow2/measure.ts';

test('refcount entries of every width 1..64 bits round-trip without touching neighbours', () => {
  for (let order = 0; order <= 6; order++) {
    const bits = 1 << order;
    const buf = Buffer.alloc(64);
    const n = (64 * 8) / bits;
    const max = Math.min(maxRefcount(bits), 2 ** 40);
    for (let i = 0; i < n; i++) writeRefcountEntry(buf, i, bits, i % 3 === 0 ? max : i % (max + 1));
    for (let i = 0; i < n; i++) assert.equal(readRefcountEntry(buf, i, bits), i % 3 === 0 ? max : i % (max + 1), `width ${bits} entry ${i}`);
  }
  // 1-bit entries: entry 0 is the least significant bit of byte 0.
  const b = Buffer.alloc(1);
  writeRefcountEntry(b, 0, 1, 1);
  assert.equal(b[0], 1);
  writeRefcountEntry(b, 7, 1, 1);
  assert.equal(b[0], 0x81);
});

test('L2 entries: standard, zero, extended and compressed descriptors decode as encoded', () => {
  const g = { clusterBits: 16, extendedL2: false, version: 3 };
  const t = Buffer.alloc(64);
  encodeL2(t, 0, g, { offset: 0x123450000, copied: true });
  assert.deepEqual([decodeL2(t, 0, g).type, decodeL2(t, 0, g).offset, decodeL2(t, 0, g).copied], ['normal', 0x123450000, true]);
  encodeL2(t, 1, g, { offset: 0, copied: false, zero: true });
  assert.equal(decodeL2(t, 1, g).type, 'zero-plain');
  assert.equal(decodeL2(t, 1, { ...g, version: 2 }).type, 'unallocated');
  encodeCompressedL2(t, 2, g, 0x30000 + 700, 5000);
  const c = decodeL2(t, 2, g);
  assert.equal(c.type, 'compressed');
  assert.equal(c.compressedOffset, 0x30000 + 700);
  assert.ok(c.compressedSize >= 5000 && c.compressedSize < 5000 + 512);
  const x = { clusterBits: 16, extendedL2: true, version: 3 };
  const e = Buffer.alloc(32);
  encodeL2(e, 1, x, { offset: 0x50000, copied: true, allocMask: 0x0000ffff, zeroMask: 0xffff0000 });
  const d = decodeL2(e, 1, x);
  assert.deepEqual([d.type, d.offset, d.allocMask, d.zeroMask], ['normal', 0x50000, 0x0000ffff, 0xffff0000]);
  // External data files: offset 0 with COPIED is a real cluster.
  encodeL2(t, 3, { ...g, externalData: true }, { offset: 0, copied: true });
  assert.equal(decodeL2(t, 3, { ...g, externalData: true }).type, 'normal');
  assert.equal(decodeL2(t, 3, g).type, 'unallocated');
});

test('the header with backing name, backing format, data file and unknown extensions round-trips', () => {
  const h = emptyHeader(3, 16, 1 << 30);
  h.incompatible |= INCOMPAT_EXTL2;
  h.backingFile = 'base image.qcow2';
  h.backingFormat = 'qcow2';
  h.dataFile = 'data.raw';
  h.unknownExtensions.push({ type: 0x12345678, data: Buffer.from('keep me') });
  h.bitmapsExt = Buffer.alloc(24, 7);
  const buf = encodeHeader(h, 65536);
  const back = decodeFixedHeader(buf, {});
  decodeExtensions(back, buf, {});
  assert.equal(back.size, 1 << 30);
  assert.equal(back.incompatible, INCOMPAT_EXTL2);
  assert.equal(buf.toString('utf8', back.backingFileOffset, back.backingFileOffset + back.backingFileSize), 'base image.qcow2');
  assert.equal(back.backingFormat, 'qcow2');
  assert.equal(back.dataFile, 'data.raw');
  assert.deepEqual(back.unknownExtensions, [{ type: 0x12345678, data: Buffer.from('keep me') }]);
  assert.deepEqual(back.bitmapsExt, Buffer.alloc(24, 7));
  assert.ok(back.featureNames.some((f) => f.name === 'extended L2 entries'));
});

test('snapshot table entries are padded to 8 bytes and carry the v3 extra data', () => {
  const t = encodeSnapshotTable([{ l1TableOffset: 0x30000, l1Size: 1, id: '1', name: 'abc', dateSec: 5, dateNsec: 6, vmClockNsec: 0, vmStateSize: 0, diskSize: 1 << 20, icount: 0, extraTail: Buffer.alloc(0) }]);
  assert.equal(t.length % 8, 0);
  assert.equal(t.readUInt32BE(36), 24); // extra_data_size
  assert.equal(Number(t.readBigUInt64BE(48)), 1 << 20); // disk_size
  assert.equal(t.toString('utf8', 64, 68), '1abc');
});

test('fully allocated size of a 1 GiB image with 64 KiB clusters is what qemu-img measure prints', () => {
  // qemu-img measure -O qcow2 --size 1G: fully-allocated 1074135040.
  assert.equal(fullyAllocatedSize(1 << 30, 65536, 16, false), 1074135040);
});

test('nonZeroPrefix counts entries up to the last non-zero one (refcount table decode bound)', () => {
  const t = Buffer.alloc(8 * 1000);
  assert.equal(nonZeroPrefix(t, 8), 0);
  t[7] = 1;
  assert.equal(nonZeroPrefix(t, 8), 1);
  t[8 * 700 + 3] = 9;
  assert.equal(nonZeroPrefix(t, 8), 701, 'zero entries between non-zero ones count');
  t[t.length - 1] = 1;
  assert.equal(nonZeroPrefix(t, 8), 1000);
  const big = Buffer.alloc(8 << 20);
  big[(8 << 20) - 8 * 3] = 1;
  assert.equal(nonZeroPrefix(big, 8), (1 << 20) - 2, 'tails longer than the comparison buffer');
});

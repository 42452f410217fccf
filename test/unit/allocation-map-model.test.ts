// The allocation map's model (core/shared/allocation-map.ts): bytes per layer from map entries,
// the kind each cell of the picture shows, and zooming, on hand-made qemu-img map entries.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cells, kindKey, kindOf, summarize, zoomWindow } from '../../core/shared/allocation-map.ts';

const MiB = 1 << 20;
const layers = [
  { filename: 'top.qcow2', format: 'qcow2', 'virtual-size': 8 * MiB },
  { filename: 'base.qcow2', format: 'qcow2', 'virtual-size': 8 * MiB, encrypted: true },
];
const entries = [
  { start: 0, length: 2 * MiB, depth: 1, present: true, zero: false, data: true },
  { start: 2 * MiB, length: MiB, depth: 0, present: true, zero: false, data: true, compressed: true },
  { start: 3 * MiB, length: MiB, depth: 0, present: true, zero: true, data: false },
  { start: 4 * MiB, length: 4 * MiB, depth: 2, present: false, zero: true, data: false },
];

test('bytes per layer are the data lengths qemu-img map gives each depth; holes apart', () => {
  const s = summarize(entries, layers);
  assert.equal(s.total, 8 * MiB);
  assert.deepEqual(s.layers.map((l) => [l.dataBytes, l.compressedBytes, l.zeroBytes, l.encrypted]), [
    [MiB, MiB, MiB, false],
    [2 * MiB, 0, 0, true],
  ]);
  assert.equal(s.holeBytes, 4 * MiB);
});

test('kinds: encrypted data of an encrypted layer, compressed data, recorded zeros, holes', () => {
  assert.deepEqual(entries.map((e) => kindKey(kindOf(e, layers))), ['e1', 'c0', 'z0', 'hole']);
});

test('cells take the kind covering most of them, and cover the view exactly', () => {
  const c = cells(entries, layers, 0, 8 * MiB, 8);
  assert.deepEqual(c.map((x) => x.key), ['e1', 'e1', 'c0', 'z0', 'hole', 'hole', 'hole', 'hole']);
  assert.equal(c[0]!.start, 0);
  assert.equal(c.at(-1)!.end, 8 * MiB);
  const mixed = cells(entries, layers, 0, 8 * MiB, 2);
  assert.deepEqual(mixed[0]!.parts, { e1: 2 * MiB, c0: MiB, z0: MiB });
  assert.equal(mixed[0]!.key, 'e1');
  // More cells than bytes: one byte each.
  assert.equal(cells(entries, layers, 0, 3, 100).length, 3);
});

test('zooming narrows around a point and stays inside the disk', () => {
  assert.deepEqual(zoomWindow(8 * MiB, { start: 0, end: 8 * MiB }, 0, 8), { start: 0, end: MiB });
  assert.deepEqual(zoomWindow(8 * MiB, { start: 0, end: 8 * MiB }, 8 * MiB, 8), { start: 7 * MiB, end: 8 * MiB });
  assert.deepEqual(zoomWindow(8 * MiB, { start: 7 * MiB, end: 8 * MiB }, 7.5 * MiB, 1 / 8), { start: 0, end: 8 * MiB });
});

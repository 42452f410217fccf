// scanStandardL2 (block status over a raw L2 table) must classify exactly as decodeL2 does:
// random tables mixing every entry kind (data runs with and without contiguous host offsets, zero
// flags on allocated and unallocated entries, compressed descriptors, reserved bits, COPIED with
// and without an external data file, version 2 and 3) are scanned both ways and compared.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeL2, scanStandardL2, L2_COMPRESSED, L2_DATA, L2_UNALLOCATED, L2_ZERO, L2_ZERO_ALLOC, type EntryGeometry } from '../../core/formats/qcow2/entries.ts';

const CS = 65536;
const ENTRIES = 512;

/** xorshift32: a fixed sequence, so a failure reproduces. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

function randomTable(r: () => number): Buffer {
  const t = Buffer.alloc(ENTRIES * 8);
  let host = CS * 16;
  for (let i = 0; i < ENTRIES; ) {
    const runLength = 1 + Math.floor(r() * 12);
    const kind = Math.floor(r() * 6);
    for (let k = 0; k < runLength && i < ENTRIES; k++, i++) {
      const p = i * 8;
      const copied = r() < 0.8 ? 0x80000000 : 0;
      if (kind === 0 || kind === 1) {
        // Data, contiguous (kind 0) or with a jump now and then (kind 1).
        host += kind === 1 && r() < 0.3 ? CS * 7 : CS;
        t.writeUInt32BE((copied | Math.floor(host / 2 ** 32)) >>> 0, p);
        t.writeUInt32BE(host % 2 ** 32 >>> 0, p + 4);
      } else if (kind === 2) {
        t.writeUInt32BE(copied ? 0x80000000 : 0, p); // zero flag, with or without an offset
        t.writeUInt32BE(((r() < 0.5 ? host : 0) | 1) >>> 0, p + 4);
      } else if (kind === 3) {
        t.writeUInt32BE(0x40000000 | Math.floor(r() * 0x100), p); // compressed descriptor
        t.writeUInt32BE(Math.floor(r() * 0x100000000) >>> 0, p + 4);
      } else if (kind === 4) {
        t.writeUInt32BE(r() < 0.3 ? 0x80000000 : 0, p); // unallocated (COPIED alone: see externalData)
        t.writeUInt32BE(r() < 0.2 ? 0x2 : 0, p + 4); // a reserved bit now and then
      }
      // kind 5: all zero bytes (unallocated).
    }
  }
  return t;
}

function classOf(t: Buffer, i: number, g: EntryGeometry): { kind: number; host: number } {
  const e = decodeL2(t, i, g);
  if (e.type === 'compressed') return { kind: L2_COMPRESSED, host: 0 };
  if (e.type === 'zero-plain') return { kind: L2_ZERO, host: 0 };
  if (e.type === 'zero-alloc') return { kind: L2_ZERO_ALLOC, host: e.offset };
  if (e.type === 'normal') return { kind: L2_DATA, host: e.offset };
  return { kind: L2_UNALLOCATED, host: 0 };
}

test('scanStandardL2 finds the runs decodeL2 defines, for v2, v3 and external data files', () => {
  const r = rng(20261126);
  for (const g of [
    { clusterBits: 16, extendedL2: false, version: 3 },
    { clusterBits: 16, extendedL2: false, version: 2 },
    { clusterBits: 16, extendedL2: false, version: 3, externalData: true },
  ] satisfies EntryGeometry[]) {
    for (let round = 0; round < 40; round++) {
      const t = randomTable(r);
      let runs = 0;
      for (let i = 0; i < ENTRIES; ) {
        const max = Math.min(ENTRIES - i, 1 + Math.floor(r() * ENTRIES));
        const got = scanStandardL2(t, i, max, g, CS);
        const first = classOf(t, i, g);
        let n = 1;
        while (n < max) {
          const c = classOf(t, i + n, g);
          const mapped = first.kind === L2_DATA || first.kind === L2_ZERO_ALLOC;
          if (c.kind !== first.kind || (mapped && c.host !== first.host + n * CS)) break;
          n++;
        }
        assert.deepEqual(got, { kind: first.kind, host: first.kind === L2_DATA || first.kind === L2_ZERO_ALLOC ? first.host : 0, count: n }, `entry ${i} of round ${round}, version ${g.version}`);
        i += n;
        runs++;
      }
      assert.ok(runs > 10, 'the tables mix many runs');
    }
  }
});

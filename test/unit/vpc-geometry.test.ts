// VHD CHS geometry and size rules as QEMU applies them: creation rounds a size up to a geometry
// (values taken from qemu-img 7.2 create/info), force_size and oversized disks keep the exact
// size at the maximum geometry, and reading trusts "Current Size" only for the creators QEMU lists.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { calculateGeometry, geometryForCreate, virtualSizeOf, VHD_MAX_GEOMETRY } from '../../core/formats/vpc/geometry.ts';

test('creation rounds sizes up to the CHS geometry qemu-img create picks', () => {
  assert.deepEqual(geometryForCreate(4100 << 10, false), { geometry: { cylinders: 121, heads: 4, sectorsPerTrack: 17 }, size: 4212736 });
  assert.equal(geometryForCreate(4097, false)!.size, 34816);
  assert.equal(geometryForCreate(4 << 20, false)!.size, 4212736);
  assert.deepEqual(geometryForCreate(127 * 2 ** 30, false), { geometry: { cylinders: 65279, heads: 16, sectorsPerTrack: 255 }, size: 136365219840 });
  assert.deepEqual(calculateGeometry(65535), { cylinders: 963, heads: 4, sectorsPerTrack: 17 }, 'the spec algorithm rounds down');
  assert.equal(geometryForCreate(65535 * 512, false)!.size, 33562624, 'creation then rounds up (qemu-img: 32 MiB + 8704)');
});

test('force_size keeps the exact (sector-rounded) size at the maximum geometry', () => {
  const g = geometryForCreate(4097, true)!;
  assert.equal(g.size, 4608);
  assert.equal(g.geometry.cylinders * g.geometry.heads * g.geometry.sectorsPerTrack, VHD_MAX_GEOMETRY);
  assert.equal(geometryForCreate(2041 * 2 ** 30, true), undefined, 'over 2040 GiB is refused');
});

test('reading uses CHS for Virtual PC and qemu images, Current Size for Hyper-V, Disk2vhd, qem2, Xen', () => {
  const g = { cylinders: 121, heads: 4, sectorsPerTrack: 17 };
  assert.equal(virtualSizeOf('vpc ', g, 4194304n), 4212736);
  assert.equal(virtualSizeOf('qemu', g, 4194304n), 4212736);
  for (const app of ['win ', 'd2v ', 'qem2', 'CTXS', 'tap\0']) assert.equal(virtualSizeOf(app, g, 4194304n), 4194304, app);
  assert.equal(virtualSizeOf('vpc ', { cylinders: 65535, heads: 16, sectorsPerTrack: 255 }, 5n << 40n), 5 * 2 ** 40, 'maximum geometry means Current Size');
});

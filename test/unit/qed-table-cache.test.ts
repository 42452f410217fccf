// The L2 table cache shared by the qed and qcow drivers: concurrent loads of one table share one
// read, least recently used tables are evicted first, and a pinned table (a writer is changing it)
// is never evicted, so no reader can reload a stale copy from disk while the write is in flight.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TableCache } from '../../core/formats/qed/table-cache.ts';

test('concurrent gets of one table share one load', async () => {
  const cache = new TableCache<number[]>(4);
  let loads = 0;
  const load = async () => {
    loads++;
    await new Promise((r) => setTimeout(r, 5));
    return [loads];
  };
  const [a, b, c] = await Promise.all([cache.get(8, load), cache.get(8, load), cache.get(8, load)]);
  assert.equal(loads, 1);
  assert.equal(a, b);
  assert.equal(b, c);
});

test('evicts the least recently used table when over capacity', async () => {
  const cache = new TableCache<string>(2);
  const loads: number[] = [];
  const loader = (k: number) => async () => {
    loads.push(k);
    return `t${k}`;
  };
  await cache.get(1, loader(1));
  await cache.get(2, loader(2));
  await cache.get(1, loader(1)); // 1 is now the most recent
  await cache.get(3, loader(3)); // evicts 2
  await cache.get(1, loader(1));
  await cache.get(2, loader(2));
  assert.deepEqual(loads, [1, 2, 3, 2]);
});

test('a pinned table survives eviction and keeps its in-memory changes until unpinned', async () => {
  const cache = new TableCache<{ v: number }>(1);
  let disk = 0;
  const load = async () => ({ v: disk });
  const t = await cache.get(100, load, true);
  t.v = 42; // a writer changed the table; its disk write is still in flight
  for (let k = 0; k < 5; k++) await cache.get(k, async () => ({ v: -1 }));
  assert.equal((await cache.get(100, load)).v, 42, 'readers see the pinned object, not a reload');
  disk = 42;
  cache.unpin(100);
  await cache.get(7, async () => ({ v: -1 })); // now it may go
  assert.equal((await cache.get(100, load)).v, 42);
});

test('a failed load is not cached and can be retried', async () => {
  const cache = new TableCache<number>(2);
  await assert.rejects(cache.get(1, async () => Promise.reject(new Error('EIO'))), /EIO/);
  assert.equal(await cache.get(1, async () => 5), 5);
});

// The qcow2 L2 cache never holds two buffers for one table. A load from disk that was under way
// when a new table was put (l2ForWrite publishing a fresh table) must hand out the put buffer:
// otherwise entries written into one copy are lost when the other is written back (seen as
// convert -c losing guest clusters and leaking the cluster they were written to).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { L2Cache } from '../../core/formats/qcow2/l2-cache.ts';

test('a load that finishes after a put of the same table returns the put buffer, and the cache keeps it', async () => {
  const cache = new L2Cache(65536, 65536 * 4);
  let finishLoad!: (b: Buffer) => void;
  const loading = cache.get(0x50000, () => new Promise<Buffer>((r) => (finishLoad = r)));
  const fresh = Buffer.alloc(65536);
  cache.put(0x50000, fresh);
  finishLoad(Buffer.alloc(65536)); // the stale on-disk copy
  assert.equal(await loading, fresh);
  assert.equal(await cache.get(0x50000, () => Promise.reject(new Error('must not load again'))), fresh);
});

test('a dirty table stays the one handed out after a concurrent load completes', async () => {
  const cache = new L2Cache(65536, 65536 * 4);
  let finishLoad!: (b: Buffer) => void;
  const loading = cache.get(0x60000, () => new Promise<Buffer>((r) => (finishLoad = r)));
  const table = Buffer.alloc(65536);
  table.writeBigUInt64BE(0x8000000000070000n, 8);
  cache.markDirty(0x60000, table, 8, 16);
  finishLoad(Buffer.alloc(65536));
  assert.equal(await loading, table);
  assert.deepEqual(cache.dirtyTables().map((d) => d.table), [table]);
});

// The worker pool runs CPU-heavy tasks off the main thread and gives results back intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inflateRawSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { WorkerPool } from '../../core/workers/pool.ts';

test('deflateRaw in workers round-trips and reports incompressible chunks as empty', async () => {
  const pool = new WorkerPool(2);
  try {
    const text = Buffer.from('platter '.repeat(8192));
    const noise = randomBytes(65536);
    const jobs = Array.from({ length: 6 }, (_, i) => pool.run('deflateRaw', { chunks: [new Uint8Array(i % 2 ? noise : text)], limit: 65536 - 512 }));
    const results = await Promise.all(jobs);
    for (let i = 0; i < results.length; i++) {
      const [out] = results[i]!;
      if (i % 2) assert.equal(out!.length, 0, 'random data does not compress below the limit');
      else assert.deepEqual(inflateRawSync(out!), text);
    }
  } finally {
    await pool.close();
  }
});

test('an unknown task is an error, not a hang', async () => {
  const pool = new WorkerPool(1);
  try {
    await assert.rejects(pool.run('nope' as never, {} as never), /unknown worker task/);
  } finally {
    await pool.close();
  }
});

// The zstd frame writer for compression_type=zstd clusters (zstd-frame.ts): its Raw/RLE-block
// frames decode with an independent zstd decoder (fzstd) to the exact input, runs shrink, and
// data that would not shrink below the limit is reported as such (stored uncompressed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { decompress } from 'fzstd';
import { zstdFrame } from '../../core/formats/qcow2/zstd-frame.ts';

test('frames of runs, random bytes and mixed data decode to the input with fzstd', () => {
  const mixed = Buffer.alloc(300 << 10, 0xfa);
  randomBytes(5000).copy(mixed, 1000);
  mixed.fill(0, 200 << 10, (200 << 10) + 3);
  for (const data of [Buffer.alloc(64 << 10, 0xac), randomBytes(64 << 10), mixed, Buffer.alloc(0), Buffer.from([1, 2, 3])]) {
    const frame = zstdFrame(data);
    assert.ok(frame);
    assert.deepEqual(Buffer.from(decompress(frame)), data);
  }
});

test('a cluster of one byte value shrinks to a few bytes', () => {
  const frame = zstdFrame(Buffer.alloc(2 << 20, 0x11), 2 << 20);
  assert.ok(frame && frame.length < 128, `frame of ${frame?.length} bytes`);
});

test('random data does not shrink below the cluster size: no frame', () => {
  assert.equal(zstdFrame(randomBytes(65536), 65536), undefined);
});

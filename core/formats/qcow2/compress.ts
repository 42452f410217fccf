// Compressed clusters (docs/interop/qcow2.txt "Compressed Clusters Descriptor", header byte 104
// compression_type): zlib clusters are raw deflate streams (4 KiB window); zstd clusters are
// zstd frames. Both may be followed by padding up to the sector boundary. zlib goes through the
// worker pool; zstd decompression uses 'fzstd' (Node 20 has no zstd in node:zlib) and zstd
// compression our own Raw/RLE frame writer (zstd-frame.ts).

import { Decompress as ZstdStream } from 'fzstd';
import { corrupt, unsupported, type BlockErrorContext } from '../../errors.ts';
import type { WorkerPool } from '../../workers/pool.ts';
import { COMPRESSION_ZLIB, COMPRESSION_ZSTD } from './header.ts';
import { zstdFrame } from './zstd-frame.ts';

/** Decompress one cluster; throws Corrupt unless exactly `clusterSize` bytes come out. */
export async function decompressCluster(workers: WorkerPool, type: number, data: Buffer, clusterSize: number, ctx: BlockErrorContext): Promise<Buffer> {
  let out: Uint8Array;
  try {
    if (type === COMPRESSION_ZLIB) {
      const copy = new Uint8Array(data); // transferred to the worker
      const [r] = await workers.run('inflateRaw', { chunks: [copy], outputLength: clusterSize }, [copy.buffer as ArrayBuffer]);
      out = r!;
    } else if (type === COMPRESSION_ZSTD) {
      out = zstdCluster(data, clusterSize);
    } else {
      throw unsupported(`Unknown compression type ${type}`, ctx);
    }
  } catch (e) {
    if (e instanceof Error && e.name === 'BlockError') throw e;
    throw corrupt(`Could not decompress cluster at host offset ${ctx.offset ?? '?'}: ${(e as Error).message}`, ctx, { code: 'Worded' });
  }
  if (out.length < clusterSize) throw corrupt(`Compressed cluster decompressed to ${out.length} bytes, expected ${clusterSize}`, ctx);
  return Buffer.from(out.buffer, out.byteOffset, clusterSize);
}

/** zstd: the frame may be followed by sector padding (and one-shot decoding of QEMU's frames
 *  reports an early end), so stream until a full cluster is out. */
function zstdCluster(data: Buffer, clusterSize: number): Uint8Array {
  const out = Buffer.alloc(clusterSize);
  let n = 0;
  const s = new ZstdStream((chunk) => {
    const take = Math.min(chunk.length, clusterSize - n);
    if (take > 0) out.set(chunk.subarray(0, take), n);
    n += take;
  });
  try {
    s.push(data, true);
  } catch (e) {
    if (n < clusterSize) throw e;
  }
  return out.subarray(0, n);
}

/** Compress whole clusters (raw deflate, or zstd frames); an empty result means "did not
 *  shrink" (store it uncompressed, as QEMU does). */
export async function compressClusters(workers: WorkerPool, type: number, clusters: Buffer[], clusterSize: number, ctx: BlockErrorContext): Promise<Buffer[]> {
  if (type === COMPRESSION_ZSTD) {
    // Raw/RLE-block frames (zstd-frame.ts): cheap enough to stay on this thread.
    return clusters.map((c) => zstdFrame(c, clusterSize) ?? Buffer.alloc(0));
  }
  if (type !== COMPRESSION_ZLIB) throw unsupported(`Unknown compression type ${type}`, ctx);
  const chunks = clusters.map((c) => new Uint8Array(c));
  const out = await workers.run('deflateRaw', { chunks, limit: clusterSize }, chunks.map((c) => c.buffer as ArrayBuffer));
  return out.map((u) => Buffer.from(u.buffer, u.byteOffset, u.length));
}

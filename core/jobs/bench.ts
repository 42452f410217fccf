// The bench job (qemu-img bench; qemu-img.c img_bench): issue `count` reads or writes of `size`
// bytes, `depth` at a time, walking the image by `step` from `offset` and wrapping at its end,
// and time the run.

import { BlockError, cancelled, invalidArgument } from '../errors.ts';
import { withImage, type ImageSpec, type JobControl, type JobEnv } from './common.ts';

export interface BenchOptions {
  image: ImageSpec;
  /** -c (qemu-img default 75000) */
  count?: number;
  /** -d (default 64) */
  depth?: number;
  /** -s (default 4096) */
  size?: number;
  /** -S (default: size) */
  step?: number;
  /** -o (default 0) */
  offset?: number;
  /** -w */
  write?: boolean;
  /** --pattern (default 0) */
  pattern?: number;
  /** --flush-interval: flush after this many requests (writes only). */
  flushInterval?: number;
}

export const BENCH_DEFAULTS = { count: 75000, depth: 64, size: 4096 };

/** The line qemu-img bench prints before running. */
export function benchHeader(o: BenchOptions): string {
  const count = o.count ?? BENCH_DEFAULTS.count;
  const size = o.size ?? BENCH_DEFAULTS.size;
  return `Sending ${count} ${o.write ? 'write' : 'read'} requests, ${size} bytes each, ${o.depth ?? BENCH_DEFAULTS.depth} in parallel (starting at offset ${o.offset ?? 0}, step size ${o.step ?? size})`;
}

/** Runs the benchmark; returns the elapsed seconds. `opened` is called once the image is open
 *  (qemu-img prints its "Sending ..." line then: an image that fails to open prints none). */
export async function bench(o: BenchOptions, env: JobEnv, ctl: JobControl = {}, opened?: () => void): Promise<number> {
  const count = o.count ?? BENCH_DEFAULTS.count;
  const depth = o.depth ?? BENCH_DEFAULTS.depth;
  const size = o.size ?? BENCH_DEFAULTS.size;
  const step = o.step ?? size;
  const flushEvery = o.flushInterval ?? 0;
  if (flushEvery && !o.write) throw invalidArgument('--flush-interval is only available in write tests');
  return withImage(o.image, env, { readOnly: !o.write }, async (node) => {
    opened?.();
    // A request past the end fails as QEMU's blk_check_byte_request fails it.
    if (size > node.size) throw new BlockError('Io', 'Failed request: Input/output error', { op: 'read' }, { code: 'Worded' });
    const buf = Buffer.alloc(size, o.pattern ?? 0);
    let offset = o.offset ?? 0;
    let issued = 0;
    let done = 0;
    const t0 = process.hrtime.bigint();
    const lane = async () => {
      while (issued < count) {
        if (ctl.signal?.aborted) throw cancelled();
        issued++;
        if (offset + size > node.size) offset = 0;
        const at = offset;
        offset += step;
        if (o.write) await node.write(at, buf);
        else await node.read(at, size);
        done++;
        if (flushEvery && done % flushEvery === 0) await node.flush();
        ctl.onProgress?.({ done, total: count, phase: 'benchmark' });
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, depth) }, lane));
    if (o.write) await node.flush();
    return Number(process.hrtime.bigint() - t0) / 1e9;
  });
}

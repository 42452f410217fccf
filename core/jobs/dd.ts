// The dd job (qemu-img dd; qemu-img.c img_dd): copy `count` blocks of `bs` bytes from the input
// image, starting `skip` blocks in, into a new output image. Like qemu-img, the output's size is
// min(input size, count*bs) minus skip*bs.

import { openImage } from '../drivers/open.ts';
import { createImage } from '../drivers/create.ts';
import type { BlockNode } from '../block/node.ts';
import { cancelled, invalidArgument } from '../errors.ts';
import { openSpec, progressReporter, type ImageSpec, type JobControl, type JobEnv } from './common.ts';

export interface DdOptions {
  input: ImageSpec;
  output: string;
  outputFormat?: string;
  /** bs= (default 512) */
  blockSize?: number;
  count?: number;
  skip?: number;
}

/** qemu-img dd's default bs. */
export const DD_DEFAULT_BS = 512;
/** Bytes per request, whatever bs is (large transfers; the result is the same). */
const CHUNK = 4 << 20;

export async function dd(o: DdOptions, env: JobEnv, ctl: JobControl = {}): Promise<void> {
  const bs = o.blockSize ?? DD_DEFAULT_BS;
  if (!Number.isSafeInteger(bs) || bs <= 0) throw invalidArgument(`invalid number: '${bs}'`);
  const src = await openSpec(o.input, env, { readOnly: true });
  let out: BlockNode | undefined;
  try {
    let size = src.size;
    if (o.count !== undefined && o.count * bs < size) size = o.count * bs;
    const start = (o.skip ?? 0) * bs;
    const outSize = Math.max(0, size - start);
    await createImage({ format: o.outputFormat ?? 'raw', filename: o.output, size: outSize, secrets: env.secrets, warn: env.warn });
    out = await openImage(o.output, { format: o.outputFormat ?? 'raw', readOnly: false, secrets: env.secrets, warn: env.warn });
    // Past the end (of the input, or of count blocks): an empty output, with qemu-img's warning
    // (like dd(1), which also goes on).
    if (start > size) env.warn(`error_report: ${o.input.filename}: cannot skip to specified offset`);
    const progress = progressReporter(ctl, outSize, 'copying');
    for (let p = start; p < size; p += CHUNK) {
      if (ctl.signal?.aborted) throw cancelled();
      const n = Math.min(CHUNK, size - p);
      await out.write(p - start, await src.read(p, n));
      progress.add(n);
    }
    await out.flush();
    progress.finish();
  } finally {
    await out?.close().catch(() => {});
    await src.close().catch(() => {});
  }
}

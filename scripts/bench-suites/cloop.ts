// Issue #17's reading speed for cloop: `convert -O raw` of a 256 MiB cloop image made by
// create_compressed_fs (cloop-utils, V2.0 zlib blocks of 64 KiB) from mixed data, qemu-img vs
// Platter; target: Platter's time <= 1.0x qemu-img's.

import { join } from 'node:path';
import { rmSync } from 'node:fs';
import type { BenchContext, BenchPair, BenchSuite } from './types.ts';
import { MiB, have, platterSide, runOk, side, writeMixed } from './util.ts';

const SIZE = 256 * MiB;
const BLOCK = 64 * 1024;

export const suite: BenchSuite = {
  name: 'cloop',
  async unavailable() {
    if (!have('qemu-img')) return 'qemu-img not installed';
    if (!have('create_compressed_fs')) return 'create_compressed_fs not installed (apt-get install cloop-utils)';
    return undefined;
  },
  async setup(ctx: BenchContext): Promise<BenchPair[]> {
    const raw = join(ctx.dir, 'data.raw');
    const img = join(ctx.dir, 'data.cloop');
    writeMixed(raw, SIZE);
    ctx.log(`create_compressed_fs -B ${BLOCK} of ${SIZE / MiB} MiB`);
    runOk('create_compressed_fs', ['-q', '-B', String(BLOCK), raw, img]);
    rmSync(raw);
    const qOut = join(ctx.dir, 'out-qemu.raw');
    const pOut = join(ctx.dir, 'out-platter.raw');
    return [
      {
        name: `cloop -> raw (${SIZE / MiB} MiB, ${BLOCK / 1024} KiB zlib blocks)`,
        referenceLabel: 'qemu-img convert',
        target: 1.0,
        reference: side(ctx, 'qemu-img', ['convert', '-f', 'cloop', '-O', 'raw', img, qOut], { output: qOut }),
        platter: platterSide(ctx, ['convert', '-f', 'cloop', '-O', 'raw', img, pOut], { output: pOut }),
      },
    ];
  },
  async teardown() {},
};

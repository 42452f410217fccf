// Issue #17's reading speed for dmg: `convert -O raw` of a 256 MiB UDIF image of zlib chunks
// (1 MiB each, as hdiutil's UDZO; all-zero MiB as zero-fill chunks) made from mixed data by the
// tests' independent UDIF writer (test/helpers/dmg-build.ts; qemu-img cannot create dmg), qemu-img
// vs Platter; target: Platter's time <= 1.0x qemu-img's.

import { join } from 'node:path';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { BenchContext, BenchPair, BenchSuite } from './types.ts';
import { MiB, have, platterSide, side, writeMixed } from './util.ts';
import { dmgFromDisk } from '../../test/helpers/dmg-build.ts';

const SIZE = 256 * MiB;

export const suite: BenchSuite = {
  name: 'dmg',
  async unavailable() {
    if (!have('qemu-img')) return 'qemu-img not installed';
    return undefined;
  },
  async setup(ctx: BenchContext): Promise<BenchPair[]> {
    const raw = join(ctx.dir, 'data.raw');
    const img = join(ctx.dir, 'data.dmg');
    writeMixed(raw, SIZE);
    ctx.log(`building a ${SIZE / MiB} MiB zlib dmg`);
    writeFileSync(img, dmgFromDisk(readFileSync(raw), 'zlib', 2048));
    rmSync(raw);
    const qOut = join(ctx.dir, 'out-qemu.raw');
    const pOut = join(ctx.dir, 'out-platter.raw');
    return [
      {
        name: `dmg (zlib) -> raw (${SIZE / MiB} MiB)`,
        referenceLabel: 'qemu-img convert',
        target: 1.0,
        reference: side(ctx, 'qemu-img', ['convert', '-f', 'dmg', '-O', 'raw', img, qOut], { output: qOut }),
        platter: platterSide(ctx, ['convert', '-f', 'dmg', '-O', 'raw', img, pOut], { output: pOut }),
      },
    ];
  },
  async teardown() {},
};

// GlusterFS bench suite (issue #22): convert of a 512 MiB raw image onto a one-brick volume,
// `qemu-img convert` (its gluster driver, qemu-block-extra) against `platter convert`, both to a
// raw file and to a qcow2 on the volume. Goal: Platter's time <= 1.2x qemu-img's. glusterd is the
// one running or one started here (test/helpers/gluster.ts), and the volume is stopped and deleted
// at teardown. Both tools pay libgfapi's ~10 s glfs_fini per open volume (GlusterFS 10).

import { closeSync, existsSync, openSync, writeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { join } from 'node:path';
import type { BenchContext, BenchPair, BenchSuite } from './types.ts';
import { startGlusterVolume, type GlusterVolume } from '../../test/helpers/gluster.ts';

const MiB = 1 << 20;
const SIZE = 512 * MiB;

let vol: GlusterVolume | undefined;

/** A 512 MiB raw image: 3 of every 4 MiB hold data (random and text alternating), the rest holes. */
function makeSource(path: string): void {
  const fd = openSync(path, 'w');
  try {
    const random = randomFillSync(Buffer.alloc(MiB));
    const text = Buffer.alloc(MiB, 'Platter bench: the quick brown fox jumps over the lazy dog. ');
    for (let off = 0; off < SIZE; off += MiB) {
      if ((off / MiB) % 4 === 3) continue;
      writeSync(fd, (off / MiB) % 2 === 0 ? random : text, 0, MiB, off);
    }
    // The last MiB is a hole: size the file with one byte at its end.
    writeSync(fd, Buffer.alloc(1), 0, 1, SIZE - 1);
  } finally {
    closeSync(fd);
  }
}

export const suite: BenchSuite = {
  name: 'GlusterFS',
  async unavailable() {
    if (!existsSync('/usr/lib/x86_64-linux-gnu/qemu/block-gluster.so') && !existsSync('/usr/lib/aarch64-linux-gnu/qemu/block-gluster.so')) return "qemu-img's gluster driver is not installed (apt-get install qemu-block-extra)";
    if (!existsSync('/usr/sbin/glusterd')) return 'glusterd is not installed (apt-get install glusterfs-server)';
    if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'glusterd needs root';
    return undefined;
  },
  async setup(ctx: BenchContext): Promise<BenchPair[]> {
    const v = await startGlusterVolume();
    if (typeof v === 'string') throw new Error(`GlusterFS volume: ${v}`);
    vol = v;
    const src = join(ctx.dir, 'src.raw');
    makeSource(src);
    ctx.log(`gluster volume ${v.volume} on ${v.host}:${v.brick}`);
    const uri = (name: string) => `gluster://${v.host}/${v.volume}/${name}`;
    const pair = (fmt: 'raw' | 'qcow2'): BenchPair => ({
      name: `raw -> ${fmt} on gluster (512 MiB)`,
      referenceLabel: 'qemu-img convert',
      target: 1.2,
      maxRuns: 3,
      // Each side overwrites its own target (create truncates it).
      reference: { run: () => ctx.timed('qemu-img', ['convert', '-O', fmt, src, uri(`ref.${fmt}`)]) },
      platter: { run: () => ctx.timed(process.execPath, [ctx.platter, 'convert', '-O', fmt, src, uri(`platter.${fmt}`)]) },
    });
    return [pair('raw'), pair('qcow2')];
  },
  async teardown() {
    await vol?.stop();
    vol = undefined;
  },
};

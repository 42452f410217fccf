// Issue #18's speed: (1) nbdcopy of a 1 GiB export holding 512 MiB of data (mixed, in 4 MiB
// extents spread over the disk, holes between) served by `platter nbd` vs by qemu-nbd, target
// <= 1.2x; (2) `platter convert` from a qemu-nbd export vs `qemu-img convert` from it, target
// <= 1.2x. Both servers serve the same raw file read-only and persistently (-t) on unix sockets in
// the suite's directory; nbdcopy writes to its null: sink so only the reading is timed.

import { join } from 'node:path';
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import type { BenchContext, BenchPair, BenchSuite } from './types.ts';
import { MiB, have, platterSide, side, startServer, type Server } from './util.ts';

const SIZE = 1024 * MiB;
const DATA = 512 * MiB;
const EXTENT = 4 * MiB;

let servers: Server[] = [];

/** 1 GiB with 512 MiB of data: every other 4 MiB extent, alternately random and text. */
function makeImage(path: string): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, SIZE);
    const buf = Buffer.alloc(EXTENT);
    const words = 'network block device: structured replies, block status, pipelined reads of large extents\n';
    for (let i = 0; i < DATA / EXTENT; i++) {
      if (i % 2 === 0) randomFillSync(buf);
      else for (let p = 0; p < EXTENT; p += words.length) buf.write(`${i}${words}`, p, Math.min(words.length, EXTENT - p), 'latin1');
      writeSync(fd, buf, 0, EXTENT, i * 2 * EXTENT);
    }
  } finally {
    closeSync(fd);
  }
}

export const suite: BenchSuite = {
  name: 'NBD',
  async unavailable() {
    for (const t of ['qemu-img', 'qemu-nbd', 'nbdcopy']) if (!have(t)) return `${t} not installed`;
    return undefined;
  },
  async setup(ctx: BenchContext): Promise<BenchPair[]> {
    const img = join(ctx.dir, 'export.raw');
    makeImage(img);
    const qSock = join(ctx.dir, 'qemu-nbd.sock');
    const pSock = join(ctx.dir, 'platter-nbd.sock');
    servers.push(await startServer('qemu-nbd', ['-t', '-r', '-f', 'raw', '-k', qSock, img], { path: qSock }));
    servers.push(await startServer(process.execPath, [ctx.platter, 'nbd', '-t', '-r', '-f', 'raw', '-k', pSock, img], { path: pSock }));
    const uri = (sock: string) => `nbd+unix:///?socket=${sock}`;
    const qOut = join(ctx.dir, 'out-qemu.raw');
    const pOut = join(ctx.dir, 'out-platter.raw');
    return [
      {
        name: 'nbdcopy from the server (1 GiB export, 512 MiB data)',
        referenceLabel: 'nbdcopy from qemu-nbd',
        target: 1.2,
        reference: side(ctx, 'nbdcopy', [uri(qSock), 'null:']),
        platter: side(ctx, 'nbdcopy', [uri(pSock), 'null:']),
      },
      {
        name: 'convert -O raw from a qemu-nbd export (1 GiB, 512 MiB data)',
        referenceLabel: 'qemu-img convert',
        target: 1.2,
        reference: side(ctx, 'qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri(qSock), qOut], { output: qOut }),
        platter: platterSide(ctx, ['convert', '-f', 'raw', '-O', 'raw', uri(qSock), pOut], { output: pOut }),
      },
    ];
  },
  async teardown() {
    const s = servers;
    servers = [];
    await Promise.all(s.map((x) => x.stop()));
  },
};

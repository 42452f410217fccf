// A raw image for convert/resume tests: `dataMiB` MiB of non-zero data in 1 MiB pieces with a
// 1 MiB hole after each, every piece different (its number stamped in it).
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';

const MiB = 1 << 20;

export function makeSpacedRaw(path: string, dataMiB: number): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, dataMiB * 2 * MiB);
    const buf = Buffer.alloc(MiB);
    for (let i = 0; i < dataMiB; i++) {
      buf.fill((i % 250) + 1);
      buf.writeUInt32LE((i * 2654435761) >>> 0, 100);
      writeSync(fd, buf, 0, MiB, i * 2 * MiB);
    }
  } finally {
    closeSync(fd);
  }
}

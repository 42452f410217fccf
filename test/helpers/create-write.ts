// Shared by the create-and-write interop suites (vpc, vhdx): the same spread of writes issued by
// Platter or by qemu-io, creating an image with both Platter and `qemu-img create` and comparing
// what `qemu-img info` says of each, and checking an image against the raw bytes it should hold
// with `qemu-img compare`.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createImage } from '../../core/drivers/create.ts';
import { parseSizeText } from '../../core/block/options-schema.ts';
import { qemuImg, qemuImgJson, type tempDir } from './qemu.ts';

/** [offset, length, fill byte]: a block start, a 1 MiB block boundary, unaligned sectors and a later block. */
export const SPREAD_WRITES: [number, number, number][] = [
  [0, 65536, 0x11],
  [1052160, 3072, 0x22],
  [2096640, 4096, 0x33],
  [3 << 20, 128 << 10, 0x55],
  [4128768, 65536, 0x44],
];

/** The qemu-io `-c` arguments that issue `writes` (each a `write -q -P fill offset length`). */
export function qemuIoWriteArgs(writes: [number, number, number][]): string[] {
  return writes.flatMap(([o, l, b]) => ['-c', `write -q -P ${b} ${o} ${l}`]);
}

/** Create image `i` with `qemu-img create` (q<i>.<ext>) and with Platter (p<i>.<ext>) from the same
 *  size text and -o options; both have the same virtual size, cluster size and file length. */
export async function assertCreateMatchesQemu(t: ReturnType<typeof tempDir>, format: string, ext: string, i: number, size: string, opts: string): Promise<{ p: string; q: string; qi: any }> {
  const q = t.path(`q${i}.${ext}`);
  const p = t.path(`p${i}.${ext}`);
  qemuImg('create', '-q', '-f', format, ...(opts ? ['-o', opts] : []), q, size);
  await createImage({ format, filename: p, size: parseSizeText(size)!, options: opts });
  const qi = qemuImgJson('info', '-f', format, q);
  const pi = qemuImgJson('info', '-f', format, p);
  assert.equal(pi['virtual-size'], qi['virtual-size'], `${size} ${opts}: virtual size`);
  assert.equal(pi['cluster-size'], qi['cluster-size'], `${size} ${opts}: cluster size`);
  assert.equal(readFileSync(p).length, readFileSync(q).length, `${size} ${opts}: file length`);
  return { p, q, qi };
}

/** Write `expected` to the raw file `raw`; `qemu-img compare` finds `img` identical to it. */
export function assertIdenticalToRaw(format: string, img: string, raw: string, expected: Buffer, message: string): void {
  writeFileSync(raw, expected);
  assert.match(qemuImg('compare', '-f', format, '-F', 'raw', img, raw), /Images are identical/, message);
}

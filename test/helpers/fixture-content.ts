// Checking that an opened fixture reads as qemu-img saw it (facts recorded in fixtures.json): the
// md5 of the whole raw disk, or for big disks the recorded nonzero runs, and the md5 of the
// recorded data ranges. Shared by the per-format fixture suites.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { openImage } from '../../core/drivers/open.ts';
import { run } from './qemu.ts';

type OpenedNode = Awaited<ReturnType<typeof openImage>>;

/** How much is read at a time. */
export const CHUNK = 16 << 20;

/** Above this, hashing the whole disk costs seconds: check the recorded nonzero runs instead
 *  (fixtures.json raw_nonzero_runs, which qemu-img's raw output gave). */
export const MD5_LIMIT = 64 << 20;

/** The md5 of `length` guest bytes from `offset`, read a chunk at a time. */
export async function streamMd5(node: OpenedNode, offset: number, length: number): Promise<string> {
  const h = createHash('md5');
  for (let p = 0; p < length; p += CHUNK) h.update(await node.read(offset + p, Math.min(CHUNK, length - p)));
  return h.digest('hex');
}

/** Runs of one fill byte read as that byte; everything between reads as zeros (zero extents
 *  reported by block status are taken as read). */
export async function verifyRuns(node: OpenedNode, runs: [number, number, string][], id: string, fmt: string, path: string, tmp: string): Promise<void> {
  let pos = 0;
  const zerosUpTo = async (end: number) => {
    while (pos < end) {
      const st = await node.blockStatus(pos, end - pos);
      if (!st.zero) {
        const n = Math.min(st.length, CHUNK);
        assert.ok((await node.read(pos, n)).equals(Buffer.alloc(n)), `${id}: zeros at ${pos}`);
        pos += n;
      } else pos += st.length;
    }
  };
  for (const [o, l, fill] of runs) {
    await zerosUpTo(o);
    if (fill === 'mixed') {
      // No hash of a mixed run is recorded: compare it with the bytes qemu-img dd reads there.
      const out = `${tmp}/run.raw`;
      run('qemu-img', ['dd', '-f', fmt, '-O', 'raw', `if=${path}`, `of=${out}`, 'bs=512', `skip=${o / 512}`, `count=${l / 512}`]);
      assert.ok((await node.read(o, l)).equals(readFileSync(out)), `${id}: mixed run at ${o}`);
      pos = o + l;
      continue;
    }
    for (let p = o; p < o + l; p += CHUNK) {
      const n = Math.min(CHUNK, o + l - p);
      assert.ok((await node.read(p, n)).equals(Buffer.alloc(n, Number(fill))), `${id}: ${fill} at ${p}`);
    }
    pos = o + l;
  }
  await zerosUpTo(node.size);
}

/** The fixture `f` (a fixtures.json entry), opened from `path` as `fmt`, has qemu-img's virtual
 *  size, raw md5 (or nonzero runs, for big disks) and md5 of each recorded data range. */
export async function verifyFixtureContent(node: OpenedNode, f: any, fmt: string, path: string, tmp: string): Promise<void> {
  assert.equal(node.size, f.virtual_size, `${f.id}: virtual size`);
  if (f.raw_md5 && node.size <= MD5_LIMIT) assert.equal(await streamMd5(node, 0, node.size), f.raw_md5, `${f.id}: md5`);
  else if (f.raw_md5) await verifyRuns(node, f.raw_nonzero_runs, f.id, fmt, path, tmp);
  for (const [o, l, h] of f.raw_data_ranges_md5 ?? []) assert.equal(await streamMd5(node, o, l), h, `${f.id}: md5 of [${o}, +${l})`);
}

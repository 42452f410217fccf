// Comparing an image as Platter reads it with what the QEMU tools see: the raw bytes of
// `qemu-img convert -O raw`, and the extents of `qemu-img map --output=json` through the backing
// chain. Shared by the per-format qemu-compat suites.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { blockStatusAbove, type BlockNode } from '../../core/block/node.ts';
import { md5, qemuImg, run } from './qemu.ts';

/** The guest bytes of `path` as `qemu-img convert -f format -O raw` writes them (into a fresh file in `dir`). */
export function qemuRaw(path: string, dir: string, format: string): Buffer {
  const out = `${dir}/qemu-raw-${Math.random().toString(36).slice(2)}.bin`;
  qemuImg('convert', '-f', format, '-O', 'raw', path, out);
  return readFileSync(out);
}

/** Open `path` as `format` (warnings silenced), run `fn` on the node, and close it. */
export async function withImageNode<T>(path: string, format: string, fn: (n: BlockNode) => Promise<T>, readOnly = true): Promise<T> {
  const node = await openImage(path, { readOnly, format, warn: () => {} });
  try {
    return await fn(node);
  } finally {
    await node.close();
  }
}

/** Compare Platter's block status through the backing chain with `qemu-img map --output=json`. */
export async function assertMapMatches(node: BlockNode, map: any[]): Promise<void> {
  for (const e of map) {
    let pos = e.start;
    while (pos < e.start + e.length) {
      const st = await blockStatusAbove(node, pos, e.start + e.length - pos);
      assert.equal(st.depth, e.depth, `depth at ${pos}`);
      assert.equal(st.data, e.data, `data at ${pos}`);
      assert.equal(st.zero, e.zero, `zero at ${pos}`);
      assert.equal(st.allocated, e.present, `present at ${pos}`);
      if (e.offset !== undefined) assert.equal(st.hostOffset, e.offset + (pos - e.start), `host offset at ${pos}`);
      pos += st.length;
    }
  }
}

/** The fixture `f` (a fixtures.json entry), opened as `node`, is probed as `format` and has the virtual
 *  and cluster size of `qemu-img info`, the md5 of `qemu-img convert -O raw` and the extents of `qemu-img map`. */
export async function assertFixtureReadsAsQemu(node: BlockNode, f: any, format: string): Promise<void> {
  assert.equal(node.format, format);
  assert.equal(node.size, f.qemu_info['virtual-size']);
  assert.equal((await node.info()).clusterSize, f.qemu_info['cluster-size']);
  assert.equal(md5(await node.read(0, node.size)), f.raw_md5);
  await assertMapMatches(node, f.qemu_map);
}

/** Write `expected` to the raw file `raw`; `qemu-img compare -f format -F raw img raw` exits 0. */
export function assertQemuCompareRaw(format: string, img: string, raw: string, expected: Buffer): void {
  writeFileSync(raw, expected);
  const cmp = run('qemu-img', ['compare', '-f', format, '-F', 'raw', img, raw]);
  assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
}

/** Twelve rounds of eight concurrent writes of 1 byte to 48 KiB at pseudo-random offsets (seeded
 *  by `seed`), one in each eighth of the disk so that they never overlap (their order would be
 *  undefined), as convert -m 8 issues them; each is mirrored into `model`, which is as large as the
 *  disk. With `zeroes`, about one in five is a write-zeroes instead of a write of `pattern` bytes. */
export async function concurrentRandomWrites(node: BlockNode, model: Buffer, opts: { seed: number; pattern: (length: number, seed: number) => Buffer; zeroes: boolean }): Promise<void> {
  const size = model.length;
  let seed = opts.seed;
  const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  for (let round = 0; round < 12; round++) {
    const slot = size / 8;
    await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const len = 1 + rand(48 * 1024);
        const off = i * slot + rand(slot - len);
        if (opts.zeroes && rand(5) === 0) {
          await node.writeZeroes(off, len);
          model.fill(0, off, off + len);
        } else {
          const d = opts.pattern(len, round * 8 + i);
          await node.write(off, d);
          d.copy(model, off);
        }
      }),
    );
  }
}

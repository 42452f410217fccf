// Every vpc fixture opens and reads through Platter as `qemu-img convert -O raw` / `qemu-img info`
// see it (facts recorded in fixtures.json from qemu-img 7.2), and the images qemu-img refuses are
// refused with qemu-img's message.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { openImage } from '../../core/block/open.ts';
import { BlockError } from '../../core/errors.ts';
import { readFileSync } from 'node:fs';
import { fixture, fixtureFacts, HAVE_FIXTURES, run, SKIP_NO_FIXTURES, tempDir } from '../helpers/qemu.ts';

const CHUNK = 16 << 20;
const facts = HAVE_FIXTURES ? fixtureFacts().filter((f) => f.format === 'vpc') : [];

async function streamMd5(node: Awaited<ReturnType<typeof openImage>>, offset: number, length: number): Promise<string> {
  const h = createHash('md5');
  for (let p = 0; p < length; p += CHUNK) h.update(await node.read(offset + p, Math.min(CHUNK, length - p)));
  return h.digest('hex');
}

/** Above this, hashing the whole disk costs seconds: check the recorded nonzero runs instead
 *  (fixtures.json raw_nonzero_runs, which qemu-img's raw output gave). */
const MD5_LIMIT = 64 << 20;

/** Runs of one fill byte read as that byte; everything between reads as zeros (zero extents
 *  reported by block status are taken as read). */
async function verifyRuns(node: Awaited<ReturnType<typeof openImage>>, runs: [number, number, string][], id: string, fmt: string, path: string, tmp: string): Promise<void> {
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

function unpack(f: any, dir: string): string {
  for (const file of f.files) fixture(String(file.path).replace(/\.gz$/, ''), dir);
  return fixture(f.open, dir);
}

test('vpc fixtures read with the md5 and virtual size qemu-img reports (qemu-img convert -O raw, qemu-img info)', { skip: SKIP_NO_FIXTURES }, async () => {
  const t = tempDir();
  try {
    for (const f of facts.filter((x) => x.qemu_opens)) {
      const path = unpack(f, t.dir);
      const node = await openImage(path, { readOnly: true, format: 'vpc' });
      try {
        assert.equal(node.size, f.virtual_size, `${f.id}: virtual size`);
        if (f.raw_md5 && node.size <= MD5_LIMIT) assert.equal(await streamMd5(node, 0, node.size), f.raw_md5, `${f.id}: md5`);
        else if (f.raw_md5) await verifyRuns(node, f.raw_nonzero_runs, f.id, 'vpc', path, t.dir);
        for (const [o, l, h] of f.raw_data_ranges_md5 ?? []) assert.equal(await streamMd5(node, o, l), h, `${f.id}: md5 of [${o}, +${l})`);
      } finally {
        await node.close();
      }
    }
  } finally {
    t.cleanup();
  }
});

test('vpc fixtures qemu-img refuses are refused with its message (afl5 Max Table Entries, dfvfs header checksum)', { skip: SKIP_NO_FIXTURES }, async () => {
  const t = tempDir();
  try {
    const refused = facts.filter((x) => !x.qemu_opens);
    assert.ok(refused.length >= 3);
    for (const f of refused) {
      const reason = String(f.qemu_error).replace(/^qemu-img: Could not open '[^']*': /, '');
      await assert.rejects(openImage(unpack(f, t.dir), { readOnly: true, format: 'vpc' }), (e: unknown) => {
        assert.ok(e instanceof BlockError, `${f.id}: a BlockError`);
        assert.ok(e.message.endsWith(reason), `${f.id}: '${e.message}' should end with '${reason}'`);
        return true;
      });
    }
  } finally {
    t.cleanup();
  }
});

test('a fixed VHD probes as raw, as qemu-img probes it (no footer copy at offset 0)', { skip: SKIP_NO_FIXTURES }, async () => {
  const t = tempDir();
  try {
    const f = facts.find((x) => x.id === 'generated/vpc-fixed.vhd');
    const node = await openImage(unpack(f, t.dir), { readOnly: true, warn: () => {} });
    try {
      assert.equal(node.format, f.qemu_probe);
    } finally {
      await node.close();
    }
  } finally {
    t.cleanup();
  }
});

test('vpc block status agrees with qemu-img map on the fixtures (data, zero, host offset)', { skip: SKIP_NO_FIXTURES }, async () => {
  const t = tempDir();
  try {
    for (const f of facts.filter((x) => x.qemu_opens && x.qemu_map && x.virtual_size <= MD5_LIMIT)) {
      const node = await openImage(unpack(f, t.dir), { readOnly: true, format: 'vpc' });
      try {
        for (const m of f.qemu_map) {
          for (let pos = m.start; pos < m.start + m.length; ) {
            const st = await node.blockStatus(pos, m.start + m.length - pos);
            assert.equal(st.data, m.data, `${f.id} at ${pos}: data`);
            assert.equal(st.zero, m.zero, `${f.id} at ${pos}: zero`);
            assert.equal(st.allocated, m.present, `${f.id} at ${pos}: present`);
            if (m.offset !== undefined) assert.equal(st.hostOffset, m.offset + (pos - m.start), `${f.id} at ${pos}: offset`);
            pos += st.length;
          }
        }
      } finally {
        await node.close();
      }
    }
  } finally {
    t.cleanup();
  }
});

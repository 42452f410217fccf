// Every vpc fixture opens and reads through Platter as `qemu-img convert -O raw` / `qemu-img info`
// see it (facts recorded in fixtures.json from qemu-img 7.2), and the images qemu-img refuses are
// refused with qemu-img's message.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openImage } from '../../core/drivers/open.ts';
import { BlockError } from '../../core/errors.ts';
import { MD5_LIMIT, verifyFixtureContent } from '../helpers/fixture-content.ts';
import { fixture, fixtureFacts, HAVE_FIXTURES, SKIP_NO_FIXTURES, tempDir } from '../helpers/qemu.ts';

const facts = HAVE_FIXTURES ? fixtureFacts().filter((f) => f.format === 'vpc') : [];

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
        await verifyFixtureContent(node, f, 'vpc', path, t.dir);
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

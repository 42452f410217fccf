// Malformed VHDX images are refused with a clear BlockError, without a crash, hang or huge
// allocation, and the file is left unchanged, even when opened read-write.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openImage } from '../../core/drivers/open.ts';
import { BlockError } from '../../core/errors.ts';
import { crc32cWithZeroField } from '../../core/util/crc32c.ts';
import { encodeEntry } from '../../core/formats/vhdx/log.ts';
import { assertRefusedUnchanged, createPatched, sha256File } from '../helpers/malformed.ts';
import { tempDir } from '../helpers/qemu.ts';

const H1 = 64 << 10;
const H2 = 128 << 10;
const RT1 = 192 << 10;
const RT_SIZE = 64 << 10;

function fixCrc(b: Buffer, at: number, length: number): void {
  b.writeUInt32LE(crc32cWithZeroField(b.subarray(at, at + length), 4), at + 4);
}

const expectRefusal = (path: string, message: string): Promise<void> => assertRefusedUnchanged({ path, format: 'vhdx', message });

const mutated = (t: ReturnType<typeof tempDir>, name: string, edit: (b: Buffer) => void): Promise<string> =>
  createPatched({ path: t.path(name), format: 'vhdx', size: 4 << 20, options: 'block_size=1M', patch: edit });

test('rejects two headers with bad CRC-32C checksums, and opens with one good header', async () => {
  const t = tempDir();
  try {
    await expectRefusal(await mutated(t, 'a.vhdx', (b) => { b[H1 + 100] ^= 1; b[H2 + 100] ^= 1; }), 'No valid VHDX header found');
    const one = await mutated(t, 'b.vhdx', (b) => { b[H2 + 100] ^= 1; });
    const node = await openImage(one, { readOnly: true, format: 'vhdx' });
    assert.equal(node.size, 4 << 20);
    await node.close();
  } finally {
    t.cleanup();
  }
});

test('rejects a region table whose regions overlap', async () => {
  const t = tempDir();
  try {
    const p = await mutated(t, 'a.vhdx', (b) => {
      // Entry 1 (metadata) moved onto entry 0 (BAT).
      b.writeBigUInt64LE(b.readBigUInt64LE(RT1 + 16 + 16), RT1 + 16 + 32 + 16);
      fixCrc(b, RT1, RT_SIZE);
    });
    await expectRefusal(p, 'overlaps');
    const q = await mutated(t, 'b.vhdx', (b) => {
      b.writeBigUInt64LE(1n << 20n, RT1 + 16 + 16); // the BAT onto the log
      fixCrc(b, RT1, RT_SIZE);
    });
    await expectRefusal(q, 'overlaps the log');
    await expectRefusal(await mutated(t, 'c.vhdx', (b) => { b[RT1 + 40] ^= 1; }), 'bad CRC-32C');
  } finally {
    t.cleanup();
  }
});

test('rejects a log that lies past the end of the file', async () => {
  const t = tempDir();
  try {
    const p = await mutated(t, 'a.vhdx', (b) => {
      for (const h of [H1, H2]) {
        b.writeBigUInt64LE(1n << 40n, h + 72);
        b.fill(0x5a, h + 48, h + 64); // a log GUID: the log must be looked at
        fixCrc(b, h, 4096);
      }
    });
    await expectRefusal(p, 'extends past the end of the file');
  } finally {
    t.cleanup();
  }
});

test('rejects a BAT entry pointing past the end of the file', async () => {
  const t = tempDir();
  try {
    const bat = 2 << 20; // BAT region of a new image with a 1 MiB log
    await expectRefusal(await mutated(t, 'a.vhdx', (b) => b.writeBigUInt64LE((1n << 40n) | 6n, bat)), 'points after end of file');
  } finally {
    t.cleanup();
  }
});

test('rejects a log entry that writes past the end of the file, before replaying anything', async () => {
  const t = tempDir();
  try {
    const logGuid = Buffer.alloc(16, 0x3c);
    const p = await mutated(t, 'a.vhdx', (b) => {
      const entry = encodeEntry(0, 5n, logGuid, b.length, [
        { fileOffset: 2 << 20, data: Buffer.alloc(4096, 1) },
        { fileOffset: 2 ** 40, data: Buffer.alloc(4096, 2) },
      ]);
      entry.copy(b, 1 << 20);
      for (const h of [H1, H2]) {
        logGuid.copy(b, h + 48);
        fixCrc(b, h, 4096);
      }
    });
    const before = sha256File(p);
    await assert.rejects(openImage(p, { readOnly: true, format: 'vhdx' }), /contains a log that needs to be replayed/);
    await assert.rejects(openImage(p, { readOnly: false, format: 'vhdx' }), (e: unknown) => e instanceof BlockError && e.message.includes(`writes [${2 ** 40}, +4096) past the end of the file`));
    assert.equal(sha256File(p), before, 'file unchanged: not even the valid first descriptor was applied');
  } finally {
    t.cleanup();
  }
});

// The blkdebug protocol as the generic layer opens it (core/protocols/blkdebug/index.ts): its
// name forms, an injected errno surfacing with strerror's text, `none` rules in force from the
// open, events a format raises reaching it, its limits, and data on it never read past it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { createImage } from '../../core/drivers/create.ts';
import { BlockError } from '../../core/errors.ts';
import { tempDir } from '../helpers/qemu.ts';

const MiB = 1 << 20;
const SECTOR = 512;
const quiet = { warn: () => {} };
const t = tempDir('platter-blkdebug-');
test.after(() => t.cleanup());

function rawFile(name: string, size = MiB): string {
  const path = t.path(name);
  writeFileSync(path, Buffer.alloc(size, 0x2a));
  return path;
}

/** A json: name of blkdebug over `image` with these inject-error rules. */
function blkdebugJson(image: string, rules: object[], extra: object = {}): string {
  return `json:${JSON.stringify({ driver: 'raw', file: { driver: 'blkdebug', image: { driver: 'file', filename: image }, 'inject-error': rules, ...extra } })}`;
}

const isError = (kind: string, message: RegExp) => (e: unknown) => e instanceof BlockError && e.kind === kind && message.test(e.message);

test("a rule on 'none' is in force from the open: the sector it names fails with its errno's text, others read", async () => {
  const path = rawFile('none.raw');
  const node = await openImage(blkdebugJson(path, [{ event: 'none', iotype: 'read', sector: 8, errno: 28 }]), { readOnly: true, ...quiet });
  try {
    assert.equal((await node.read(0, 8 * SECTOR)).length, 8 * SECTOR);
    await assert.rejects(node.read(7 * SECTOR, 2 * SECTOR), isError('Io', /^No space left on device$/));
    assert.equal((await node.read(9 * SECTOR, SECTOR))[0], 0x2a);
  } finally {
    await node.close();
  }
});

test('blkdebug:CONFIG:IMAGE and blkdebug::IMAGE open the image through the filter; a name without the second colon is refused', async () => {
  const path = rawFile('named.raw');
  const conf = t.path('named.conf');
  writeFileSync(conf, '[inject-error]\nevent = "none"\niotype = "write"\n');
  const withConfig = await openImage(`blkdebug:${conf}:${path}`, { format: 'raw', ...quiet });
  try {
    assert.equal(withConfig.file?.driver.name, 'blkdebug');
    assert.equal(withConfig.file?.file?.driver.name, 'file');
    await assert.rejects(withConfig.write(0, Buffer.alloc(SECTOR)), isError('Io', /^Input\/output error$/));
  } finally {
    await withConfig.close();
  }
  const empty = await openImage(`blkdebug::${path}`, { format: 'raw', readOnly: true, ...quiet });
  await empty.close();
  await assert.rejects(openImage(`blkdebug:${path}`, { format: 'raw', readOnly: true, ...quiet }), isError('InvalidArgument', /blkdebug requires both config file and image path$/));
  await assert.rejects(openImage(`blkdebug:${t.path('missing.conf')}:${path}`, { format: 'raw', readOnly: true, ...quiet }), isError('NotFound', /Could not read blkdebug config file: No such file or directory$/));
});

test('events a format raises reach the blkdebug node under it: read_aio fails the data read, not the metadata reads before it', async () => {
  const path = t.path('events.qcow2');
  await createImage({ format: 'qcow2', filename: path, size: 4 * MiB, ...quiet });
  const w = await openImage(path, { format: 'qcow2', ...quiet });
  await w.write(0, Buffer.alloc(64 << 10, 1));
  await w.close();
  const conf = t.path('events.conf');
  writeFileSync(conf, '[inject-error]\nevent = "read_aio"\nerrno = "5"\n');
  const node = await openImage(`blkdebug:${conf}:${path}`, { format: 'qcow2', readOnly: true, ...quiet });
  try {
    // Unallocated: zeros, no read_aio, no error.
    assert.ok((await node.read(MiB, SECTOR)).every((b) => b === 0));
    await assert.rejects(node.read(0, SECTOR), isError('Io', /^Input\/output error$/));
    // In force from then on, for every request.
    await assert.rejects(node.read(MiB, SECTOR).then(() => node.file!.read(0, SECTOR)), isError('Io', /^Input\/output error$/));
  } finally {
    await node.close();
  }
});

test('block status never names a node under blkdebug as the place to read data from (reads must meet its rules)', async () => {
  const path = t.path('status.qcow2');
  await createImage({ format: 'qcow2', filename: path, size: MiB, ...quiet });
  const w = await openImage(path, { format: 'qcow2', ...quiet });
  await w.write(0, Buffer.alloc(64 << 10, 1));
  await w.close();
  const plain = await openImage(path, { format: 'qcow2', readOnly: true, ...quiet });
  const filtered = await openImage(`blkdebug::${path}`, { format: 'qcow2', readOnly: true, ...quiet });
  try {
    assert.ok((await plain.blockStatus(0, MiB)).hostNode, 'a plain file is named');
    const st = await filtered.blockStatus(0, MiB);
    assert.equal(st.data, true);
    assert.equal(st.hostNode, undefined);
  } finally {
    await plain.close();
    await filtered.close();
  }
});

test("limits: align is the request alignment, bad limits and unknown options fail in QEMU's words", async () => {
  const path = rawFile('limits.raw');
  const aligned = await openImage(blkdebugJson(path, [], { align: 4096, 'max-transfer': 65536 }), { readOnly: true, ...quiet });
  try {
    assert.equal(aligned.file?.alignment, 4096);
    assert.equal((await aligned.read(100, 10)).length, 10);
  } finally {
    await aligned.close();
  }
  await assert.rejects(openImage(blkdebugJson(path, [], { align: 3000 }), { readOnly: true, ...quiet }), isError('InvalidArgument', /Cannot meet constraints with align 3000$/));
  await assert.rejects(openImage(blkdebugJson(path, [], { align: 4096, 'max-transfer': 6000 }), { readOnly: true, ...quiet }), isError('InvalidArgument', /Cannot meet constraints with max-transfer 6000$/));
  await assert.rejects(openImage(blkdebugJson(path, [], { bogus: 1 }), { readOnly: true, ...quiet }), isError('InvalidArgument', /Block protocol 'blkdebug' doesn't support the option 'bogus'$/));
});

test('a flush rule fails the flush of the image above; write-zeroes below opt-write-zero are writes to the rules', async () => {
  const path = rawFile('flush.raw');
  const node = await openImage(blkdebugJson(path, [{ event: 'none', iotype: 'flush' }, { event: 'none', iotype: 'write', sector: 1 }], { 'opt-write-zero': 4096 }), { ...quiet });
  try {
    await assert.rejects(node.flush(), isError('Io', /^Input\/output error$/));
    await assert.rejects(node.writeZeroes(SECTOR, SECTOR), isError('Io', /^Input\/output error$/));
    await node.writeZeroes(2 * SECTOR, SECTOR);
    assert.ok((await node.read(2 * SECTOR, SECTOR)).every((b) => b === 0));
  } finally {
    await node.close().catch(() => {});
  }
});

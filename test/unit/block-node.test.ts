// The generic request layer: bounds, read-only, alignment (read-modify-write), splitting at
// maxTransfer, default capabilities, and backing-chain block status. A small in-memory driver
// stands in for a format here: what is under test is the layer above every driver.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockNode, blockStatusAbove } from '../../core/block/node.ts';
import type { FormatDriver, NodeImpl, BlockStatus } from '../../core/block/types.ts';
import { BlockError } from '../../core/errors.ts';

class MemoryImpl implements NodeImpl {
  readonly data: Buffer;
  readonly calls: string[] = [];
  constructor(size: number, readonly alignment = 1, readonly maxTransfer?: number, readonly allocated?: [number, number][]) {
    this.data = Buffer.alloc(size);
  }
  get size() {
    return this.data.length;
  }
  async read(offset: number, length: number) {
    this.calls.push(`read ${offset} ${length}`);
    assert.equal(offset % this.alignment, 0, 'read offset aligned');
    assert.equal(length % this.alignment, 0, 'read length aligned');
    return Buffer.from(this.data.subarray(offset, offset + length));
  }
  async write(offset: number, data: Buffer) {
    this.calls.push(`write ${offset} ${data.length}`);
    assert.equal(offset % this.alignment, 0, 'write offset aligned');
    assert.equal(data.length % this.alignment, 0, 'write length aligned');
    data.copy(this.data, offset);
  }
  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    if (!this.allocated) return { offset, length, data: true, zero: false, allocated: true };
    for (const [s, e] of this.allocated) {
      if (offset >= s && offset < e) return { offset, length: Math.min(length, e - offset), data: true, zero: false, allocated: true };
    }
    const next = Math.min(offset + length, ...this.allocated.filter(([s]) => s > offset).map(([s]) => s));
    return { offset, length: next - offset, data: false, zero: false, allocated: false };
  }
  async close() {}
}

const driver: FormatDriver = { kind: 'format', name: 'memory', description: 'test', createOptions: [], open: async () => { throw new Error('unused'); } };
const node = (impl: NodeImpl, readOnly = false) => new BlockNode({ driver, impl, filename: 'mem', readOnly });

test('unaligned writes become aligned read-modify-write and keep neighbouring bytes', async () => {
  const impl = new MemoryImpl(4096, 512);
  impl.data.fill(0xaa);
  const n = node(impl);
  await n.write(100, Buffer.alloc(1000, 0x11));
  assert.equal(impl.data[99], 0xaa);
  assert.equal(impl.data[100], 0x11);
  assert.equal(impl.data[1099], 0x11);
  assert.equal(impl.data[1100], 0xaa);
  assert.deepEqual((await n.read(98, 4)), Buffer.from([0xaa, 0xaa, 0x11, 0x11]));
});

test('concurrent unaligned writes into one sector do not lose each other', async () => {
  const impl = new MemoryImpl(1024, 512);
  const n = node(impl);
  await Promise.all([n.write(0, Buffer.alloc(10, 1)), n.write(10, Buffer.alloc(10, 2)), n.write(20, Buffer.alloc(10, 3))]);
  assert.equal(impl.data[5], 1);
  assert.equal(impl.data[15], 2);
  assert.equal(impl.data[25], 3);
});

test('requests past the end, negative or non-integer are refused before reaching the driver', async () => {
  const impl = new MemoryImpl(1024);
  const n = node(impl);
  await assert.rejects(n.read(1000, 100), (e: unknown) => e instanceof BlockError && /beyond the end/.test(e.message));
  await assert.rejects(n.read(-1, 1), (e: unknown) => e instanceof BlockError && e.kind === 'InvalidArgument');
  await assert.rejects(n.write(0.5, Buffer.alloc(1)), (e: unknown) => e instanceof BlockError && e.kind === 'InvalidArgument');
  assert.deepEqual(impl.calls, []);
});

test('a read-only node refuses writes, zero writes, discards and truncation', async () => {
  const n = node(new MemoryImpl(1024), true);
  for (const op of [() => n.write(0, Buffer.alloc(1)), () => n.writeZeroes(0, 10), () => n.discard(0, 512), () => n.truncate(2048)]) {
    await assert.rejects(op(), (e: unknown) => e instanceof BlockError && e.kind === 'Permission');
  }
});

test('large requests are split at maxTransfer', async () => {
  const impl = new MemoryImpl(8192, 1, 3000);
  const n = node(impl);
  await n.write(0, Buffer.alloc(8192, 7));
  assert.deepEqual(impl.calls, ['write 0 3000', 'write 3000 3000', 'write 6000 2192']);
  const r = await n.read(0, 8192);
  assert.equal(r.length, 8192);
  assert.ok(r.every((b) => b === 7));
});

test('writeZeroes without driver support writes zeros, unaligned edges included', async () => {
  const impl = new MemoryImpl(4096, 512);
  impl.data.fill(0xff);
  const n = node(impl);
  await n.writeZeroes(300, 2000);
  assert.equal(impl.data[299], 0xff);
  assert.ok(impl.data.subarray(300, 2300).every((b) => b === 0));
  assert.equal(impl.data[2300], 0xff);
});

test('resizing a format without truncate says the format cannot, and shrinking needs --shrink', async () => {
  const n = node(new MemoryImpl(1024));
  await assert.rejects(n.truncate(2048), /Image format driver does not support resize/);
});

test('blockStatusAbove descends into backing nodes for unallocated ranges and reports depth', async () => {
  const base = node(new MemoryImpl(4096), true);
  const top = node(new MemoryImpl(4096, 1, undefined, [[0, 1024]]));
  top.backing = base;
  const a = await blockStatusAbove(top, 0, 4096);
  assert.equal(a.depth, 0);
  assert.equal(a.length, 1024);
  const b = await blockStatusAbove(top, 1024, 3072);
  assert.equal(b.depth, 1);
  assert.equal(b.allocated, true);
  assert.equal(b.length, 3072);
});

test('closing a node twice is harmless and further I/O is refused', async () => {
  const n = node(new MemoryImpl(512));
  await n.close();
  await n.close();
  await assert.rejects(n.read(0, 1), /closed/);
});

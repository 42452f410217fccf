// The quorum driver (core/protocols/quorum): reads by majority vote over its children (or the
// first that answers, read-pattern=fifo), writes to all, enough of them taking it; its option
// checks in QEMU's words; and no directory for relative names below it (iotest 110).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { openImage } from '../../core/drivers/open.ts';
import { BlockError } from '../../core/errors.ts';
import { tempDir } from '../helpers/qemu.ts';

const SIZE = 64 << 10;
const quiet = { warn: () => {} };
const t = tempDir('platter-quorum-');
test.after(() => t.cleanup());

function files(...fills: number[]): string[] {
  return fills.map((fill, i) => {
    const path = t.path(`c${i}-${fill}-${Math.random().toString(36).slice(2)}.raw`);
    writeFileSync(path, Buffer.alloc(SIZE, fill));
    return path;
  });
}

function quorum(paths: string[], extra: object): string {
  return `json:${JSON.stringify({ driver: 'raw', file: { driver: 'quorum', children: paths.map((filename) => ({ driver: 'file', filename })), ...extra } })}`;
}

const isError = (message: RegExp) => (e: unknown) => e instanceof BlockError && message.test(e.message);

test('two of three children agreeing win a read at vote-threshold 2; at 3 the read fails', async () => {
  const paths = files(1, 1, 9);
  const two = await openImage(quorum(paths, { 'vote-threshold': 2 }), { readOnly: true, ...quiet });
  try {
    assert.ok((await two.read(0, 4096)).every((b) => b === 1));
  } finally {
    await two.close();
  }
  const three = await openImage(quorum(paths, { 'vote-threshold': 3 }), { readOnly: true, ...quiet });
  try {
    await assert.rejects(three.read(0, 4096), isError(/^Input\/output error$/));
  } finally {
    await three.close();
  }
});

test('read-pattern=fifo reads the first child; rewrite-corrupted writes the winner over the child that disagreed', async () => {
  const fifoPaths = files(7, 1, 1);
  const fifo = await openImage(quorum(fifoPaths, { 'vote-threshold': 2, 'read-pattern': 'fifo' }), { readOnly: true, ...quiet });
  try {
    assert.ok((await fifo.read(0, 512)).every((b) => b === 7));
  } finally {
    await fifo.close();
  }
  const paths = files(1, 1, 9);
  const node = await openImage(quorum(paths, { 'vote-threshold': 2, 'rewrite-corrupted': true }), { ...quiet });
  try {
    await node.read(0, 4096);
  } finally {
    await node.close();
  }
  assert.ok(readFileSync(paths[2]!).subarray(0, 4096).every((b) => b === 1));
  assert.ok(readFileSync(paths[2]!).subarray(4096).every((b) => b === 9));
});

test('a write reaches every child', async () => {
  const paths = files(0, 0);
  const node = await openImage(quorum(paths, { 'vote-threshold': 2 }), { ...quiet });
  try {
    await node.write(512, Buffer.alloc(512, 5));
  } finally {
    await node.close();
  }
  for (const p of paths) assert.ok(readFileSync(p).subarray(512, 1024).every((b) => b === 5));
});

test("option checks in QEMU's words; children of different sizes are refused", async () => {
  const paths = files(0, 0);
  const open = (extra: object, p = paths) => openImage(quorum(p, extra), { readOnly: true, ...quiet });
  await assert.rejects(open({}), isError(/Parameter 'vote-threshold' expects a value >= 1$/));
  await assert.rejects(open({ 'vote-threshold': 3 }), isError(/threshold may not exceed children count$/));
  await assert.rejects(open({ 'vote-threshold': 1, 'read-pattern': 'random' }), isError(/Please set read-pattern as fifo or quorum$/));
  await assert.rejects(open({ 'vote-threshold': 1, blkverify: true }), isError(/blkverify=on can only be set if there are exactly two files and vote-threshold is 2$/));
  const odd = t.path('odd.raw');
  writeFileSync(odd, Buffer.alloc(SIZE / 2));
  await assert.rejects(open({ 'vote-threshold': 1 }, [paths[0]!, odd]), isError(/Could not refresh total sector count: Input\/output error$/));
});

test('there is no single file below a quorum: no directory for relative backing names', async () => {
  const paths = files(0, 0);
  const node = await openImage(quorum(paths, { 'vote-threshold': 1 }), { readOnly: true, ...quiet });
  try {
    assert.equal(node.file?.driver.name, 'quorum');
    assert.equal(node.baseFile, undefined);
  } finally {
    await node.close();
  }
});

// What a sheep daemon sends is checked before use: a fake server (127.0.0.1, random port) that
// answers wrongly on purpose. A real daemon cannot be made to send these; the real one is
// test/interop/sheepdog-dog.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { SheepdogClient } from '../../core/protocols/sheepdog/client.ts';
import { lookupVdi, readInode } from '../../core/protocols/sheepdog/vdi.ts';
import { SD_INODE_HEADER_SIZE } from '../../core/protocols/sheepdog/proto.ts';

/** A server that reads 48-byte headers (and their payloads) and lets `answer` reply. */
async function fakeSheep(answer: (req: Buffer, sock: Socket) => void): Promise<{ port: number; server: Server }> {
  const server = createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 48) {
        const flags = buf.readUInt16LE(2);
        const len = flags & 1 ? buf.readUInt32LE(12) : 0;
        if (buf.length < 48 + len) return;
        const req = buf.subarray(0, 48);
        buf = buf.subarray(48 + len);
        answer(Buffer.from(req), sock);
      }
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  return { port: typeof a === 'object' && a ? a.port : 0, server };
}

function rsp(req: Buffer, f: { result?: number; dataLength?: number; vdiId?: number; id?: number; opcode?: number }): Buffer {
  const h = Buffer.alloc(48);
  h.writeUInt8(1, 0);
  h.writeUInt8(f.opcode ?? req.readUInt8(1), 1);
  h.writeUInt32LE(f.id ?? req.readUInt32LE(8), 8);
  h.writeUInt32LE(f.dataLength ?? 0, 12);
  h.writeUInt32LE(f.result ?? 0, 16);
  h.writeUInt32LE(f.vdiId ?? 0, 24);
  return h;
}

async function withFake(answer: (req: Buffer, sock: Socket) => void, run: (c: SheepdogClient) => Promise<void>, timeoutMs = 2000): Promise<void> {
  const { port, server } = await fakeSheep(answer);
  const c = await SheepdogClient.connect({ type: 'inet', host: '127.0.0.1', port }, timeoutMs);
  try {
    await run(c);
  } finally {
    await c.close();
    server.close();
  }
}

test('a response longer than the request allows is refused (not read into memory)', async () => {
  await withFake((req, s) => s.write(rsp(req, { dataLength: 1 << 30, vdiId: 5 })), async (c) => {
    await assert.rejects(lookupVdi(c, 'v', 0, '', false), /sent 1073741824 bytes for a request of 0/);
  });
});

test('a response to a request never sent, or with another opcode, is refused', async () => {
  await withFake((req, s) => s.write(rsp(req, { id: 999, vdiId: 5 })), async (c) => {
    await assert.rejects(lookupVdi(c, 'v', 0, '', false), /answered request 999, which was not asked/);
  });
  await withFake((req, s) => s.write(rsp(req, { opcode: 0x02, vdiId: 5 })), async (c) => {
    await assert.rejects(lookupVdi(c, 'v', 0, '', false), /with opcode 0x2 \(asked 0x14\)/);
  });
});

test('vdi ids outside the 24-bit space are refused', async () => {
  await withFake((req, s) => s.write(rsp(req, { vdiId: 1 << 24 })), async (c) => {
    await assert.rejects(lookupVdi(c, 'v', 0, '', false), /answered vdi id 16777216/);
  });
});

test('a short object read and an inode naming another vdi are refused', async () => {
  await withFake((req, s) => {
    const len = req.readUInt32LE(12);
    s.write(rsp(req, { dataLength: len - 1 }));
    s.write(Buffer.alloc(len - 1));
  }, async (c) => {
    await assert.rejects(readInode(c, 7, 'v'), /returned 4663 bytes of object 8000000700000000 \(asked 4664\)/);
  });
  await withFake((req, s) => {
    const len = req.readUInt32LE(12);
    const inode = Buffer.alloc(len);
    inode.writeUInt8(22, 555);
    inode.writeUInt32LE(8, 560);
    s.write(rsp(req, { dataLength: len }));
    s.write(inode);
  }, async (c) => {
    await assert.rejects(readInode(c, 7, 'v'), /invalid inode \(vdi_id 8 in the object of 7\)/);
  });
  // An object table entry beyond the vdi id space.
  await withFake((req, s) => {
    const len = req.readUInt32LE(12);
    const body = Buffer.alloc(len);
    if (req.readBigUInt64LE(40) === 0n) {
      body.writeUInt8(22, 555);
      body.writeUInt32LE(7, 560);
      body.writeBigUInt64LE(8n << 20n, 536);
    } else {
      assert.equal(req.readBigUInt64LE(40), BigInt(SD_INODE_HEADER_SIZE));
      body.writeUInt32LE(0xffffffff, 4);
    }
    s.write(rsp(req, { dataLength: len }));
    s.write(body);
  }, async (c) => {
    await assert.rejects(readInode(c, 7, 'v'), /object 1 names vdi ffffffff, beyond the vdi id space/);
  });
});

test('a server that never answers: the request fails after the timeout', async () => {
  const t0 = Date.now();
  await withFake(() => {}, async (c) => {
    await assert.rejects(lookupVdi(c, 'v', 0, '', false), /did not answer within 300 ms/);
  }, 300);
  assert.ok(Date.now() - t0 < 5000);
});

test('a server result code is reported in QEMU 5.2 words', async () => {
  await withFake((req, s) => s.write(rsp(req, { result: 0x08 })), async (c) => {
    await assert.rejects(lookupVdi(c, 'disk', 0, 'gold', false), /^BlockError: cannot get vdi info, No vdi found, disk snapshot 'gold'$/m);
  });
});

// The sheepdog names of QEMU 5.2 (block/sheepdog.c sd_parse_uri, parse_vdiname and the
// driver's options): every form turned into one target, bad ones refused in QEMU's words; and
// the wire codecs' checks of what a server sends (proto.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSheepdogFilename, sheepdogTarget } from '../../core/protocols/sheepdog/address.ts';
import { decodeInodeHeader, encodeRequest, SD_INODE_HEADER_SIZE, vdiOid, dataOid, SD_OP_READ_OBJ, objFields } from '../../core/protocols/sheepdog/proto.ts';

const target = (name: string) => sheepdogTarget({ filename: name });

test('URI forms: host, port (default 7000), vdi, snapshot id or tag', () => {
  assert.deepEqual(target('sheepdog:///disk'), { server: { type: 'inet', host: 'localhost', port: 7000 }, vdi: 'disk', snapId: 0, tag: '' });
  assert.deepEqual(target('sheepdog://10.0.0.5:7001/disk#3'), { server: { type: 'inet', host: '10.0.0.5', port: 7001 }, vdi: 'disk', snapId: 3, tag: '' });
  assert.deepEqual(target('sheepdog+tcp://host/disk#gold'), { server: { type: 'inet', host: 'host', port: 7000 }, vdi: 'disk', snapId: 0, tag: 'gold' });
  assert.deepEqual(target('sheepdog+unix:///disk?socket=/run/sheep.sock'), { server: { type: 'unix', path: '/run/sheep.sock' }, vdi: 'disk', snapId: 0, tag: '' });
  assert.deepEqual(target('sheepdog://[::1]:7002/d'), { server: { type: 'inet', host: '::1', port: 7002 }, vdi: 'd', snapId: 0, tag: '' });
});

test('legacy forms: sheepdog:[HOST:PORT:]VDI[:SNAPID|:TAG]', () => {
  assert.deepEqual(target('sheepdog:disk'), { server: { type: 'inet', host: 'localhost', port: 7000 }, vdi: 'disk', snapId: 0, tag: '' });
  assert.deepEqual(target('sheepdog:disk:gold'), { server: { type: 'inet', host: 'localhost', port: 7000 }, vdi: 'disk', snapId: 0, tag: 'gold' });
  assert.deepEqual(target('sheepdog:disk:2'), { server: { type: 'inet', host: 'localhost', port: 7000 }, vdi: 'disk', snapId: 2, tag: '' });
  assert.deepEqual(target('sheepdog:127.0.0.1:7005:disk'), { server: { type: 'inet', host: '127.0.0.1', port: 7005 }, vdi: 'disk', snapId: 0, tag: '' });
  assert.deepEqual(target('sheepdog:127.0.0.1:7005:disk:gold'), { server: { type: 'inet', host: '127.0.0.1', port: 7005 }, vdi: 'disk', snapId: 0, tag: 'gold' });
});

test('--image-opts: server.*, vdi, snap-id, tag', () => {
  assert.deepEqual(sheepdogTarget({ server: { type: 'inet', host: 'h', port: '7010' }, vdi: 'v', tag: 't' }), { server: { type: 'inet', host: 'h', port: 7010 }, vdi: 'v', snapId: 0, tag: 't' });
  assert.deepEqual(sheepdogTarget({ server: { type: 'unix', path: '/s' }, vdi: 'v', 'snap-id': '4' }), { server: { type: 'unix', path: '/s' }, vdi: 'v', snapId: 4, tag: '' });
  assert.deepEqual(sheepdogTarget({ vdi: 'v' }).server, { type: 'inet', host: 'localhost', port: 7000 });
});

test('bad names and options are refused with a reason', () => {
  const bad: [string, RegExp][] = [
    ['sheepdog://host/', /missing file path in URI/],
    ['sheepdog+rdma://host/x', /URI scheme must be 'sheepdog', 'sheepdog\+tcp', or 'sheepdog\+unix'/],
    ['sheepdog+unix:///x', /requires query parameter 'socket'/],
    ['sheepdog+unix://host/x?socket=/s', /doesn't accept a server address/],
    ['sheepdog://host/x?socket=/s', /unexpected query parameters/],
    ['sheepdog://host/x#0', /'0' is not a valid snapshot ID/],
    ['sheepdog://host/x#99999999999', /is not a valid snapshot ID/],
    [`sheepdog://host/${'a'.repeat(256)}`, /VDI name is too long/],
    [`sheepdog://host/x#${'t'.repeat(256)}`, /is not a valid snapshot ID/],
  ];
  for (const [name, re] of bad) assert.throws(() => target(name), re, name);
  assert.throws(() => sheepdogTarget({ vdi: 'v', 'snap-id': '2', tag: 't' }), /cannot be used at the same time/);
  assert.throws(() => sheepdogTarget({ server: { type: 'inet', host: 'h' } }), /'vdi' is missing/);
  assert.throws(() => sheepdogTarget({ vdi: 'v', bogus: '1' }), /Invalid parameter 'bogus'/);
  assert.throws(() => sheepdogTarget({ vdi: 'v', server: { type: 'inet', host: 'h', port: '70000' } }), /Invalid sheepdog server port/);
  assert.throws(() => sheepdogTarget({ vdi: 'v', server: { type: 'vsock' } }), /does not accept value 'vsock'/);
  assert.deepEqual(parseSheepdogFilename('sheepdog://h:1/v#t'), { vdi: 'v', server: { type: 'inet', host: 'h', port: '1' }, tag: 't' });
});

test('object ids and the request header layout (48 bytes, little-endian)', () => {
  assert.equal(vdiOid(0x7c2b25), 0x807c2b2500000000n);
  assert.equal(dataOid(0x7c2b25, 5), 0x007c2b2500000005n);
  const h = encodeRequest({ opcode: SD_OP_READ_OBJ, flags: 0, dataLength: 4096, fill: objFields(dataOid(1, 2), 0n, 1, 0, 8192) }, 9);
  assert.equal(h.length, 48);
  assert.equal(h[0], 1);
  assert.equal(h[1], SD_OP_READ_OBJ);
  assert.equal(h.readUInt32LE(8), 9);
  assert.equal(h.readUInt32LE(12), 4096);
  assert.equal(h.readBigUInt64LE(16), dataOid(1, 2));
  assert.equal(h.readUInt8(32), 1);
  assert.equal(h.readBigUInt64LE(40), 8192n);
});

test('inode headers from the server are checked before use', () => {
  const good = Buffer.alloc(SD_INODE_HEADER_SIZE);
  good.write('disk', 0);
  good.writeBigUInt64LE(8n << 20n, 536);
  good.writeUInt8(1, 554);
  good.writeUInt8(22, 555);
  good.writeUInt32LE(0x1234, 560);
  const h = decodeInodeHeader(good, 0x1234, 'disk');
  assert.equal(h.name, 'disk');
  assert.equal(h.vdiSize, 8 << 20);
  const mutate = (f: (b: Buffer) => void) => {
    const b = Buffer.from(good);
    f(b);
    return b;
  };
  assert.throws(() => decodeInodeHeader(good, 0x1235, 'disk'), /invalid inode \(vdi_id 1234 in the object of 1235\)/);
  assert.throws(() => decodeInodeHeader(good.subarray(0, 100), 0x1234, 'disk'), /short read/);
  assert.throws(() => decodeInodeHeader(mutate((b) => b.writeUInt8(40, 555)), 0x1234, 'disk'), /block_size_shift 40/);
  assert.throws(() => decodeInodeHeader(mutate((b) => b.writeBigUInt64LE(1n << 60n, 536)), 0x1234, 'disk'), /beyond 1048576 objects/);
  assert.throws(() => decodeInodeHeader(mutate((b) => b.writeUInt8(1, 553)), 0x1234, 'disk'), /hyper volume/);
  assert.throws(() => decodeInodeHeader(mutate((b) => b.writeUInt32LE(1 << 24, 564)), 0x1234, 'disk'), /parent_vdi_id/);
  // An old inode without an object size: 4 MiB objects.
  assert.equal(decodeInodeHeader(mutate((b) => b.writeUInt8(0, 555)), 0x1234, 'disk').blockSizeShift, 22);
});

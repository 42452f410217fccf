// The iSCSI initiator's pure parts: the CRC32C header digest against RFC 3720 B.4's vectors,
// PDU framing (digest checked, padding, split chunks), text keys, the URL form and its
// environment credentials, QEMU's option checks and messages, the json: name without the
// password, CHAP binary values and sense text as libiscsi words it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c, crc32cDigest } from '../../core/protocols/iscsi/crc32c.ts';
import { encodeKeys, encodePdu, newBhs, OP, parseKeys, PduFramer, type Pdu } from '../../core/protocols/iscsi/pdu.ts';
import { jsonName, parseIscsiUrl, parsePortal, readSettings, redactUrl } from '../../core/protocols/iscsi/options.ts';
import { decodeChapBinary, encodeLun } from '../../core/protocols/iscsi/session.ts';
import { parseCapacity10, parseCapacity16, parseLbaStatus, parseSense, senseText, unmapParameters } from '../../core/protocols/iscsi/scsi.ts';
import { BlockError } from '../../core/errors.ts';

const rejects = (f: () => unknown, message: string) => assert.throws(f, (e: unknown) => e instanceof BlockError && e.message === message, `expected "${message}"`);

test('CRC32C equals RFC 3720 B.4 vectors (and the check value of "123456789")', () => {
  assert.equal(crc32c(Buffer.alloc(32)), 0x8a9136aa);
  assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
  assert.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i))), 0x46dd794e);
  assert.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i))), 0x113fdb5c);
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  // On the wire least significant byte first: B.4 prints 32 zero bytes' CRC as aa 36 91 8a.
  assert.deepEqual([...crc32cDigest(Buffer.alloc(32))], [0xaa, 0x36, 0x91, 0x8a]);
});

test('a PDU with a header digest and padded data survives framing one byte at a time; a bad digest is refused', () => {
  const bhs = newBhs(OP.TEXT_RSP);
  bhs.writeUInt32BE(7, 16);
  const data = encodeKeys([['TargetName', 'iqn.x:y']]);
  const wire = Buffer.concat(encodePdu(bhs, data, true));
  assert.equal(wire.length % 4, 0);
  const got: Pdu[] = [];
  const f = new PduFramer((p) => got.push(p));
  f.headerDigest = true;
  for (const b of wire) f.push(Buffer.from([b]));
  assert.equal(got.length, 1);
  assert.deepEqual(parseKeys(got[0]!.data), [['TargetName', 'iqn.x:y']]);
  const bad = Buffer.from(wire);
  bad[20] ^= 1;
  const g = new PduFramer(() => {});
  g.headerDigest = true;
  assert.throws(() => g.push(bad), /header digest mismatch/);
});

test('a data segment longer than negotiated is a protocol error, not an allocation', () => {
  const f = new PduFramer(() => {});
  f.maxSegment = 1024;
  const bhs = newBhs(OP.DATA_IN);
  bhs.writeUIntBE(1 << 20, 5, 3);
  assert.throws(() => f.push(bhs), /more than negotiated/);
});

/** A socket's reads as the session does them: readTarget() first, else nextReadSize() bytes (or
 *  everything) into a receive buffer; returns how many bytes went straight into place. */
function feedLikeTheSession(f: PduFramer, wire: Buffer, maxRead: number): number {
  let off = 0;
  let inPlace = 0;
  while (off < wire.length) {
    const target = f.readTarget();
    if (target) {
      const n = Math.min(target.length, maxRead, wire.length - off);
      wire.copy(target, 0, off, off + n);
      f.receivedInPlace(n);
      inPlace += n;
      off += n;
      continue;
    }
    const n = Math.min(f.nextReadSize() ?? maxRead, maxRead, wire.length - off);
    const recv = Buffer.from(wire.subarray(off, off + n));
    f.push(recv);
    recv.fill(0xdd); // the receive buffer is reused: the framer must not keep views of it
    off += n;
  }
  return inPlace;
}

test('Data-In segments are read straight into the reader\'s buffer: header reads, then the segment; padding, digests and other PDUs in between', () => {
  for (const digest of [false, true]) {
    const dest = Buffer.alloc(3 * 65536 + 6);
    const want = Buffer.from(Array.from({ length: dest.length }, (_, i) => (i * 7) & 0xff));
    const pdus: Buffer[] = [];
    // Three Data-In PDUs for the buffer (the last 65542 bytes: padded), a NOP-In between.
    for (const [off, len] of [[0, 65536], [65536, 65536], [131072, 65542]] as const) {
      const bhs = newBhs(OP.DATA_IN);
      bhs.writeUInt32BE(9, 16);
      bhs.writeUInt32BE(off, 40);
      pdus.push(...encodePdu(bhs, want.subarray(off, off + len), digest));
      if (off === 65536) pdus.push(...encodePdu(newBhs(OP.NOP_IN), Buffer.from('ping'), digest));
    }
    const wire = Buffer.concat(pdus);
    for (const maxRead of [1000, 65536, 1 << 20]) {
      dest.fill(0);
      const got: Pdu[] = [];
      const f = new PduFramer((p) => got.push(p));
      f.headerDigest = digest;
      f.borrowed = true;
      f.sink = (bhs) => (bhs[0] === OP.DATA_IN ? dest.subarray(bhs.readUInt32BE(40), bhs.readUInt32BE(40) + bhs.readUIntBE(5, 3)) : undefined);
      const inPlace = feedLikeTheSession(f, wire, maxRead);
      assert.deepEqual(got.map((p) => p.bhs[0]! & 0x3f), [OP.DATA_IN, OP.DATA_IN, OP.NOP_IN, OP.DATA_IN], `digest ${digest}, reads of ${maxRead}`);
      assert.ok(dest.equals(want), `digest ${digest}, reads of ${maxRead}: the data`);
      assert.equal(got[2]!.data.toString(), 'ping');
      // Reads into the receive buffer stop where the header or PDU under way ends.
      assert.equal(inPlace, dest.length, `digest ${digest}, reads of ${maxRead}: every segment read in place`);
    }
  }
});

test('a reader giving up on a buffer the socket reads into is told so (the session then drops the connection); bytes beyond the segment are refused', () => {
  const dest = Buffer.alloc(65536);
  const f = new PduFramer(() => {});
  f.sink = () => dest;
  const bhs = newBhs(OP.DATA_IN);
  bhs.writeUIntBE(dest.length, 5, 3);
  f.push(bhs);
  const target = f.readTarget();
  assert.ok(target && target.buffer === dest.buffer && target.length === dest.length);
  assert.equal(f.release(dest), true, 'lent to the socket');
  assert.equal(f.release(Buffer.alloc(16)), false, 'another buffer');
  const g = new PduFramer(() => {});
  g.sink = () => dest;
  g.push(bhs);
  assert.equal(g.release(dest), false, 'not lent: the rest goes to a scratch buffer');
  const h = new PduFramer(() => {});
  h.sink = () => dest;
  h.push(bhs);
  h.readTarget();
  assert.throws(() => h.receivedInPlace(dest.length + 1), /outside the data segment/);
});

test('URL: user%password, port, target and LUN become QEMU\'s options; the environment supplies CHAP only without a user in the URL', () => {
  assert.deepEqual(parseIscsiUrl('iscsi://10.0.0.1/iqn.a:b/3', {}), { transport: 'tcp', portal: '10.0.0.1', target: 'iqn.a:b', lun: '3' });
  assert.deepEqual(parseIscsiUrl('iscsi://u%p@h:3261/iqn.a:b/1', {}), { transport: 'tcp', portal: 'h:3261', target: 'iqn.a:b', lun: '1', user: 'u', password: 'p' });
  assert.deepEqual(parseIscsiUrl('iscsi://h/t/0', { LIBISCSI_CHAP_USERNAME: 'eu', LIBISCSI_CHAP_PASSWORD: 'ep' }), { transport: 'tcp', portal: 'h', target: 't', lun: '0', user: 'eu', password: 'ep' });
  assert.deepEqual(parseIscsiUrl('iscsi://u%p@h/t/0', { LIBISCSI_CHAP_USERNAME: 'eu', LIBISCSI_CHAP_PASSWORD: 'ep' }).password, 'p');
  assert.deepEqual(parseIscsiUrl('iscsi://[::1]:3260/t/2?ignored', {}).portal, '[::1]:3260');
  assert.deepEqual(parsePortal('[::1]:3261'), { host: '::1', port: 3261 });
  assert.deepEqual(parsePortal('10.1.1.1:3262,1'), { host: '10.1.1.1', port: 3262 });
});

test('a URL that does not parse is refused in QEMU\'s words, without the password', () => {
  for (const bad of ['iscsi://u%s3cr3t@h:3260/', 'iscsi://u%s3cr3t@h/t', 'iscsi://u%s3cr3t@h/t/1x', 'iscsi://u%s3cr3t@h:99999/t/1']) {
    assert.throws(
      () => parseIscsiUrl(bad, {}),
      (e: unknown) => e instanceof BlockError && e.message.startsWith('Failed to parse URL : iscsi://u@h') && !e.message.includes('s3cr3t'),
    );
  }
  assert.equal(redactUrl('iscsi://alice%pw@h/t/1'), 'iscsi://alice@h/t/1');
  assert.equal(redactUrl('iscsi://alice:pw@h/t/1'), 'iscsi://alice@h/t/1');
  assert.equal(redactUrl('iscsi://h/t/1'), 'iscsi://h/t/1');
});

test('options: QEMU 7.2\'s checks and messages', () => {
  const base = { transport: 'tcp', portal: '127.0.0.1:3260', target: 'iqn.a:b', lun: '1' };
  rejects(() => readSettings({ ...base, foo: '1' }), "Block protocol 'iscsi' doesn't support the option 'foo'");
  rejects(() => readSettings({ ...base, lun: 'x' }), "Parameter 'lun' expects a number");
  rejects(() => readSettings({ ...base, 'header-digest': 'foo' }), 'Invalid header-digest setting : foo');
  rejects(() => readSettings({ portal: 'h', lun: '1' }), 'Need all of transport, portal and target options');
  rejects(() => readSettings({ ...base, transport: 'udp' }), 'Unknown transport: udp');
  rejects(() => readSettings({ ...base, user: 'u' }), 'CHAP username specified but no password was given');
  rejects(() => readSettings({ ...base, user: 'u', password: 'p', 'password-secret': 's' }), "'password' and 'password-secret' properties are mutually exclusive");
  rejects(() => readSettings({ ...base, timeout: 'abc' }), "Parameter 'timeout' expects a number");
  const s = readSettings(base);
  assert.equal(s.initiatorName, 'iqn.2008-11.org.linux-kvm');
  assert.equal(s.headerDigest, 'none-crc32c');
  assert.equal(s.port, 3260);
  assert.equal(s.user, undefined);
});

test('json: name in QEMU\'s key order, and never the password', () => {
  assert.equal(jsonName({ transport: 'tcp', portal: '127.0.0.1:13260', target: 'iqn.2026-12.test:disk', lun: '1' }), '{"lun": "1", "portal": "127.0.0.1:13260", "driver": "iscsi", "transport": "tcp", "target": "iqn.2026-12.test:disk"}');
  const n = jsonName({ transport: 'tcp', portal: 'p', target: 't', lun: '1', user: 'alice', password: 's3cr3t', 'password-secret': 's0', timeout: '5' });
  assert.equal(n, '{"password-secret": "s0", "lun": "1", "portal": "p", "driver": "iscsi", "transport": "tcp", "user": "alice", "target": "t"}');
  assert.ok(!n.includes('s3cr3t'));
});

test('CHAP binary values in hex and base64; LUN fields; sense and capacity decoding', () => {
  assert.deepEqual(decodeChapBinary('0x0aff'), Buffer.from([0x0a, 0xff]));
  assert.deepEqual(decodeChapBinary('0bAAEC'), Buffer.from([0, 1, 2]));
  assert.equal(decodeChapBinary('zz'), undefined);
  assert.deepEqual([...encodeLun(5)], [0, 5, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...encodeLun(300)], [0x41, 0x2c, 0, 0, 0, 0, 0, 0]);
  const fixed = Buffer.alloc(18);
  fixed[0] = 0x70;
  fixed[2] = 0x05;
  fixed[12] = 0x25;
  assert.equal(senseText(parseSense(fixed)!), 'SENSE KEY:ILLEGAL_REQUEST(5) ASCQ:LOGICAL_UNIT_NOT_SUPPORTED(0x2500)');
  assert.equal(senseText(parseSense(Buffer.from([0x72, 0x06, 0x29, 0x01]))!), 'SENSE KEY:UNIT_ATTENTION(6) ASCQ:POWER_ON_OCCURED(0x2901)');
  const rc16 = Buffer.alloc(32);
  rc16.writeBigUInt64BE(0x1_0000_0000n, 0);
  rc16.writeUInt32BE(512, 8);
  rc16[14] = 0xc0;
  assert.deepEqual(parseCapacity16(rc16), { blockSize: 512, blocks: 0x1_0000_0001, lbpme: true, lbprz: true, use16: true });
  assert.deepEqual(parseCapacity10(Buffer.from([0, 0, 0, 0, 0, 0, 8, 0])).blocks, 0);
  assert.throws(() => parseCapacity16(Buffer.alloc(8)), /unmarshall readcapacity16/);
  assert.equal(parseLbaStatus(Buffer.alloc(10)), undefined);
  assert.deepEqual([...unmapParameters([{ lba: 2, blocks: 3 }])], [0, 22, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0]);
});

test('redactSecrets takes out URL passwords, password= options and json "password" values, and nothing else', async () => {
  const { redactSecrets, BlockError: BE } = await import('../../core/errors.ts');
  assert.equal(redactSecrets("Could not open 'iscsi://alice%pw/x@h:3260/iqn.a:b/1': nope"), "Could not open 'iscsi://alice@h:3260/iqn.a:b/1': nope");
  assert.equal(redactSecrets('iser://bob:pw@h/t/0 and iscsi://h:3260/t/1'), 'iser://bob@h/t/0 and iscsi://h:3260/t/1');
  assert.equal(redactSecrets('driver=iscsi,user=u,password=a,,b,lun=1'), 'driver=iscsi,user=u,password=******,lun=1');
  assert.equal(redactSecrets('file.password=x file.password-secret=s0'), 'file.password=****** file.password-secret=s0');
  assert.equal(redactSecrets('json:{"user":"u","password":"p\\"q","lun":"1"}'), 'json:{"user":"u","password":"******","lun":"1"}');
  assert.equal(redactSecrets('CHAP username specified but no password was given'), 'CHAP username specified but no password was given');
  const e = new BE('Io', 'at iscsi://u%secret@h/t/1', { path: 'iscsi://u%secret@h/t/1' });
  assert.ok(!JSON.stringify(e.toJSON()).includes('secret'));
});

test('[iscsi] configuration sections: per-target section first, else the first; they win over the URL\'s user', async () => {
  const { parseIscsiConfig } = await import('../../core/protocols/iscsi/config.ts');
  const text = [
    '# from qemu-block-drivers(7)',
    '[iscsi]',
    '  user = "me"',
    '  password = "my password"',
    '  initiator-name = "iqn.qemu.test:my-initiator"',
    '  header-digest = "CRC32C"',
    '',
    '[drive]',
    '  file = "x"',
    '[iscsi "iqn.target.name"]',
    '  user = "other"',
    '  password = "pw2"',
  ].join('\n');
  const sections = parseIscsiConfig(text);
  assert.equal(sections.length, 2);
  const general = parseIscsiUrl('iscsi://h/iqn.some.target/1', {}, sections);
  assert.deepEqual(general, { transport: 'tcp', portal: 'h', target: 'iqn.some.target', lun: '1', user: 'me', password: 'my password', 'initiator-name': 'iqn.qemu.test:my-initiator', 'header-digest': 'crc32c' });
  const specific = parseIscsiUrl('iscsi://u%p@h/iqn.target.name/2', {}, sections);
  assert.equal(specific.user, 'other');
  assert.equal(specific.password, 'pw2');
  assert.equal(readSettings(general).headerDigest, 'crc32c');
  rejects(() => parseIscsiConfig('[iscsi]\n  color = "blue"\n'), "Invalid parameter 'color'");
  rejects(() => parseIscsiConfig('[iscsi]\nuser=me\n'), 'parse error');
  rejects(() => parseIscsiConfig('user = "me"\n'), 'no group defined');
});

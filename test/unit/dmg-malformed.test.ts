// Malformed DMG images (made with the test-side UDIF writer) are refused with a clear BlockError
// at open, or fail the read that needs the bad chunk, in words; QEMU's words where QEMU has any
// (the trailer search, the 64 MiB chunk limits), checked against qemu-img on the same bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { openImage } from '../../core/drivers/open.ts';
import { BlockError } from '../../core/errors.ts';
import { buildDmg, KOLY, T_RAW, T_ZERO, T_ZLIB, type BuildOptions } from '../helpers/dmg-build.ts';
import { run, SKIP_NO_QEMU, tempDir } from '../helpers/qemu.ts';

const t = tempDir('platter-dmg-malformed-');
test.after(() => t.cleanup());
let n = 0;

function file(bytes: Buffer): string {
  const p = t.path(`case${n++}.dmg`);
  writeFileSync(p, bytes);
  return p;
}

const ok = (): BuildOptions => ({
  sectors: 16,
  chunks: [
    { type: T_ZLIB, sector: 0, count: 8, data: deflateSync(Buffer.alloc(4096, 0x11)) },
    { type: T_ZERO, sector: 8, count: 8 },
  ],
});

async function refused(bytes: Buffer, re: RegExp, kind: BlockError['kind'] = 'InvalidImage'): Promise<string> {
  const p = file(bytes);
  await assert.rejects(openImage(p, { readOnly: true, format: 'dmg' }), (e: unknown) => {
    assert.ok(e instanceof BlockError, String(e));
    assert.equal(e.kind, kind, e.message);
    assert.match(e.message, re);
    return true;
  });
  return p;
}

/** qemu-img info's stderr on the same bytes. */
const qemuSays = (p: string) => run('qemu-img', ['info', '-f', 'dmg', p]).stderr;

test('a well-formed built image reads back (the base of the cases below)', async () => {
  const node = await openImage(file(buildDmg(ok())), { readOnly: true, format: 'dmg' });
  try {
    assert.ok((await node.read(0, 8192)).equals(Buffer.concat([Buffer.alloc(4096, 0x11), Buffer.alloc(4096)])));
  } finally {
    await node.close();
  }
});

test('an empty file: QEMU\'s "dmg file must be at least 512 bytes long"; a short one has no trailer (QEMU rounds the length up to a sector)', { skip: SKIP_NO_QEMU }, async () => {
  let p = await refused(Buffer.alloc(0), /^Could not open '.*': dmg file must be at least 512 bytes long$/);
  assert.match(qemuSays(p), /dmg file must be at least 512 bytes long/);
  p = await refused(Buffer.alloc(100), /^Could not open '.*': Could not locate UDIF trailer in dmg file$/);
  assert.match(qemuSays(p), /Could not locate UDIF trailer in dmg file/);
});

test('truncated trailer: without its magic, QEMU\'s "Could not locate UDIF trailer"; moved or emptied, no tables named', { skip: SKIP_NO_QEMU }, async () => {
  const img = buildDmg(ok());
  const p = await refused(img.subarray(0, img.length - 512 + 2), /Could not locate UDIF trailer in dmg file$/);
  assert.match(qemuSays(p), /Could not locate UDIF trailer in dmg file/);
  // The magic is searched in the last 515 bytes only (QEMU's window), so a trailer moved off the
  // end is not found either.
  await refused(Buffer.concat([img, Buffer.alloc(600)]), /Could not locate UDIF trailer in dmg file$/);
  // A trailer whose table fields were lost.
  await refused(buildDmg({ ...ok(), editKoly: (k) => k.fill(0, 4) }), /names neither a resource fork nor a property list/);
});

test('bad plist: a <data> element without </data>, and an oversized property list', async () => {
  await refused(buildDmg({ ...ok(), editXml: (x) => x.replace('</data>', '</dta>') }), /<data> element 0 has no <\/data>/);
  await refused(buildDmg({ ...ok(), editKoly: (k) => k.writeBigUInt64BE(17n << 20n, KOLY.xmlLength) }), /property list \(offset \d+, length 17825792\) does not lie before the UDIF trailer/);
});

test('bad base64 in a <data> element', async () => {
  await refused(buildDmg({ ...ok(), editXml: (x) => x.replace('<data>\n', '<data>\n@@!!') }), /<data> element 0 is not base64/);
});

test('chunk too large: QEMU\'s sector-count and length limits (64 MiB), in QEMU\'s words', { skip: SKIP_NO_QEMU }, async () => {
  const big = (2 ** 17 + 1) * 512;
  let p = await refused(buildDmg({ sectors: 2 ** 17 + 1, chunks: [{ type: T_ZLIB, sector: 0, count: 2 ** 17 + 1, data: Buffer.alloc(16) }] }), /sector count 131073 for chunk 0 is larger than max \(131072\)/);
  assert.match(qemuSays(p), /sector count 131073 for chunk 0 is larger than max \(131072\)/);
  p = await refused(buildDmg({ sectors: 16, chunks: [{ type: T_RAW, sector: 0, count: 16, data: Buffer.alloc(8192), length: BigInt(big) }] }), /length 67109376 for chunk 0 is larger than max \(67108864\)/);
  assert.match(qemuSays(p), /length 67109376 for chunk 0 is larger than max \(67108864\)/);
  // Zero-fill chunks need no buffer: any sector count is fine for them (as in QEMU).
  const node = await openImage(file(buildDmg({ sectors: 2 ** 20, chunks: [{ type: T_ZERO, sector: 0, count: 2 ** 20 }] })), { readOnly: true, format: 'dmg' });
  await node.close();
});

test('sector table out of range: past the disk, overlapping, data outside the file, huge sector numbers', async () => {
  const base = ok();
  await refused(buildDmg({ ...base, chunks: [base.chunks[0]!, { type: T_ZERO, sector: 8, count: 9 }] }), /chunk 1 \(sectors 8\.\.16\) lies past the end of the disk \(16 sectors\)/);
  await refused(buildDmg({ ...base, chunks: [base.chunks[0]!, { type: T_ZERO, sector: 4, count: 12 }] }), /chunks 0 and 1 both claim sector 4/);
  await refused(buildDmg({ ...base, chunks: [{ ...base.chunks[0]!, offset: 1n << 40n }, base.chunks[1]!] }), /chunk 0 names data at bytes 1099511627776\.\./);
  await refused(buildDmg({ ...base, chunks: [{ ...base.chunks[0]!, sector: (1n << 64n) - 4n }, base.chunks[1]!] }), /lies past the end of the disk/);
  await refused(buildDmg({ ...base, editKoly: (k) => k.writeBigUInt64BE(1n << 62n, KOLY.sectorCount) }), /dmg disk size \(4611686018427387904 sectors\) is too large/);
  await refused(buildDmg({ ...base, editKoly: (k) => k.writeBigUInt64BE(1n << 40n, KOLY.dataForkOffset) }), /data fork offset 1099511627776 lies past the UDIF trailer/);
});

test('bad compressed data: the image opens, the read that needs the chunk fails in words (QEMU: EIO)', async () => {
  const base = ok();
  const node = await openImage(file(buildDmg({ ...base, chunks: [{ ...base.chunks[0]!, data: Buffer.from('definitely not zlib') }, base.chunks[1]!] })), { readOnly: true, format: 'dmg' });
  try {
    assert.ok((await node.read(4096, 4096)).equals(Buffer.alloc(4096)), 'the zero chunk still reads');
    await assert.rejects(node.read(0, 512), (e: unknown) => e instanceof BlockError && e.kind === 'Io' && /zlib chunk at byte 0 \(sectors 0\.\.7\) does not decompress/.test(e.message));
  } finally {
    await node.close();
  }
});

test('sectors no chunk holds fail the read (QEMU: EIO), the others read', async () => {
  const node = await openImage(file(buildDmg({ sectors: 16, chunks: [{ type: T_ZERO, sector: 0, count: 8 }] })), { readOnly: true, format: 'dmg' });
  try {
    assert.ok((await node.read(0, 4096)).equals(Buffer.alloc(4096)));
    await assert.rejects(node.read(4096, 512), (e: unknown) => e instanceof BlockError && e.kind === 'Io' && /no chunk of the dmg image holds sector 8/.test(e.message));
  } finally {
    await node.close();
  }
});

test('unknown chunk types are skipped with QEMU\'s warning', async () => {
  const warnings: string[] = [];
  const node = await openImage(file(buildDmg({ sectors: 16, chunks: [{ type: 0x80000042, sector: 0, count: 8, data: Buffer.alloc(8) }, { type: T_ZERO, sector: 8, count: 8 }] })), { readOnly: true, format: 'dmg', warn: (m) => warnings.push(m) });
  await node.close();
  assert.deepEqual(warnings, ['warning: Image contains chunks of unknown type 80000042, accessing them will result in I/O errors']);
});

test('a writable open is refused with QEMU\'s "Image is read-only"', async () => {
  await assert.rejects(openImage(file(buildDmg(ok())), { readOnly: false, format: 'dmg' }), (e: unknown) => e instanceof BlockError && /Image is read-only$/.test(e.message));
});

test('chunks listed out of sector order read in sector order (QEMU\'s binary search assumes sorted tables)', async () => {
  const o = ok();
  const node = await openImage(file(buildDmg({ ...o, chunks: [o.chunks[1]!, o.chunks[0]!] })), { readOnly: true, format: 'dmg' });
  try {
    assert.ok((await node.read(0, 8192)).equals(Buffer.concat([Buffer.alloc(4096, 0x11), Buffer.alloc(4096)])));
  } finally {
    await node.close();
  }
});

test('a read spanning many chunks of every stored kind decodes them side by side into one buffer', async () => {
  const chunks: BuildOptions['chunks'] = [];
  const want: Buffer[] = [];
  for (let i = 0; i < 24; i++) {
    const data = Buffer.alloc(1024, i + 1);
    want.push(i % 3 === 2 ? Buffer.alloc(1024) : data);
    chunks.push(i % 3 === 0 ? { type: T_ZLIB, sector: 2 * i, count: 2, data: deflateSync(data) } : i % 3 === 1 ? { type: T_RAW, sector: 2 * i, count: 2, data } : { type: T_ZERO, sector: 2 * i, count: 2 });
  }
  const node = await openImage(file(buildDmg({ sectors: 48, chunks })), { readOnly: true, format: 'dmg' });
  try {
    assert.ok((await node.read(0, 48 * 512)).equals(Buffer.concat(want)));
    // Unaligned to chunks: from the middle of one to the middle of another, twice (the cache).
    for (let k = 0; k < 2; k++) assert.ok((await node.read(1536, 4096)).equals(Buffer.concat(want).subarray(1536, 1536 + 4096)));
  } finally {
    await node.close();
  }
});

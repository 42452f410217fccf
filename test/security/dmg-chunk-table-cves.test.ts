// QEMU-CVE regression corpus, dmg chunk tables (CVE-2014-0145 class: QEMU's dmg driver took chunk
// sizes and counts from the image and allocated or indexed with them; the fixes bound a chunk to
// 64 MiB and made every offset a 64-bit value). Each image is built by the test-side UDIF writer
// (qemu-img cannot create dmg) with one hostile field; Platter must refuse it with a typed
// BlockError, or read it correctly, in bounded time and memory, without touching the file. The
// same bytes go through `qemu-img info`, whose verdict is asserted too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { tempDir, SKIP_NO_QEMU } from '../helpers/qemu.ts';
import { probeHostile, assertRefused, qemuImgInfo } from './harness.ts';
import { buildDmg, KOLY, T_RAW, T_ZERO, T_ZLIB, type BuildOptions } from '../helpers/dmg-build.ts';

const U64_MAX = (1n << 64n) - 1n;

const base = (): BuildOptions => ({
  sectors: 64,
  chunks: [
    { type: T_ZLIB, sector: 0, count: 32, data: deflateSync(Buffer.alloc(32 * 512, 0x42)) },
    { type: T_ZERO, sector: 32, count: 32 },
  ],
});
const first = (o: BuildOptions, edit: Partial<BuildOptions['chunks'][number]>): BuildOptions => ({ ...o, chunks: [{ ...o.chunks[0]!, ...edit }, ...o.chunks.slice(1)] });
/** The resource-fork form, with the fork's own fields edited (data offset at +0, length at +8). */
const rsrc = (edit: (fork: Buffer) => void): Buffer => {
  const img = buildDmg({ ...base(), form: 'rsrc' });
  const k = img.length - 512;
  edit(img.subarray(Number(img.readBigUInt64BE(k + KOLY.rsrcOffset))));
  return img;
};

interface Case {
  title: string;
  image(): Buffer;
  /** What Platter must say, or 'reads' when the image is valid and must read correctly. */
  platter: RegExp | 'reads';
  /** What `qemu-img info` (7.2) says on the same bytes, or 'accepts'. */
  qemu: RegExp | 'accepts';
}

const CASES: Case[] = [
  { title: 'zlib chunk of 2^32-1 sectors (a 2 TiB decompression buffer)', image: () => buildDmg(first(base(), { count: 0xffffffff })), platter: /sector count 4294967295 for chunk 0 is larger than max \(131072\)/, qemu: /sector count 4294967295 for chunk 0 is larger than max \(131072\)/ },
  { title: 'raw chunk of 2^64-1 sectors', image: () => buildDmg({ sectors: 64, chunks: [{ type: T_RAW, sector: 0, count: U64_MAX, data: Buffer.alloc(512) }] }), platter: /sector count 18446744073709551615 for chunk 0 is larger than max/, qemu: /sector count 18446744073709551615 for chunk 0 is larger than max/ },
  { title: 'chunk data length 2^63 (a huge read buffer)', image: () => buildDmg(first(base(), { length: 1n << 63n })), platter: /length 9223372036854775808 for chunk 0 is larger than max \(67108864\)/, qemu: /length 9223372036854775808 for chunk 0 is larger than max \(67108864\)/ },
  { title: 'chunk data offset 2^64-1 (wraps when added to the data fork offset)', image: () => buildDmg(first(base(), { offset: U64_MAX })), platter: /chunk 0 names data at bytes 18446744073709551615\.\./, qemu: 'accepts' },
  { title: 'chunk sector 2^64-1 (the end wraps past zero)', image: () => buildDmg(first(base(), { sector: U64_MAX })), platter: /chunk 0 \(sectors 18446744073709551615\.\..*\) lies past the end of the disk/, qemu: 'accepts' },
  { title: 'zero chunk of 2^40 sectors on a 64-sector disk', image: () => buildDmg({ sectors: 64, chunks: [{ type: T_ZERO, sector: 0, count: 1n << 40n }] }), platter: /lies past the end of the disk \(64 sectors\)/, qemu: 'accepts' },
  { title: 'overlapping chunks (the binary search would pick either)', image: () => buildDmg({ ...base(), chunks: [...base().chunks, { type: T_ZERO, sector: 16, count: 8 }] }), platter: /chunks 0 and 2 both claim sector 16/, qemu: 'accepts' },
  { title: 'trailer sector count 2^63 (negative as QEMU\'s int64)', image: () => buildDmg({ ...base(), editKoly: (k) => k.writeBigUInt64BE(1n << 63n, KOLY.sectorCount) }), platter: /sector count 9223372036854775808 is negative/, qemu: /Invalid argument/ },
  { title: 'trailer sector count 2^62 (a 2 EiB disk)', image: () => buildDmg({ ...base(), editKoly: (k) => k.writeBigUInt64BE(1n << 62n, KOLY.sectorCount) }), platter: /dmg disk size \(4611686018427387904 sectors\) is too large/, qemu: /File too large/ },
  { title: 'trailer sector count 2^43 (a 4 PiB disk of zero chunks: opens and reads, as in QEMU)', image: () => buildDmg({ sectors: 1n << 43n, chunks: [...base().chunks, { type: T_ZERO, sector: 64, count: (1n << 43n) - 64n }] }), platter: 'reads', qemu: 'accepts' },
  { title: 'property list length 2^64-1', image: () => buildDmg({ ...base(), editKoly: (k) => k.writeBigUInt64BE(U64_MAX, KOLY.xmlLength) }), platter: /property list \(offset \d+, length 18446744073709551615\) does not lie before the UDIF trailer/, qemu: /Invalid argument/ },
  { title: 'data fork offset 2^64-1', image: () => buildDmg({ ...base(), editKoly: (k) => k.writeBigUInt64BE(U64_MAX, KOLY.dataForkOffset) }), platter: /data fork offset 18446744073709551615 lies past the UDIF trailer/, qemu: /Invalid argument/ },
  { title: 'resource fork data length 2^32-1', image: () => rsrc((f) => f.writeUInt32BE(0xffffffff, 8)), platter: /resource fork data length 4294967295 does not fit/, qemu: /Invalid argument/ },
  { title: 'resource length 2^32-1 (a 4 GiB resource buffer)', image: () => rsrc((f) => f.writeUInt32BE(0xffffffff, f.readUInt32BE(0))), platter: /has length 4294967295, which does not fit the resource data/, qemu: /Invalid argument/ },
  { title: 'mish block claiming 2^32-1 chunks (the count comes from the block\'s length, as in QEMU)', image: () => buildDmg({ ...base(), editMish: (m) => (m.writeUInt32BE(0xffffffff, 200), m) }), platter: 'reads', qemu: 'accepts' },
  { title: 'a 64 MiB zlib chunk from 64 KiB of data (the largest chunk QEMU allows): read in bounded memory', image: () => buildDmg({ sectors: 131072, chunks: [{ type: T_ZLIB, sector: 0, count: 131072, data: deflateSync(Buffer.alloc(64 << 20)) }] }), platter: 'reads', qemu: 'accepts' },
];

const t = tempDir('platter-sec-dmg-');
test.after(() => t.cleanup());

for (const [i, c] of CASES.entries()) {
  test(`CVE-2014-0145 class, dmg (${c.title}): ${c.platter === 'reads' ? 'read correctly' : 'refused with a clear error'}, bounded, file unchanged; compared with qemu-img info`, { skip: SKIP_NO_QEMU }, async () => {
    const path = t.path(`case${i}.dmg`);
    writeFileSync(path, c.image());
    const out = await probeHostile(path, { format: 'dmg' });
    if (c.platter === 'reads') {
      assert.equal(out.error, undefined, out.error?.message);
      assert.ok(out.bytesRead > 0);
    } else assertRefused(out, c.platter);
    const q = qemuImgInfo(path, 'dmg');
    if (c.qemu === 'accepts') assert.ok(q.ok, `qemu-img info was expected to open it: ${q.text}`);
    else {
      assert.ok(!q.ok, 'qemu-img info was expected to refuse it');
      assert.match(q.text, c.qemu);
    }
  });
}

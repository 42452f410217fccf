// QEMU-CVE regression corpus for the read-only formats bochs and cloop (the 2014 block-driver
// audit fixed both: CVE-2014-0142 divide by zero on a zero extent/block size, CVE-2014-0143
// size products that overflow, CVE-2014-0144 header fields used unchecked and huge allocations
// from them, CVE-2014-0145 overflowing offsets of compressed data, CVE-2014-0147 signed
// arithmetic on offsets read from the image). Each image is built byte by byte
// (test/helpers/bochs-cloop.ts) with one field made hostile; Platter must answer with a typed
// BlockError (or, where QEMU 7.2 reads the image, read it) in bounded time and memory, without
// touching the file or opening another one. `qemu-img info` gets the same bytes, and its verdict
// is asserted too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tempDir, SKIP_NO_QEMU } from '../helpers/qemu.ts';
import { assertRefused, probeHostile, qemuImgInfo } from './harness.ts';
import { BOCHS, buildBochs, buildCloop, CLOOP, patterned } from '../helpers/bochs-cloop.ts';

const U32_MAX = 0xffffffff;
const data = patterned(512 * 1024, 11);
const bochsImage = () => buildBochs({ data });
const cloopImage = () => buildCloop(data, 4096);
const cloopBlocks = data.length / 4096;

interface Case {
  cve: string;
  title: string;
  format: 'bochs' | 'cloop';
  make(): Buffer;
  /** What Platter must say, or 'reads' when the image must read (as QEMU reads it). */
  platter: RegExp | 'reads';
  /** What `qemu-img info` (7.2) says on the same bytes, or 'accepts'. */
  qemu: RegExp | 'accepts';
}

function edit(b: Buffer, f: (b: Buffer) => unknown): Buffer {
  const r = f(b);
  return Buffer.isBuffer(r) ? r : b;
}

const CASES: Case[] = [
  // CVE-2014-0142: a zero extent or block size was a division by zero.
  { cve: 'CVE-2014-0142', title: 'bochs extent size 0', format: 'bochs', make: () => edit(bochsImage(), (b) => b.writeUInt32LE(0, BOCHS.extent)), platter: /Extent size must be at least 512/, qemu: /Extent size must be at least 512/ },
  { cve: 'CVE-2014-0142', title: 'cloop block size 0', format: 'cloop', make: () => edit(cloopImage(), (b) => b.writeUInt32BE(0, CLOOP.blockSize)), platter: /block_size cannot be zero/, qemu: /block_size cannot be zero/ },
  { cve: 'CVE-2014-0142', title: 'bochs extent size 3000 (not a power of two: offsets divide unevenly)', format: 'bochs', make: () => edit(bochsImage(), (b) => b.writeUInt32LE(3000, BOCHS.extent)), platter: /Extent size 3000 is not a power of two/, qemu: /Extent size 3000 is not a power of two/ },
  // CVE-2014-0143: catalog_size * 4 and (n_blocks + 1) * 8 overflowing 32 bits.
  { cve: 'CVE-2014-0143', title: 'bochs catalog 0x40000000 entries (catalog * 4 wraps to 0)', format: 'bochs', make: () => edit(bochsImage(), (b) => b.writeUInt32LE(0x40000000, BOCHS.catalog)), platter: /Catalog size is too large/, qemu: /Catalog size is too large/ },
  { cve: 'CVE-2014-0143', title: 'cloop n_blocks 2^32-1 ((n + 1) * 8 wraps)', format: 'cloop', make: () => edit(cloopImage(), (b) => b.writeUInt32BE(U32_MAX, CLOOP.nBlocks)), platter: /n_blocks 4294967295 must be 536870911 or less/, qemu: /n_blocks 4294967295 must be 536870911 or less/ },
  { cve: 'CVE-2014-0143', title: 'bochs disk size 2^64-1 with a small catalog', format: 'bochs', make: () => edit(bochsImage(), (b) => b.writeBigUInt64LE(2n ** 64n - 1n, BOCHS.diskV2)), platter: /Catalog size is too small for this disk size/, qemu: /Catalog size is too small for this disk size/ },
  // CVE-2014-0144: unchecked header fields sizing allocations (a 4 GiB block buffer, a 512 MiB+ table).
  { cve: 'CVE-2014-0144', title: 'cloop block size 4 GiB - 512 (huge decompression buffer)', format: 'cloop', make: () => edit(cloopImage(), (b) => b.writeUInt32BE(0xfffffe00, CLOOP.blockSize)), platter: /block_size 4294966784 must be 64 MB or less/, qemu: /block_size 4294966784 must be 64 MB or less/ },
  { cve: 'CVE-2014-0144', title: 'cloop block size 513 (not a multiple of 512)', format: 'cloop', make: () => edit(cloopImage(), (b) => b.writeUInt32BE(513, CLOOP.blockSize)), platter: /block_size 513 must be a multiple of 512/, qemu: /block_size 513 must be a multiple of 512/ },
  { cve: 'CVE-2014-0144', title: 'cloop n_blocks 0x4000001 (a 512 MiB offsets table)', format: 'cloop', make: () => edit(cloopImage(), (b) => b.writeUInt32BE(0x4000001, CLOOP.nBlocks)), platter: /image requires too many offsets, try increasing block size/, qemu: /image requires too many offsets/ },
  { cve: 'CVE-2014-0144', title: 'cloop n_blocks 0x3ffffff in a file holding 33 entries (table read past the end)', format: 'cloop', make: () => edit(cloopImage(), (b) => (b.writeUInt32BE(0x3ffffff, CLOOP.nBlocks), b.subarray(0, CLOOP.offsets + 8 * (cloopBlocks + 1)))), platter: /offsets not monotonically increasing at index 129/, qemu: /offsets not monotonically increasing at index 129/ },
  { cve: 'CVE-2014-0144', title: 'bochs catalog 0x100001 entries (above the 1M cap)', format: 'bochs', make: () => edit(bochsImage(), (b) => b.writeUInt32LE(0x100001, BOCHS.catalog)), platter: /Catalog size is too large/, qemu: /Catalog size is too large/ },
  { cve: 'CVE-2014-0144', title: 'bochs extent size 2 GiB (huge extent)', format: 'bochs', make: () => edit(bochsImage(), (b) => b.writeUInt32LE(0x80000000, BOCHS.extent)), platter: /Extent size 2147483648 is too large/, qemu: /Extent size 2147483648 is too large/ },
  // CVE-2014-0145: compressed data offsets that overflow or go backwards (a 2^64 - 1 byte block).
  { cve: 'CVE-2014-0145', title: 'cloop compressed block of 2^64-1 bytes', format: 'cloop', make: () => edit(cloopImage(), (b) => (b.writeBigUInt64BE(0n, CLOOP.offsets), b.writeBigUInt64BE(2n ** 64n - 1n, CLOOP.offsets + 8))), platter: /invalid compressed block size at index 1, image file is corrupt/, qemu: /invalid compressed block size at index 1/ },
  { cve: 'CVE-2014-0145', title: 'cloop offsets going backwards (negative block size)', format: 'cloop', make: () => edit(cloopImage(), (b) => (b.writeBigUInt64BE(0xffffffffn, CLOOP.offsets), b.writeBigUInt64BE(0xfffe0000n, CLOOP.offsets + 8))), platter: /offsets not monotonically increasing at index 1, image file is corrupt/, qemu: /offsets not monotonically increasing at index 1/ },
  { cve: 'CVE-2014-0145', title: 'cloop last offsets 2^63 and up (blocks far past the end of the file)', format: 'cloop', make: () => edit(cloopImage(), (b) => { for (let i = cloopBlocks - 1; i <= cloopBlocks; i++) b.writeBigUInt64BE(2n ** 63n + BigInt(i), CLOOP.offsets + 8 * i); }), platter: /invalid compressed block size at index 127/, qemu: /invalid compressed block size at index 127/ },
  // QEMU opens these: only the order and spacing of the offsets are checked. A block that starts
  // past the end of the file fails to read (EIO); one that only ends past it reads (its stream is
  // whole, the rest is the zeros of a short read).
  { cve: 'CVE-2014-0145', title: 'cloop last block starting past the end of the file', format: 'cloop', make: () => edit(cloopImage(), (b) => (b.writeBigUInt64BE(BigInt(b.length) + (1n << 20n), CLOOP.offsets + 8 * (cloopBlocks - 1)), b.writeBigUInt64BE(BigInt(b.length) + (1n << 20n) + 100n, CLOOP.offsets + 8 * cloopBlocks))), platter: /^Input\/output error$/, qemu: 'accepts' },
  { cve: 'CVE-2014-0145', title: 'cloop last block ending 64 MiB past the end of the file', format: 'cloop', make: () => edit(cloopImage(), (b) => b.writeBigUInt64BE(BigInt(b.length) + (64n << 20n), CLOOP.offsets + 8 * cloopBlocks)), platter: 'reads', qemu: 'accepts' },
  // CVE-2014-0147: sizes and offsets read as signed ("negative" catalog and extent sizes, catalog
  // entries that become negative offsets).
  { cve: 'CVE-2014-0147', title: 'bochs catalog 0xffffffff ("negative" catalog size)', format: 'bochs', make: () => edit(bochsImage(), (b) => b.writeUInt32LE(U32_MAX, BOCHS.catalog)), platter: /Catalog size is too large/, qemu: /Catalog size is too large/ },
  { cve: 'CVE-2014-0147', title: 'bochs extent 0x80000000 ("negative" extent size)', format: 'bochs', make: () => edit(bochsImage(), (b) => b.writeUInt32LE(0x80000000, BOCHS.extent)), platter: /Extent size 2147483648 is too large/, qemu: /Extent size 2147483648 is too large/ },
  // QEMU reads these: slots past the end of the file have no bitmap bits set (zeros).
  { cve: 'CVE-2014-0147', title: 'bochs catalog entries 0x7fffffff and 0xfffffffe (slot offsets near 2^63)', format: 'bochs', make: () => edit(bochsImage(), (b) => (b.writeUInt32LE(0x7fffffff, 512), b.writeUInt32LE(0xfffffffe, 516))), platter: 'reads', qemu: 'accepts' },
  { cve: 'CVE-2014-0147', title: 'bochs header size 0xfffffff0 (data offset wraps in 32 bits)', format: 'bochs', make: () => edit(bochsImage(), (b) => b.writeUInt32LE(0xfffffff0, BOCHS.header)), platter: 'reads', qemu: 'accepts' },
  { cve: 'CVE-2014-0147', title: 'bochs bitmap size 0 (1 + (0 - 1) / 512 bitmap sectors per slot)', format: 'bochs', make: () => edit(bochsImage(), (b) => b.writeUInt32LE(0, BOCHS.bitmap)), platter: 'reads', qemu: 'accepts' },
];

const t = tempDir('platter-sec-bochs-cloop-');
test.after(() => t.cleanup());

for (const [i, c] of CASES.entries()) {
  test(`${c.cve} (${c.title}): ${c.platter === 'reads' ? 'reads as QEMU reads it' : 'a clear error'}, bounded, file unchanged; compared with qemu-img info`, { skip: SKIP_NO_QEMU }, async () => {
    const path = t.path(`case${i}.${c.format}`);
    writeFileSync(path, c.make());
    const out = await probeHostile(path, { format: c.format });
    if (c.platter === 'reads') assert.equal(out.error, undefined, `expected the image to read: ${out.error?.message}`);
    else assertRefused(out, c.platter);
    const q = qemuImgInfo(path, c.format);
    if (c.qemu === 'accepts') assert.ok(q.ok, `qemu-img info was expected to open it: ${q.text}`);
    else {
      assert.ok(!q.ok, 'qemu-img info was expected to refuse it');
      assert.match(q.text, c.qemu);
    }
  });
}

// QEMU-CVE regression corpus, parallels (issue 8's classes for the format the CVEs named):
// CVE-2014-0142 (a zero cluster size was a divide by zero; a huge one overflowed), CVE-2014-0143
// and CVE-2014-0145 (a catalog size whose allocation overflowed or asked for gigabytes: iotest
// 076), CVE-2014-0147 (BAT entries pointing past the end of the file), and the format extension
// QEMU 7.2 itself trips on (an extension offset that overflows: an assertion failure in
// qemu-img). Images are made by qemu-img (data by qemu-io) and patched; Platter must answer with a
// typed BlockError, or read exactly what QEMU reads, in bounded time and memory, with the file
// unchanged. QEMU 7.2's verdict on the same bytes (`qemu-img info`, `qemu-io -r -c read`) is
// asserted too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tempDir, run, SKIP_NO_QEMU } from '../helpers/qemu.ts';
import { openImage } from '../../core/drivers/open.ts';
import { probeHostile, assertRefused, patchFile, qemuImgInfo } from './harness.ts';
import { qemuImage } from './craft.ts';

/** ParallelsHeader field offsets (docs/interop/parallels.txt "Header"). */
const PRL = { tracks: 0x1c, batEntries: 0x20, nbSectors: 0x24, inuse: 0x2c, dataOff: 0x30, extOff: 0x38, bat: 0x40 } as const;
const U32_MAX = 0xffffffff;

interface Case {
  cve: string;
  title: string;
  mutate(b: Buffer): unknown;
  /** What Platter must say, or 'reads' (opens and reads what QEMU reads: zeros at offset 0). */
  platter: RegExp | 'reads';
  /** What qemu-img info (7.2) says on the same bytes, or 'accepts'. */
  qemu: RegExp | 'accepts';
}

const CASES: Case[] = [
  { cve: 'CVE-2014-0142', title: 'tracks 0 (zero cluster size, divide by zero class)', mutate: (b) => b.writeUInt32LE(0, PRL.tracks), platter: /Invalid image: Zero sectors per track/, qemu: /Invalid image: Zero sectors per track/ },
  { cve: 'CVE-2014-0142', title: 'tracks 2^32-1 (cluster size overflow)', mutate: (b) => b.writeUInt32LE(U32_MAX, PRL.tracks), platter: /Invalid image: Too big cluster/, qemu: /Invalid image: Too big cluster/ },
  { cve: 'CVE-2014-0143', title: 'catalog of 2^32-1 entries ("negative catalog size", iotest 076)', mutate: (b) => b.writeUInt32LE(U32_MAX, PRL.batEntries), platter: /Catalog too large/, qemu: /Catalog too large/ },
  {
    cve: 'CVE-2014-0145',
    title: 'catalog of 2^30+1 entries with 2^32-1 sectors (allocation overflow, iotest 076)',
    mutate: (b) => (b.writeUInt32LE(U32_MAX, PRL.nbSectors), b.writeUInt32LE(0x40000001, PRL.batEntries)),
    platter: /Catalog too large/,
    qemu: /Catalog too large/,
  },
  // 2 GiB of catalog: QEMU's one read of it is past its largest request (EIO); just below that
  // QEMU allocates 2 GiB and opens it, Platter keeps what the file holds.
  { cve: 'CVE-2014-0145', title: 'catalog of 2^29-1 entries (one read past the largest request)', mutate: (b) => b.writeUInt32LE(0x1fffffff, PRL.batEntries), platter: /Input\/output error/, qemu: /Input\/output error/ },
  { cve: 'CVE-2014-0145', title: 'catalog of 2^29-2^12 entries in a small file', mutate: (b) => b.writeUInt32LE(0x1ffff000, PRL.batEntries), platter: 'reads', qemu: 'accepts' },
  { cve: 'CVE-2014-0143', title: 'nb_sectors 2^60 (size in bytes past INT64_MAX)', mutate: (b) => b.writeBigUInt64LE(1n << 60n, PRL.nbSectors), platter: /File too large/, qemu: /File too large/ },
  { cve: 'CVE-2014-0147', title: 'BAT entry 2^32-1 (cluster far past the end of the file)', mutate: (b) => b.writeUInt32LE(U32_MAX, PRL.bat), platter: 'reads', qemu: 'accepts' },
  { cve: 'CVE-2014-0147', title: 'data_off 2^32-1 (data end far past the file)', mutate: (b) => b.writeUInt32LE(U32_MAX, PRL.dataOff), platter: 'reads', qemu: 'accepts' },
  { cve: 'parallels-ext', title: 'format extension offset past the end of the file', mutate: (b) => b.writeBigUInt64LE(1n << 20n, PRL.extOff), platter: /Wrong parallels Format Extension magic: 0x0/, qemu: /Wrong parallels Format Extension magic: 0x0/ },
  { cve: 'parallels-ext', title: 'format extension offset 2^50 sectors (past 2^53 bytes, below INT64_MAX)', mutate: (b) => b.writeBigUInt64LE(1n << 50n, PRL.extOff), platter: /Wrong parallels Format Extension magic: 0x0/, qemu: /Wrong parallels Format Extension magic: 0x0/ },
  // QEMU 7.2 aborts here: ext_off << 9 overflows int64 and trips assert(ext_off > 0).
  { cve: 'parallels-ext', title: 'format extension offset 2^60 (offset overflow)', mutate: (b) => b.writeBigUInt64LE(1n << 60n, PRL.extOff), platter: /Failed to read Format Extension cluster: Invalid argument/, qemu: /Assertion `ext_off > 0' failed/ },
];

const t = tempDir('platter-sec-prl-');
test.after(() => t.cleanup());

for (const [i, c] of CASES.entries()) {
  test(`${c.cve} (parallels ${c.title}): ${c.platter === 'reads' ? 'reads what QEMU reads' : 'refused with a clear error'}, bounded, file unchanged; compared with qemu-img`, { skip: SKIP_NO_QEMU }, async () => {
    const path = qemuImage(t.path(`case${i}.parallels`), 'parallels', '64M', { data: true, options: 'cluster_size=64k' });
    patchFile(path, c.mutate);
    const out = await probeHostile(path, { format: 'parallels' });
    if (c.platter === 'reads') {
      assert.equal(out.error, undefined, out.error?.message);
      // The first 8 MiB (the data qemu-io wrote at 0 and 4M) as qemu-img convert reads them.
      const raw = t.path(`case${i}.raw`);
      const conv = run('qemu-img', ['convert', '-f', 'parallels', '-O', 'raw', path, raw]);
      assert.equal(conv.status, 0, conv.stderr);
      const node = await openImage(path, { format: 'parallels', readOnly: true });
      try {
        assert.ok((await node.read(0, 8 << 20)).equals(readFileSync(raw).subarray(0, 8 << 20)), 'reads what qemu-img reads');
      } finally {
        await node.close();
      }
    } else assertRefused(out, c.platter);
    const q = qemuImgInfo(path, 'parallels');
    if (c.qemu === 'accepts') assert.ok(q.ok, `qemu-img info was expected to open it: ${q.text}`);
    else {
      assert.ok(!q.ok, 'qemu-img info was expected to refuse it');
      assert.match(q.text, c.qemu);
    }
  });
}

test('CVE-2014-0147 (parallels): writing through a BAT entry past the end of the file lands where QEMU puts it, and the image stays consistent', { skip: SKIP_NO_QEMU }, async () => {
  const path = qemuImage(t.path('write-far.parallels'), 'parallels', '64M', { data: true, options: 'cluster_size=64k' });
  patchFile(path, (b) => b.writeUInt32LE(1000, PRL.bat + 4)); // cluster 1 at cluster 1000 (62.5 MiB)
  const node = await openImage(path, { format: 'parallels' });
  try {
    await node.write(65536, Buffer.alloc(512, 0x5a));
    assert.ok((await node.read(65536, 512)).every((v) => v === 0x5a));
  } finally {
    await node.close();
  }
  const r = run('qemu-io', ['-r', '-f', 'parallels', '-c', 'read -P 0x5a 64k 512', path]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout, /Pattern verification failed/);
  assert.equal(run('qemu-img', ['check', '-f', 'parallels', path]).status, 0);
});

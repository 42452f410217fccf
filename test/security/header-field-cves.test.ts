// QEMU-CVE regression corpus, header and table-size classes (issue 8): CVE-2014-0142 (zero block
// size / divide by zero), CVE-2014-0143 (size multiplications that overflow), CVE-2014-0144
// (qcow/qcow2 header validation), CVE-2014-0145 (huge allocations from table sizes), CVE-2014-0148
// (VHDX region/metadata/BAT sizes unchecked), CVE-2014-0222 and CVE-2014-0223 (qcow v1 bit widths
// and size rounding). Each image is made by qemu-img and one field is patched; Platter must answer
// with a typed BlockError in bounded time and memory, without touching the file or opening any
// other file. The same bytes go through `qemu-img info`, whose verdict is asserted too: QEMU's
// behaviour (7.2) is the reference for what is valid, and where QEMU accepts, the case says so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir, SKIP_NO_QEMU } from '../helpers/qemu.ts';
import { probeHostile, assertRefused, patchFile, qemuImgInfo } from './harness.ts';
import {
  qemuImage,
  Q2,
  editVhdxRegionTables,
  vhdxRegion,
  vhdxMetadataItem,
  VHDX_BAT_GUID,
  VHDX_METADATA_GUID,
  VHDX_FILE_PARAMETERS_GUID,
} from './craft.ts';

/** VPC dynamic disk header at 512 (VHD spec "Dynamic Disk Header Format"): field offsets. */
const VPC_DYN = { tableOffset: 512 + 16, maxTableEntries: 512 + 28, blockSize: 512 + 32 } as const;
/** VDI header (VirtualBox VDI "VDIHEADER1"): field offsets. */
const VDI = { offsetBmap: 0x154, blockSize: 0x178, blocksInImage: 0x180 } as const;
/** QED header (docs/interop/qed_spec.txt): field offsets. */
const QED = { clusterSize: 4, tableSize: 8 } as const;
/** qcow v1 header (block/qcow.c QCowHeader): field offsets. */
const QCOW1 = { backingOffset: 8, backingSize: 16, size: 24, clusterBits: 32, l2Bits: 33 } as const;
/** VMDK4 sparse header (VMDK spec "Hosted Sparse Extent Header"): field offsets. */
const VMDK4 = { capacity: 12, grainSize: 20, numGtesPerGt: 44 } as const;

interface Case {
  cve: string;
  title: string;
  format: string;
  mutate(b: Buffer): unknown;
  /** What Platter must say. */
  platter: RegExp;
  /** What `qemu-img info` (7.2) says on the same bytes, or 'accepts'. */
  qemu: RegExp | 'accepts';
}

const U32_MAX = 0xffffffff;

const CASES: Case[] = [
  // CVE-2014-0142: a zero block size was a divide by zero (bochs/cloop/parallels); same class here.
  { cve: 'CVE-2014-0142', title: 'vpc block_size 0 (divide by zero class)', format: 'vpc', mutate: (b) => b.writeUInt32BE(0, VPC_DYN.blockSize), platter: /Invalid block size 0/, qemu: /Invalid block size 0/ },
  { cve: 'CVE-2014-0142', title: 'vdi block size 0 (divide by zero class)', format: 'vdi', mutate: (b) => b.writeUInt32LE(0, VDI.blockSize), platter: /block size 0 is not 1048576/, qemu: /block size 0 is not 1048576/ },
  { cve: 'CVE-2014-0142', title: 'qed cluster size 0 (divide by zero class)', format: 'qed', mutate: (b) => b.writeUInt32LE(0, QED.clusterSize), platter: /QED cluster size is invalid/, qemu: /QED cluster size is invalid/ },
  { cve: 'CVE-2014-0142', title: 'qed table size 0 (divide by zero class)', format: 'qed', mutate: (b) => b.writeUInt32LE(0, QED.tableSize), platter: /QED table size is invalid/, qemu: /QED table size is invalid/ },
  { cve: 'CVE-2014-0142', title: 'vmdk grain size 0 (divide by zero class)', format: 'vmdk', mutate: (b) => b.writeBigUInt64LE(0n, VMDK4.grainSize), platter: /L1 entry size is invalid/, qemu: /L1 entry size is invalid/ },
  // CVE-2014-0143: products of on-disk counts that overflow 32 or 64 bits.
  { cve: 'CVE-2014-0143', title: 'qcow2 l1_size * 8 overflowing 32 bits', format: 'qcow2', mutate: (b) => b.writeUInt32BE(0x20000000, Q2.l1Size), platter: /Active L1 table too large/, qemu: /Active L1 table too large/ },
  { cve: 'CVE-2014-0143', title: 'qcow2 refcount table clusters 2^32-1', format: 'qcow2', mutate: (b) => b.writeUInt32BE(U32_MAX, Q2.refcountClusters), platter: /Reference count table too large/, qemu: /Reference count table too large/ },
  { cve: 'CVE-2014-0143', title: 'qcow2 snapshot count 2^32-1', format: 'qcow2', mutate: (b) => (b.writeUInt32BE(U32_MAX, Q2.nbSnapshots), b.writeBigUInt64BE(65536n, Q2.snapshotsOffset)), platter: /Snapshot table too large/, qemu: /Snapshot table too large/ },
  { cve: 'CVE-2014-0143', title: 'vdi blocks_in_image * 4 overflowing 32 bits', format: 'vdi', mutate: (b) => b.writeUInt32LE(0x40000000, VDI.blocksInImage), platter: /too many blocks 1073741824/, qemu: /too many blocks 1073741824/ },
  { cve: 'CVE-2014-0143', title: 'vmdk GTEs per GT 2^32-1', format: 'vmdk', mutate: (b) => b.writeUInt32LE(U32_MAX, VMDK4.numGtesPerGt), platter: /L2 table size too big/, qemu: /L2 table size too big/ },
  { cve: 'CVE-2014-0143', title: 'vmdk capacity 2^62 (L1 size overflow)', format: 'vmdk', mutate: (b) => b.writeBigUInt64LE(1n << 62n, VMDK4.capacity), platter: /L1 size too big/, qemu: /File too large/ },
  // CVE-2014-0144: qcow/qcow2 header fields used before validation.
  { cve: 'CVE-2014-0144', title: 'qcow2 cluster_bits 8', format: 'qcow2', mutate: (b) => b.writeUInt32BE(8, Q2.clusterBits), platter: /Unsupported cluster size: 2\^8/, qemu: /Unsupported cluster size: 2\^8/ },
  { cve: 'CVE-2014-0144', title: 'qcow2 cluster_bits 63', format: 'qcow2', mutate: (b) => b.writeUInt32BE(63, Q2.clusterBits), platter: /Unsupported cluster size: 2\^63/, qemu: /Unsupported cluster size: 2\^63/ },
  { cve: 'CVE-2014-0144', title: 'qcow2 L1 table too small for the virtual size', format: 'qcow2', mutate: (b) => b.writeBigUInt64BE(1n << 40n, Q2.size), platter: /L1 table is too small/, qemu: /L1 table is too small/ },
  { cve: 'CVE-2014-0144', title: 'qcow2 backing file name 2^32-1 bytes', format: 'qcow2', mutate: (b) => (b.writeBigUInt64BE(512n, 8), b.writeUInt32BE(U32_MAX, 16)), platter: /Backing file name too long/, qemu: /Backing file name too long/ },
  { cve: 'CVE-2014-0144', title: 'qcow2 snapshot table offset unaligned', format: 'qcow2', mutate: (b) => (b.writeUInt32BE(1, Q2.nbSnapshots), b.writeBigUInt64BE(0x12345n, Q2.snapshotsOffset)), platter: /Invalid snapshot table offset/, qemu: /Snapshot table offset invalid/ },
  { cve: 'CVE-2014-0144', title: 'qcow v1 backing file name 2^32-1 bytes', format: 'qcow', mutate: (b) => (b.writeBigUInt64BE(48n, QCOW1.backingOffset), b.writeUInt32BE(U32_MAX, QCOW1.backingSize)), platter: /Backing file name too long/, qemu: /Backing file name too long/ },
  // CVE-2014-0145: table sizes that asked for gigabytes (dmg/cloop/vpc); vpc here.
  { cve: 'CVE-2014-0145', title: 'vpc max_table_entries 2^32-1 (huge BAT allocation)', format: 'vpc', mutate: (b) => b.writeUInt32BE(U32_MAX, VPC_DYN.maxTableEntries), platter: /Max Table Entries too large \(4294967295\)/, qemu: /Max Table Entries too large/ },
  { cve: 'CVE-2014-0145', title: 'vpc BAT offset past the end of the file', format: 'vpc', mutate: (b) => b.writeBigUInt64BE(1n << 40n, VPC_DYN.tableOffset), platter: /points after the end of file/, qemu: /points after the end of file/ },
  // CVE-2014-0148: VHDX sizes and counts read without checks.
  { cve: 'CVE-2014-0148', title: 'vhdx region table entry count 2^32-1', format: 'vhdx', mutate: (b) => editVhdxRegionTables(b, (t) => b.writeUInt32LE(U32_MAX, t + 8)), platter: /region table has 4294967295 entries/, qemu: /Invalid argument/ },
  { cve: 'CVE-2014-0148', title: 'vhdx BAT region length 0', format: 'vhdx', mutate: (b) => { const r = vhdxRegion(b, VHDX_BAT_GUID); editVhdxRegionTables(b, (t) => b.writeUInt32LE(0, t + r.entry + 24)); }, platter: /length 0\) is not a non-empty multiple of 1 MiB/, qemu: /Invalid argument/ },
  // QEMU 7.2 opens this one (it never reads the BAT it cannot reach before the first access).
  { cve: 'CVE-2014-0148', title: 'vhdx BAT region past the end of the file', format: 'vhdx', mutate: (b) => { const r = vhdxRegion(b, VHDX_BAT_GUID); editVhdxRegionTables(b, (t) => b.writeBigUInt64LE(1n << 40n, t + r.entry + 16)); }, platter: /BAT region .* extends past the end of the file/, qemu: 'accepts' },
  { cve: 'CVE-2014-0148', title: 'vhdx metadata entry count 65535', format: 'vhdx', mutate: (b) => b.writeUInt16LE(0xffff, vhdxRegion(b, VHDX_METADATA_GUID).offset + 10), platter: /metadata table has 65535 entries/, qemu: /Invalid argument/ },
  { cve: 'CVE-2014-0148', title: 'vhdx block size 0', format: 'vhdx', mutate: (b) => b.writeUInt32LE(0, vhdxMetadataItem(b, VHDX_FILE_PARAMETERS_GUID).data), platter: /VHDX block size 0 is invalid/, qemu: /Invalid argument/ },
  { cve: 'CVE-2014-0148', title: 'vhdx metadata item offset outside the region', format: 'vhdx', mutate: (b) => b.writeUInt32LE(0xfffff000, vhdxMetadataItem(b, VHDX_FILE_PARAMETERS_GUID).entry + 16), platter: /lies outside the metadata region/, qemu: /Invalid argument/ },
  // CVE-2014-0222: qcow v1 l2_bits/cluster_bits so large that shifts overflow.
  { cve: 'CVE-2014-0222', title: 'qcow v1 l2_bits 30 (shift overflow)', format: 'qcow', mutate: (b) => b.writeUInt8(30, QCOW1.l2Bits), platter: /L2 table size must be between 512 and 64k/, qemu: /L2 table size must be between 512 and 64k/ },
  { cve: 'CVE-2014-0222', title: 'qcow v1 cluster_bits 63 (shift overflow)', format: 'qcow', mutate: (b) => b.writeUInt8(63, QCOW1.clusterBits), platter: /Cluster size must be between 512 and 64k/, qemu: /Cluster size must be between 512 and 64k/ },
  // CVE-2014-0223: qcow v1 size that overflows when rounded up to L2 coverage.
  { cve: 'CVE-2014-0223', title: 'qcow v1 size 2^64-1 (rounding overflow)', format: 'qcow', mutate: (b) => b.writeBigUInt64BE(0xffffffffffffffffn, QCOW1.size), platter: /Image too large/, qemu: /Image too large/ },
];

const t = tempDir('platter-sec-hdr-');
test.after(() => t.cleanup());

for (const [i, c] of CASES.entries()) {
  test(`${c.cve} (${c.title}): refused with a clear error, bounded, file unchanged; compared with qemu-img info`, { skip: SKIP_NO_QEMU }, async () => {
    const path = qemuImage(t.path(`case${i}.${c.format}`), c.format, '64M');
    patchFile(path, c.mutate);
    const out = await probeHostile(path, { format: c.format });
    assertRefused(out, c.platter);
    const q = qemuImgInfo(path, c.format);
    if (c.qemu === 'accepts') assert.ok(q.ok, `qemu-img info was expected to open it: ${q.text}`);
    else {
      assert.ok(!q.ok, 'qemu-img info was expected to refuse it');
      assert.match(q.text, c.qemu);
    }
  });
}

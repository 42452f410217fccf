// The VMDK text descriptor and header codecs: parsing (keys, extent lines, ddb), the limits on
// size, line length and extent count, CID replacement, QEMU's probe rules, and the sparse header
// encode/decode round trip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDescriptor, parseExtentLine, probeDescriptorText, replaceCid, serialiseDescriptor, descriptorText } from '../../core/formats/vmdk/descriptor.ts';
import { decodeSparseHeader, encodeSparseHeader, validateSparseHeader, FLAG_RGD, FLAG_NL_DETECT, NL_TEST_BYTES } from '../../core/formats/vmdk/sparse-header.ts';
import { vmdkDriver } from '../../core/formats/vmdk/index.ts';
import { BlockError } from '../../core/errors.ts';

const SAMPLE = `# Disk DescriptorFile
version=1
CID=3ac31841
parentCID=ffffffff
createType="twoGbMaxExtentFlat"
parentFileNameHint="base image.vmdk"

# Extent description
RW 4194304 FLAT "b-f001.vmdk" 0
RDONLY 100 SPARSE "ro.vmdk"
NOACCESS 8 ZERO "z"
RW 2097152 VMFS "vm.vmdk"

# The Disk Data Base
#DDB

ddb.virtualHWVersion = "4"
ddb.geometry.cylinders = "652"
ddb.adapterType = "lsilogic"
`;

test('parses descriptor keys, every extent line kind and the disk database', () => {
  const d = parseDescriptor(SAMPLE);
  assert.equal(d.version, 1);
  assert.equal(d.cid, 0x3ac31841);
  assert.equal(d.parentCid, 0xffffffff);
  assert.equal(d.createType, 'twoGbMaxExtentFlat');
  assert.equal(d.parentFileNameHint, 'base image.vmdk');
  assert.deepEqual(
    d.extents.map((e) => [e.access, e.sectors, e.type, e.filename, e.offset]),
    [
      ['RW', 4194304, 'FLAT', 'b-f001.vmdk', 0],
      ['RDONLY', 100, 'SPARSE', 'ro.vmdk', undefined],
      ['NOACCESS', 8, 'ZERO', 'z', undefined],
      ['RW', 2097152, 'VMFS', 'vm.vmdk', undefined],
    ],
  );
  assert.equal(d.ddb.get('ddb.adapterType'), 'lsilogic');
  assert.equal(d.ddb.get('ddb.geometry.cylinders'), '652');
  assert.equal(d.ddb.get('ddb.virtualHWVersion'), '4');
});

test('refuses malformed extent lines with QEMU\'s "Invalid extent line"', () => {
  for (const line of ['RW 8 FLAT "x.vmdk"', 'RW 8 FLAT "x.vmdk" -1', 'RW 8 SPARSE "x.vmdk" 5']) {
    assert.throws(() => parseExtentLine(line), (e: unknown) => e instanceof BlockError && e.message === `Invalid extent line: ${line}`);
  }
  assert.equal(parseExtentLine('ddb.adapterType = "ide"'), undefined);
  assert.equal(parseExtentLine('RW 8 WEIRD "x"'), undefined, 'unknown types are not extent lines');
});

test('bounds the descriptor: total size, line length, and extent count', () => {
  assert.throws(() => parseDescriptor('#'.repeat(1 << 20)), /VMDK descriptor is too large/);
  assert.throws(() => parseDescriptor(`version=1\nCID=${'1'.repeat(5000)}\n`), /line is too long/);
  const ok = Array.from({ length: 10_000 }, (_, i) => `RW 1 FLAT "f${i}" 0`).join('\n');
  assert.equal(parseDescriptor(ok).extents.length, 10_000);
  assert.throws(() => parseDescriptor(`${ok}\nRW 1 FLAT "one-more" 0`), /more than 10000 extents/);
});

test('replaces only the CID value, and serialises a new descriptor in qemu-img\'s layout', () => {
  const next = replaceCid(SAMPLE, 0xdeadbeef);
  assert.equal(parseDescriptor(next).cid, 0xdeadbeef);
  assert.equal(parseDescriptor(next).parentCid, 0xffffffff);
  assert.equal(next.replace('CID=deadbeef', 'CID=3ac31841'), SAMPLE);
  const text = serialiseDescriptor({
    cid: 0x3ac31841,
    parentCid: 0xffffffff,
    createType: 'monolithicSparse',
    extentLines: ['RW 8192 SPARSE "a.vmdk"'],
    hwVersion: '4',
    cylinders: 8,
    heads: 16,
    adapterType: 'ide',
    toolsVersion: '2147483647',
  });
  // The text qemu-img 7.2 wrote for `qemu-img create -f vmdk a.vmdk 4M` (CID 3ac31841).
  assert.equal(
    text,
    '# Disk DescriptorFile\nversion=1\nCID=3ac31841\nparentCID=ffffffff\ncreateType="monolithicSparse"\n\n# Extent description\nRW 8192 SPARSE "a.vmdk"\n\n# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = "4"\nddb.geometry.cylinders = "8"\nddb.geometry.heads = "16"\nddb.geometry.sectors = "63"\nddb.adapterType = "ide"\nddb.toolsVersion = "2147483647"\n',
  );
  assert.equal(descriptorText(Buffer.concat([Buffer.from('abc'), Buffer.alloc(10)])), 'abc');
});

test('probes like QEMU: sparse magics, or comments/blank lines then version=1..3', () => {
  assert.equal(vmdkDriver.probe!(Buffer.from('KDMV\x01\x00\x00\x00', 'latin1'), 'x'), 100);
  assert.equal(vmdkDriver.probe!(Buffer.from('COWD', 'latin1'), 'x'), 100);
  assert.equal(probeDescriptorText(Buffer.from('# Disk DescriptorFile\n  \nversion=1\nCID=1\n')), true);
  assert.equal(probeDescriptorText(Buffer.from('# Disk DescriptorFile\r\nversion=2\r\n')), true);
  assert.equal(probeDescriptorText(Buffer.from('# Disk DescriptorFile\nCID=1\nversion=1\n')), false);
  assert.equal(probeDescriptorText(Buffer.from('version=4\n')), false);
  assert.equal(vmdkDriver.probe!(Buffer.from('QFI\xfb'), 'x'), 0);
});

test('the sparse header round-trips through encode/decode and validates against the file size', () => {
  const h = {
    version: 1,
    flags: FLAG_RGD | FLAG_NL_DETECT,
    capacity: 8192n,
    grainSize: 128n,
    descriptorOffset: 1n,
    descriptorSize: 20n,
    numGTEsPerGT: 512,
    rgdOffset: 21n,
    gdOffset: 26n,
    overHead: 128n,
    uncleanShutdown: 0,
    nlTest: [...NL_TEST_BYTES],
    compressAlgorithm: 0,
  };
  const enc = encodeSparseHeader(h);
  assert.equal(enc.length, 512);
  assert.equal(enc.subarray(0, 4).toString('latin1'), 'KDMV');
  assert.deepEqual(decodeSparseHeader(enc), h);
  const layout = validateSparseHeader(h, 65536, true);
  assert.deepEqual([layout.gdEntries, layout.gdOffset, layout.rgdOffset, layout.grainSectors], [1, 26 * 512, 21 * 512, 128]);
  assert.throws(() => validateSparseHeader({ ...h, nlTest: [0x0a, 0x20, 0x0a, 0x0a] }, 65536, false), /newline test failed/);
  assert.throws(() => validateSparseHeader({ ...h, numGTEsPerGT: 513 }, 65536, false), /L2 table size too big/);
});

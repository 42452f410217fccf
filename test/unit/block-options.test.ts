// Options trees and schemas: the parsers every spec and -o string goes through.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDottedOptions, parseJsonFilename, splitKeyValueList, flatten } from '../../core/block/options-tree.ts';
import { parseOptions, parseSizeText, withDefaults, type OptionSpec } from '../../core/block/options-schema.ts';
import { optionsTreeFor } from '../../core/drivers/open.ts';
import { protocolTreeForFilename, protocolPrefix, hostDeviceDriverFor } from '../../core/block/filename.ts';
import { BlockError } from '../../core/errors.ts';

test('",," in a key=value list is a literal comma, as in QemuOpts', () => {
  assert.deepEqual(splitKeyValueList('a=1,b=x,,y,c'), [['a', '1'], ['b', 'x,y'], ['c', undefined]]);
});

test('dotted --image-opts become a nested tree', () => {
  const t = parseDottedOptions('driver=qcow2,file.driver=file,file.filename=a.qcow2,file.locking=off');
  assert.deepEqual(t, { driver: 'qcow2', file: { driver: 'file', filename: 'a.qcow2', locking: 'off' } });
  assert.deepEqual(flatten(t), { driver: 'qcow2', 'file.driver': 'file', 'file.filename': 'a.qcow2', 'file.locking': 'off' });
});

test('json: filenames accept nested objects and dotted keys mixed', () => {
  const t = parseJsonFilename('json:{"driver":"raw","file":{"driver":"file"},"file.filename":"x.img"}');
  assert.deepEqual(t, { driver: 'raw', file: { driver: 'file', filename: 'x.img' } });
});

test('json: with broken JSON is a clear InvalidArgument', () => {
  assert.throws(() => parseJsonFilename('json:{"driver":'), (e: unknown) => e instanceof BlockError && e.kind === 'InvalidArgument');
  assert.throws(() => parseJsonFilename('json:[1]'), /Invalid JSON object/);
});

test('a value and a group under one key is refused', () => {
  assert.throws(() => parseDottedOptions('file=a,file.filename=b'), /both a value and a group/);
});

test('a protocol driver at the top gets a probed format layer over it', () => {
  const t = optionsTreeFor('json:{"driver":"file","filename":"x.img"}', {});
  assert.deepEqual(t, { file: { driver: 'file', filename: 'x.img' } });
  const u = optionsTreeFor('x.img', { format: 'raw' });
  assert.deepEqual(u, { driver: 'raw', file: { filename: 'x.img' } });
});

test('every URI form of the seed is recognised; missing drivers say "not yet supported"', () => {
  const none = () => undefined;
  for (const uri of ['nbd://localhost:10809/exp', 'nbd+unix:///exp?socket=/tmp/s', 'ssh://user@host/path', 'iscsi://127.0.0.1/iqn.x/1', 'gluster+tcp://h/vol/img', 'sheepdog://h/vdi', 'nvme://0000:44:00.0/1', 'fat:rw:/tmp/dir']) {
    assert.throws(() => protocolTreeForFilename(uri, none), (e: unknown) => e instanceof BlockError && e.kind === 'Unsupported' && /not yet supported/.test(e.message), uri);
  }
  assert.throws(() => protocolTreeForFilename('bogus://x', none), /Unknown protocol 'bogus'/);
  assert.deepEqual(protocolTreeForFilename('/tmp/a.img', none), { driver: 'file', filename: '/tmp/a.img' });
  assert.deepEqual(protocolTreeForFilename('file:/tmp/a:b.img', none), { driver: 'file', filename: '/tmp/a:b.img' });
  assert.equal(protocolPrefix('c:\\disk.img'), undefined, 'a Windows drive letter is a path');
  assert.equal(hostDeviceDriverFor('\\\\.\\PhysicalDrive0', 'win32'), 'host_device');
  assert.equal(hostDeviceDriverFor('/dev/cdrom', 'linux'), undefined, 'on Linux host_cdrom probes the device itself (cdrom_probe_device)');
  assert.equal(hostDeviceDriverFor('/dev/sda', 'linux'), undefined);
});

test('sizes parse like qemu_strtosz: binary suffixes, fractions, and refusals', () => {
  assert.equal(parseSizeText('1024'), 1024);
  assert.equal(parseSizeText('64k'), 65536);
  assert.equal(parseSizeText('1.5G'), 1.5 * 2 ** 30);
  assert.equal(parseSizeText('2M'), 2 * 2 ** 20);
  assert.equal(parseSizeText('-1'), undefined);
  assert.equal(parseSizeText('1X'), undefined);
  assert.equal(parseSizeText('9223372036854775808'), undefined, 'beyond 2^63 - 1');
  assert.equal(parseSizeText('8E'), undefined, 'past 2^63 - 1');
  assert.equal(parseSizeText(''), undefined);
});

const schema: OptionSpec[] = [
  { name: 'cluster_size', type: 'size', default: 65536, min: 512, max: 2 << 20, powerOfTwo: true, help: 'cluster size' },
  { name: 'lazy_refcounts', type: 'bool', default: false, help: 'lazy' },
  { name: 'compat', type: 'enum', values: ['0.10', '1.1'], default: '1.1', help: 'compat' },
];

test('-o text is validated against the schema with qemu-img style errors', () => {
  assert.deepEqual(parseOptions(schema, 'cluster_size=4k,lazy_refcounts=on'), { cluster_size: 4096, lazy_refcounts: true });
  assert.throws(() => parseOptions(schema, 'bogus=1'), /Invalid parameter 'bogus'/);
  assert.throws(() => parseOptions(schema, 'cluster_size=3000'), /power of two/);
  assert.throws(() => parseOptions(schema, 'cluster_size=4M'), /at most/);
  assert.throws(() => parseOptions(schema, 'lazy_refcounts=maybe'), /expects 'on' or 'off'/);
  assert.throws(() => parseOptions(schema, 'compat=2'), /does not accept value '2'/);
  assert.deepEqual(withDefaults(schema, { compat: '0.10' }), { cluster_size: 65536, lazy_refcounts: false, compat: '0.10' });
});

test('typed values from the API are validated the same way', () => {
  assert.deepEqual(parseOptions(schema, { cluster_size: 4096, lazy_refcounts: true }), { cluster_size: 4096, lazy_refcounts: true });
  assert.throws(() => parseOptions(schema, { cluster_size: -5 }), /non-negative/);
});

test('sizes parse as qemu_strtosz: zero fractions without a suffix, fractions rounded half up, hex, no trailing text', async () => {
  const { qemuStrtosz } = await import('../../core/block/options-schema.ts');
  const cases: [string, bigint | 'invalid' | 'range'][] = [
    ['1024', 1024n],
    ['1024.0', 1024n],
    ['1024.0b', 1024n],
    ['1.5k', 1536n],
    ['0.15k', 154n],
    ['1.k', 1024n],
    ['1.5T', 1649267441664n],
    ['0x400', 1024n],
    ['0x4k', 4096n], // QEMU 7.2 accepts it (with a deprecation warning)
    ['1.5', 'invalid'],
    ['-1024', 'invalid'],
    ['1kilobyte', 'invalid'],
    ['12 ', 'invalid'],
    ['18446744073709551616', 'range'],
  ];
  for (const [text, want] of cases) assert.equal(qemuStrtosz(text), want, text);
});

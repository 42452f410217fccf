// The nvme protocol's names and options as QEMU 7.2 block/nvme.c parses them (nvme_parse_filename,
// nvme_file_open), and the one line an open answers: Platter does not drive NVMe controllers (no
// controller here to prove a driver against; docs/conformance.md). qemu-img's own answers for the
// same names are quoted beside each case (it fails later, at /dev/vfio/vfio).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { nvmeLocation, nvmeUnsupportedMessage, parseNvmeFilename, pciFacts } from '../../core/protocols/nvme/index.ts';
import { tempDir } from '../helpers/qemu.ts';

test("nvme://0000:44:00.0/1 gives QEMU's options device and namespace; no namespace or an empty one means 1", () => {
  assert.deepEqual(parseNvmeFilename('nvme://0000:44:00.0/1'), { device: '0000:44:00.0', namespace: '1' });
  assert.deepEqual(parseNvmeFilename('nvme://0000:44:00.0/'), { device: '0000:44:00.0', namespace: '1' });
  assert.deepEqual(parseNvmeFilename('nvme://0000:44:00.0'), { device: '0000:44:00.0' });
  assert.deepEqual(nvmeLocation(parseNvmeFilename('nvme://0000:44:00.0')), { device: '0000:44:00.0', namespace: 1 });
  assert.deepEqual(nvmeLocation(parseNvmeFilename('nvme://0000:44:00.0/7')), { device: '0000:44:00.0', namespace: 7 });
});

test("a namespace that is not a number is refused in QEMU's words", () => {
  // qemu-img: Could not open 'nvme://0000:44:00.0/x': Invalid namespace 'x', positive number expected
  assert.throws(() => parseNvmeFilename('nvme://0000:44:00.0/x'), { message: "Invalid namespace 'x', positive number expected" });
  assert.throws(() => parseNvmeFilename('nvme://0000:44:00.0/1x'), { message: "Invalid namespace '1x', positive number expected" });
  assert.throws(() => nvmeLocation({ device: '0000:44:00.0', namespace: 'abc' }), { message: "Parameter 'namespace' expects a number" });
});

test("--image-opts driver=nvme without a device: 'device' option is required (qemu-img's words)", () => {
  assert.throws(() => nvmeLocation({}), { message: "'device' option is required" });
  assert.throws(() => nvmeLocation({ device: '0000:44:00.0', bogus: '1' }), { message: "Block protocol 'nvme' doesn't support the option 'bogus'" });
  assert.deepEqual(nvmeLocation({ device: '0000:44:00.0', namespace: '2', cache: { direct: 'on' } }), { device: '0000:44:00.0', namespace: 2 });
});

test('the message says what QEMU needs (vfio-pci, the IOMMU group) and that Platter does not drive the controller yet, in one line', () => {
  const m = nvmeUnsupportedMessage({ device: '0000:44:00.0', namespace: 1 });
  assert.ok(!m.includes('\n'));
  assert.match(m, /^Platter does not drive NVMe controllers yet: /);
  assert.match(m, /namespace 1 of PCI device 0000:44:00\.0/);
  assert.match(m, /bound to vfio-pci/);
  assert.match(m, /IOMMU group \(\/dev\/vfio\/<its IOMMU group>\) accessible/);
  // With sysfs facts: the group's device node and the driver the controller is bound to now.
  const withFacts = nvmeUnsupportedMessage({ device: '0000:44:00.0', namespace: 3 }, { iommuGroup: '17', driver: 'nvme' });
  assert.match(withFacts, /namespace 3 of PCI device 0000:44:00\.0 needs the controller bound to vfio-pci, now bound to nvme and its IOMMU group \(\/dev\/vfio\/17\) accessible/);
});

test("sysfs facts come from the device's iommu_group and driver links; an absent device has none", () => {
  const tmp = tempDir('nvme-sysfs');
  const dir = tmp.dir;
  mkdirSync(join(dir, '0000:44:00.0'));
  symlinkSync('../../../kernel/iommu_groups/17', join(dir, '0000:44:00.0', 'iommu_group'));
  symlinkSync('../../../bus/pci/drivers/vfio-pci', join(dir, '0000:44:00.0', 'driver'));
  assert.deepEqual(pciFacts('0000:44:00.0', dir), { iommuGroup: '17', driver: 'vfio-pci' });
  assert.deepEqual(pciFacts('0000:99:00.0', dir), {});
  tmp.cleanup();
});

test('platter info / convert / create on an nvme name answer that one line after qemu-img\'s "Could not open" prefix', () => {
  const root = new URL('../..', import.meta.url).pathname;
  const run = (...args: string[]) => spawnSync(process.execPath, [join(root, 'bin/platter.mjs'), ...args], { encoding: 'utf8' });
  const info = run('info', 'nvme://0000:44:00.0/1');
  assert.equal(info.status, 1);
  assert.equal(info.stdout, '');
  const lines = info.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /^platter: Could not open 'nvme:\/\/0000:44:00\.0\/1': Platter does not drive NVMe controllers yet: .*vfio-pci/);
  const opts = run('info', '--image-opts', 'driver=nvme,device=0000:44:00.0,namespace=1');
  assert.match(opts.stderr, /^platter: Could not open 'driver=nvme,device=0000:44:00\.0,namespace=1': Platter does not drive NVMe controllers yet/);
  const bad = run('info', 'nvme://0000:44:00.0/x');
  assert.equal(bad.stderr, "platter: Could not open 'nvme://0000:44:00.0/x': Invalid namespace 'x', positive number expected\n");
  const create = run('create', '-f', 'raw', 'nvme://0000:44:00.0/1', '1M');
  assert.equal(create.status, 1);
  // qemu-img: nvme://0000:44:00.0/1: Protocol driver 'nvme' does not support image creation, and opening the image failed: Failed to open /dev/vfio/vfio: ...
  assert.match(create.stderr, /^platter: nvme:\/\/0000:44:00\.0\/1: Protocol driver 'nvme' does not support image creation, and opening the image failed: Platter does not drive NVMe controllers yet/);
});

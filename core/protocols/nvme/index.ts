// The `nvme` protocol's names (QEMU 7.2 block/nvme.c; qemu-block-drivers(7) "NVMe disk images"):
// nvme://PCI-ADDRESS/NAMESPACE and the options driver=nvme,device=...,namespace=.... QEMU drives
// the controller from user space through VFIO; Platter does not (no machine here has a controller
// to test against, and a simulation would prove nothing: docs/conformance.md). Names and options
// are parsed as QEMU parses them, and an open answers in one line what QEMU needs and that
// Platter does not drive the controller yet.

import { readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import { BlockError, invalidArgument } from '../../errors.ts';
import type { ProtocolDriver } from '../../block/types.ts';
import type { OptionsTree } from '../../block/options-tree.ts';

/** Where an nvme node is: a PCI address ("0000:44:00.0") and a namespace (1 by default). */
export interface NvmeLocation {
  device: string;
  namespace: number;
}

/** Options the generic layers read themselves. */
const GENERIC = new Set(['cache', 'locking', 'aio', 'read-only', 'auto-read-only', 'discard', 'detect-zeroes', 'node-name', 'force-share', 'x-probed', 'filename']);

/** QEMU's nvme_parse_filename: "nvme://DEVICE[/NAMESPACE]", an empty namespace meaning 1. */
export function parseNvmeFilename(filename: string): OptionsTree {
  const prefix = 'nvme://';
  if (!(filename.length > prefix.length && filename.startsWith(prefix))) return {};
  const rest = filename.slice(prefix.length);
  const slash = rest.indexOf('/');
  if (slash < 0) return { device: rest };
  const namespace = rest.slice(slash + 1);
  // qemu_strtoul: optional blanks and sign, decimal digits, nothing after them.
  if (namespace !== '' && !/^\s*[+-]?\d+$/.test(namespace)) throw invalidArgument(`Invalid namespace '${namespace}', positive number expected`);
  return { device: rest.slice(0, slash), namespace: namespace === '' ? '1' : namespace };
}

/** The node's location from its options (QEMU's nvme_file_open), in QEMU's words. */
export function nvmeLocation(options: OptionsTree): NvmeLocation {
  for (const k of Object.keys(options)) {
    if (k !== 'device' && k !== 'namespace' && k !== 'driver' && !GENERIC.has(k)) throw invalidArgument(`Block protocol 'nvme' doesn't support the option '${k}'`);
  }
  const device = options.device;
  if (device === undefined) throw invalidArgument("'device' option is required");
  if (typeof device === 'object') throw invalidArgument("Invalid parameter type for 'device', expected: string");
  const ns = options.namespace;
  let namespace = 1;
  if (ns !== undefined) {
    const text = typeof ns === 'object' ? '' : String(ns).trim();
    if (!/^[+-]?\d+$/.test(text)) throw invalidArgument("Parameter 'namespace' expects a number");
    namespace = Number(text);
  }
  return { device: String(device), namespace };
}

/** What sysfs says of a PCI device: its IOMMU group and the driver it is bound to. */
export interface PciFacts {
  iommuGroup?: string;
  driver?: string;
}

/** Read the facts from /sys/bus/pci/devices/DEVICE (absent where there is no such device). */
export function pciFacts(device: string, sysfs = '/sys/bus/pci/devices'): PciFacts {
  const link = (what: string): string | undefined => {
    try {
      return basename(readlinkSync(`${sysfs}/${device}/${what}`));
    } catch {
      return undefined;
    }
  };
  const facts: PciFacts = {};
  const group = link('iommu_group');
  if (group !== undefined) facts.iommuGroup = group;
  const driver = link('driver');
  if (driver !== undefined) facts.driver = driver;
  return facts;
}

/** The one line an open answers: what QEMU's driver needs, and that Platter does not drive it. */
export function nvmeUnsupportedMessage(loc: NvmeLocation, facts: PciFacts = {}): string {
  const group = facts.iommuGroup !== undefined ? `/dev/vfio/${facts.iommuGroup}` : '/dev/vfio/<its IOMMU group>';
  const bound = facts.driver !== undefined ? `, now bound to ${facts.driver}` : '';
  return `Platter does not drive NVMe controllers yet: namespace ${loc.namespace} of PCI device ${loc.device} needs the controller bound to vfio-pci${bound} and its IOMMU group (${group}) accessible, then QEMU's nvme driver (qemu-img) can open it`;
}

export const nvmeDriver: ProtocolDriver = {
  kind: 'protocol',
  name: 'nvme',
  description: 'An NVMe controller driven from user space through VFIO (not driven by Platter yet)',
  prefixes: ['nvme'],
  takesNoLocks: true,
  createOptions: [],
  parseFilename: (filename: string): OptionsTree => parseNvmeFilename(filename),
  /** QEMU has no create for nvme: it opens the device as existing storage, which fails here. */
  async create(filename) {
    const loc = nvmeLocation(parseNvmeFilename(filename));
    throw new BlockError('Unsupported', `Protocol driver 'nvme' does not support image creation, and opening the image failed: ${nvmeUnsupportedMessage(loc, pciFacts(loc.device))}`, { op: 'create' });
  },
  async open(ctx) {
    const loc = nvmeLocation(ctx.options);
    throw new BlockError('Unsupported', nvmeUnsupportedMessage(loc, pciFacts(loc.device)), { op: 'open' });
  },
};

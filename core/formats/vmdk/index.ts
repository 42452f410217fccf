// The vmdk format driver (QEMU block/vmdk.c; VMware Virtual Disk Format 1.1): probe, open,
// create and the option schema. The pieces live next to this file: descriptor.ts (text
// descriptor), sparse-header.ts (binary headers and markers), extent-flat.ts / extent-sparse.ts
// (data paths), stream.ts (compressed grains, footer), open.ts, create.ts, vmdk-node.ts.

import type { FormatDriver } from '../../block/types.ts';
import { probeDescriptorText } from './descriptor.ts';
import { VMDK3_MAGIC, VMDK4_MAGIC } from './sparse-header.ts';
import { openVmdk } from './open.ts';
import { createVmdk, VMDK_CREATE_OPTIONS } from './create.ts';

/** QEMU's probe score for a sure match. */
const PROBE_SURE = 100;

export const vmdkDriver: FormatDriver = {
  kind: 'format',
  name: 'vmdk',
  description: 'VMware virtual disk (monolithic/split sparse or flat, stream-optimized)',
  compressedWrites: 'in-order',
  probe(head) {
    if (head.length < 4) return 0;
    const magic = head.readUInt32BE(0);
    if (magic === VMDK4_MAGIC || magic === VMDK3_MAGIC) return PROBE_SURE;
    return probeDescriptorText(head) ? PROBE_SURE : 0;
  },
  createOptions: VMDK_CREATE_OPTIONS,
  supportsBacking: true,
  create: createVmdk,
  open: openVmdk,
};

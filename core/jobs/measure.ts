// The measure job (qemu-img measure; qemu-img.c img_measure, qapi BlockMeasureInfo): how many
// bytes a new image of the output format needs, for a size or for a source image's contents.
// The output format's driver does the arithmetic (FormatDriver.measure); raw, which has no
// metadata, needs exactly the virtual size either way (QEMU's raw_measure).

import { findFormat } from '../drivers/registry.ts';
import { parseOptions, type OptionValues } from '../block/options-schema.ts';
import type { MeasureInfo } from '../api/types.ts';
import { invalidArgument, unsupported } from '../errors.ts';
import { openSpec, type ImageSpec, type JobControl, type JobEnv } from './common.ts';
import { parseSnapshotParam } from './convert.ts';
import { BlockNode } from '../block/node.ts';

export interface MeasureOptions {
  format: string;
  size?: number;
  source?: ImageSpec;
  snapshot?: string;
  options?: string | OptionValues;
}

export async function measure(o: MeasureOptions, env: JobEnv, ctl: JobControl = {}): Promise<MeasureInfo> {
  void ctl;
  if ((o.size === undefined) === (o.source === undefined)) throw invalidArgument('Either --size N or one filename must be specified.');
  if (o.snapshot !== undefined && o.source === undefined) throw invalidArgument('--size N cannot be used together with -l.');
  const driver = findFormat(o.format);
  if (!driver) throw unsupported(`Unknown file format '${o.format}'`);
  const values = typeof o.options === 'string' || o.options === undefined ? parseOptions(driver.createOptions, o.options ?? '') : parseOptions(driver.createOptions, o.options);
  let node: BlockNode | undefined;
  let base: BlockNode | undefined;
  try {
    if (o.source) {
      base = await openSpec(o.source, env, { readOnly: true });
      node = base;
      if (o.snapshot !== undefined) {
        const snaps = base.snapshots;
        if (!snaps) throw unsupported(`Failed to load snapshot: Block format '${base.format}' used by device '' does not support temporarily loading internal snapshots`);
        const p = parseSnapshotParam(o.snapshot);
        const found = (await snaps.list()).find((s) => (p.id === undefined || s.id === p.id) && (p.name === undefined || s.name === p.name || s.id === p.name));
        if (!found) throw invalidArgument("Failed to load snapshot: Can't find snapshot");
        node = new BlockNode({ driver: base.driver, impl: await snaps.openView(found.id), filename: base.filename, readOnly: true });
      }
    }
    const size = node ? node.size : o.size!;
    if (!driver.create) throw unsupported(`Format driver '${driver.name}' does not support image creation`);
    if (driver.measure) {
      const r = await driver.measure(size, values, node);
      return { required: r.required, 'fully-allocated': r.fullyAllocated, ...(r.bitmaps !== undefined ? { bitmaps: r.bitmaps } : {}) };
    }
    if (driver.name === 'raw') return { required: size, 'fully-allocated': size };
    throw unsupported(`Block driver '${driver.name}' does not support size measurement`);
  } finally {
    if (node && node !== base) await node.close().catch(() => {});
    await base?.close().catch(() => {});
  }
}

export function humanMeasure(m: MeasureInfo): string {
  // Sizes past 2^53 (measured from --size up to 2^63 - 1) print as the integers they are.
  const n = (v: number) => BigInt(v).toString();
  let s = `required size: ${n(m.required)}\nfully allocated size: ${n(m['fully-allocated'])}\n`;
  if (m.bitmaps !== undefined) s += `bitmaps size: ${n(m.bitmaps)}\n`;
  return s;
}

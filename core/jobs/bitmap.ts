// The bitmap job (qemu-img bitmap; qemu-img.c img_bitmap): add, remove, clear, enable, disable
// and merge persistent dirty bitmaps of an image not in use, several operations in one call run
// in order. The image is opened read-write without its backing chain, merge sources (-b) read-only
// without theirs; the format does the work (BitmapCapability, core/formats/qcow2/bitmaps.ts) and
// stores the bitmaps when the image closes, so operations done before a failing one are kept, as
// in QEMU.

import type { BlockNode } from '../block/node.ts';
import type { BitmapCapability } from '../block/types.ts';
import { BlockError, invalidArgument, notFound } from '../errors.ts';
import { withImage, type ImageSpec, type JobControl, type JobEnv } from './common.ts';

export type BitmapAction = { op: 'add' } | { op: 'remove' } | { op: 'clear' } | { op: 'enable' } | { op: 'disable' } | { op: 'merge'; source: string };

export interface BitmapOptions {
  image: ImageSpec;
  /** The bitmap every action works on. */
  bitmap: string;
  actions: BitmapAction[];
  /** -g: granularity of an added bitmap in bytes (0 or absent: the format's default). */
  granularity?: number;
  /** -b/-F: the image merge sources are looked up in (default: `image`). */
  sourceImage?: ImageSpec;
}

/** The operations' order of mention in QEMU's first error. */
export const NEED_ACTION = 'Need at least one of --add, --remove, --clear, --enable, --disable, or --merge';

/** Check the combination of options as img_bitmap does, before anything is opened. */
export function validateBitmapOptions(o: Pick<BitmapOptions, 'actions' | 'granularity' | 'sourceImage'>): void {
  if (o.actions.length === 0) throw invalidArgument(NEED_ACTION);
  if (o.granularity && !o.actions.some((a) => a.op === 'add')) throw invalidArgument('granularity only supported with --add');
  if (o.sourceImage && !o.actions.some((a) => a.op === 'merge')) throw invalidArgument('Merge bitmap source file only supported with --merge');
}

/** A node without persistent bitmaps answers as QEMU's generic layer does for one. */
function capabilityOf(node: BlockNode): BitmapCapability {
  return (
    node.bitmaps ?? {
      supported: false,
      list: async () => [],
      lookup: async (name) => {
        throw notFound(`Dirty bitmap '${name}' not found`);
      },
      add: async (name) => {
        if (name === '') throw invalidArgument('Bitmap name cannot be empty');
        throw invalidArgument(`Can't store persistent bitmaps to ${node.filename}: Operation not supported`);
      },
      remove: async (name) => {
        throw notFound(`Dirty bitmap '${name}' not found`);
      },
      clear: async (name) => {
        throw notFound(`Dirty bitmap '${name}' not found`);
      },
      setEnabled: async (name) => {
        throw notFound(`Dirty bitmap '${name}' not found`);
      },
      merge: async (target) => {
        throw notFound(`Dirty bitmap '${target}' not found`);
      },
    }
  );
}

/** "Operation <op> on bitmap <name> failed: <why>" (error_reportf_err), the hint kept. */
function failed(e: unknown, op: string, bitmap: string): unknown {
  if (!(e instanceof BlockError)) return e;
  return new BlockError(e.kind, `Operation ${op} on bitmap ${bitmap} failed: ${e.message}`, e.context, { cause: e, ...(e.hint !== undefined ? { hint: e.hint } : {}) });
}

export async function bitmap(o: BitmapOptions, env: JobEnv, ctl: JobControl = {}): Promise<void> {
  validateBitmapOptions(o);
  await withImage(o.image, env, { readOnly: false, noBacking: true }, async (node) => {
    const run = async (source: BlockNode) => {
      const cap = capabilityOf(node);
      const src = capabilityOf(source);
      let done = 0;
      for (const a of o.actions) {
        ctl.onProgress?.({ done, total: o.actions.length, phase: a.op });
        try {
          switch (a.op) {
            case 'add':
              await cap.add(o.bitmap, o.granularity ? { granularity: o.granularity } : {});
              break;
            case 'remove':
              await cap.remove(o.bitmap);
              break;
            case 'clear':
              await cap.clear(o.bitmap);
              break;
            case 'enable':
              await cap.setEnabled(o.bitmap, true);
              break;
            case 'disable':
              await cap.setEnabled(o.bitmap, false);
              break;
            case 'merge':
              await cap.merge(o.bitmap, src, a.source);
              break;
          }
        } catch (e) {
          throw failed(e, a.op, o.bitmap);
        }
        done++;
      }
      ctl.onProgress?.({ done, total: o.actions.length });
    };
    if (o.sourceImage) await withImage(o.sourceImage, env, { readOnly: true, noBacking: true }, run);
    else await run(node);
  });
}

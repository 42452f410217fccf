// The resize job (qemu-img resize; qemu-img.c img_resize): grow or (with --shrink) shrink the
// virtual disk to an absolute size or by a relative "+N"/"-N", with an optional preallocation of
// the new area. The generic layer refuses a shrink without --shrink in qemu-img's words.

import { PERM_RESIZE, type Preallocation } from '../block/types.ts';
import { invalidArgument } from '../errors.ts';
import { parseImageSize, withImage, type ImageSpec, type JobControl, type JobEnv } from './common.ts';

export interface ResizeOptions {
  image: ImageSpec;
  /** "10G", "+1G", "-512M", or bytes. */
  size: string | number;
  shrink?: boolean;
  preallocation?: Preallocation;
}

export const SHRINK_WARNING = "warning: Shrinking an image will delete all data beyond the shrunken image's end. Before performing such an operation, make sure there is no important data there.";

/** Parse a resize argument: {relative: -1|0|1, bytes}. */
export function parseResizeSize(size: string | number): { relative: -1 | 0 | 1; bytes: number } {
  if (typeof size === 'number') return { relative: 0, bytes: parseImageSize(size) };
  const relative = size.startsWith('+') ? 1 : size.startsWith('-') ? -1 : 0;
  const text = relative ? size.slice(1) : size;
  let bytes: number;
  try {
    bytes = parseImageSize(text);
  } catch {
    throw invalidArgument("Parameter 'size' expects a non-negative number below 2^64\nOptional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.");
  }
  return { relative, bytes };
}

export async function resize(o: ResizeOptions, env: JobEnv, ctl: JobControl = {}): Promise<{ filename: string; oldSize: number; newSize: number }> {
  void ctl;
  const { relative, bytes } = parseResizeSize(o.size);
  return withImage(o.image, env, { readOnly: false, noShare: false, extraPerm: PERM_RESIZE }, async (node) => {
    const old = node.size;
    const target = relative === 0 ? bytes : old + relative * bytes;
    if (target < 0) throw invalidArgument('New image size must be positive');
    if (!Number.isSafeInteger(target)) throw invalidArgument('Image size too large');
    if (o.preallocation && o.preallocation !== 'off' && target < old) {
      throw invalidArgument('Preallocation can only be used for growing images');
    }
    // exact: qemu-img resize's blk_truncate(..., exact=true, ...): a device or NBD export says
    // "Cannot resize ..." rather than rounding or ignoring the new size.
    await node.truncate(target, { shrink: o.shrink ?? false, exact: true, ...(o.preallocation ? { preallocation: o.preallocation } : {}) });
    await node.flush();
    return { filename: node.filename, oldSize: old, newSize: node.size };
  });
}

// Refine a format driver's "data at host offset X" answer with what the file underneath knows, as
// QEMU's bdrv_co_block_status does when a driver sets BDRV_BLOCK_RECURSE (vdi for static images,
// vmdk for flat extents): the extent is cut to the file's own extent there, and a hole (or the
// end of the file) makes it read as zero.

import type { BlockNode } from './node.ts';
import type { BlockStatus } from './types.ts';

export async function refineWithFile(file: BlockNode, st: BlockStatus): Promise<BlockStatus> {
  if (!st.data || st.zero || st.hostOffset === undefined) return st;
  if (st.hostOffset >= file.size) return { ...st, zero: true };
  const f = await file.blockStatus(st.hostOffset, Math.min(st.length, file.size - st.hostOffset));
  return { ...st, length: f.length, zero: f.zero };
}

// Reads as QEMU's block layer does them on a file child: the part past the file's end reads as
// zeros (bdrv_aligned_preadv pads a short read), so a format that trusts an offset from its
// header sees zeros there instead of an error. Used by the read-only formats (bochs, cloop) whose
// QEMU drivers rely on this.

import type { BlockNode } from '../block/node.ts';

/** `length` bytes from `offset` of `file`, zeros where the file ends before them. */
export async function readPadded(file: BlockNode, offset: number, length: number): Promise<Buffer> {
  const inFile = offset >= file.size ? 0 : Math.min(length, file.size - offset);
  if (inFile === length) return file.read(offset, length);
  const out = Buffer.alloc(length);
  if (inFile > 0) (await file.read(offset, inFile)).copy(out, 0);
  return out;
}

// The common shape of a VMDK extent as the node sees it (VMware Virtual Disk Format 1.1,
// "Extent descriptions"): a run of the virtual disk stored in one file, either flat (bytes as
// they are) or sparse (grain directory + grain tables). The node routes every request to the
// extent that holds it; each extent kind answers in its own module.

import type { BlockNode } from '../../block/node.ts';

/** What one grain (or, for a flat extent, the whole extent) holds. */
export type GrainState =
  | { kind: 'unalloc' }
  | { kind: 'zero' }
  | { kind: 'data'; host: number; compressed: boolean };

export interface Extent {
  /** The extent file (the image's own file for monolithic sparse images). */
  readonly file: BlockNode;
  /** Name shown by qemu-img info ("filename"). */
  readonly displayName: string;
  /** Descriptor type ("FLAT", "SPARSE", ...), or "" for the image's own sparse extent. */
  readonly type: string;
  readonly flat: boolean;
  readonly compressed: boolean;
  /** Virtual bytes this extent covers, and where it starts in the disk. */
  readonly length: number;
  readonly start: number;
  /** Bytes per grain (flat: the extent's length). */
  readonly grainBytes: number;
  /** State of the grain holding `offset` (relative to the extent). */
  lookup(offset: number): Promise<GrainState>;
  /** The state at `offset` and how many bytes from there (at most `maxBytes`) share it: grains of
   *  the same kind, data ones uncompressed and contiguous in the file. Optional (one grain-table
   *  fetch per run instead of one lookup per grain). */
  lookupRun?(offset: number, maxBytes: number): Promise<{ state: GrainState; length: number }>;
  /** Read `length` bytes at `inGrain` of a grain whose state is data. */
  readData(state: GrainState & { kind: 'data' }, inGrain: number, length: number): Promise<Buffer>;
}

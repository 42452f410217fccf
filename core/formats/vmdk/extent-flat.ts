// FLAT and VMFS extents (VMware Virtual Disk Format 1.1, "Extent descriptions": the data is
// stored as it is, starting at a sector offset of the extent file).

import type { BlockNode } from '../../block/node.ts';
import type { Extent, GrainState } from './extent.ts';

export class FlatExtent implements Extent {
  readonly flat = true;
  readonly compressed = false;
  readonly grainBytes: number;

  constructor(
    readonly file: BlockNode,
    readonly displayName: string,
    readonly type: string,
    readonly start: number,
    readonly length: number,
    /** Byte offset of the extent's data in its file. */
    readonly fileOffset: number,
  ) {
    this.grainBytes = length;
  }

  async lookup(offset: number): Promise<GrainState> {
    return { kind: 'data', host: this.fileOffset + offset - (offset % this.grainBytes), compressed: false };
  }

  /** Host byte offset of extent offset `offset`. */
  hostOffset(offset: number): number {
    return this.fileOffset + offset;
  }

  async readData(state: GrainState & { kind: 'data' }, inGrain: number, length: number): Promise<Buffer> {
    this.file.debugEvent('read_aio');
    return this.file.read(state.host + inGrain, length);
  }

  async write(offset: number, data: Buffer): Promise<void> {
    this.file.debugEvent('write_aio');
    await this.file.write(this.fileOffset + offset, data);
  }

  async writeZeroes(offset: number, length: number, mayUnmap: boolean): Promise<void> {
    await this.file.writeZeroes(this.fileOffset + offset, length, { mayUnmap });
  }
}

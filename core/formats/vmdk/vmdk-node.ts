// An open VMDK image (QEMU block/vmdk.c semantics): the extents in disk order, the descriptor's
// CID / parentCID / createType, reads that fall through to the backing image where a grain is
// unallocated (after the parent CID check), writes that allocate grains, zeroed-grain
// writeZeroes, block status, compressed writes for stream-optimized extents, info and check.
// The CID is replaced with a random one on the first write after opening, as QEMU does.

import { nodeCrypto } from '../../host/lazy-node-modules.ts';
import { stat } from 'node:fs/promises';
import type { BlockNode } from '../../block/node.ts';
import type { BlockStatus, CheckResult, DriverInfo, NodeImpl, OpenContext, RepairMode, WriteFlags, ZeroFlags } from '../../block/types.ts';
import { BlockError, invalidArgument, invalidImage, unsupported } from '../../errors.ts';
import { refineWithFile } from '../../block/host-status.ts';
import { Mutex } from '../../util/range-lock.ts';
import { replaceCid, descriptorText } from './descriptor.ts';
import type { Extent, GrainState } from './extent.ts';
import { FlatExtent } from './extent-flat.ts';
import { SparseExtent } from './extent-sparse.ts';
import { SECTOR } from './sparse-header.ts';

/** st_blocks counts 512-byte units. */
const STAT_BLOCK = 512;
/** Block status answers walk at most this many grains (bounds the work of one call). */
const MAX_STATUS_GRAINS = 8192;

/** Where the descriptor text lives, so the CID can be rewritten. */
export interface DescriptorPlace {
  file: BlockNode;
  offset: number;
  /** Bytes of the area (embedded: the descriptor sectors; a descriptor file: its size). */
  length: number;
  embedded: boolean;
}

export interface VmdkNodeInit {
  file: BlockNode;
  ctx: OpenContext;
  extents: Extent[];
  cid: number;
  parentCid: number;
  createType: string;
  descriptor: DescriptorPlace;
  parentFileNameHint?: string;
}

export class VmdkNode implements NodeImpl {
  readonly size: number;
  readonly alignment = SECTOR;
  readonly extents: readonly Extent[];
  readonly createType: string;
  readonly parentCid: number;
  readonly backingFile?: { filename: string; format?: string };
  #cid: number;
  readonly #file: BlockNode;
  readonly #ctx: OpenContext;
  readonly #descriptor: DescriptorPlace;
  #cidUpdate: Promise<void> | undefined;
  #cidChecked = false;
  readonly #descLock = new Mutex();

  constructor(init: VmdkNodeInit) {
    this.#file = init.file;
    this.#ctx = init.ctx;
    this.extents = init.extents;
    this.#cid = init.cid;
    this.parentCid = init.parentCid;
    this.createType = init.createType;
    this.#descriptor = init.descriptor;
    const last = init.extents[init.extents.length - 1];
    this.size = last ? last.start + last.length : 0;
    if (init.parentFileNameHint !== undefined) this.backingFile = { filename: init.parentFileNameHint, format: 'vmdk' };
  }

  get cid(): number {
    return this.#cid;
  }

  get clusterSize(): number | undefined {
    const first = this.extents[0];
    if (!first || first.flat) return undefined;
    const same = this.extents.every((e) => e.flat === first.flat && e.compressed === first.compressed && e.grainBytes === first.grainBytes);
    return same ? first.grainBytes : undefined;
  }

  /** The extent holding disk offset `offset` (binary search; extents are in disk order). */
  #find(offset: number): Extent {
    let lo = 0;
    let hi = this.extents.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const e = this.extents[mid]!;
      if (offset < e.start) hi = mid - 1;
      else if (offset >= e.start + e.length) lo = mid + 1;
      else return e;
    }
    throw new BlockError('Io', `No VMDK extent holds offset ${offset}`, { path: this.#ctx.filename, offset });
  }

  /** QEMU's vmdk_is_cid_valid: the parent must be a vmdk whose CID is our parentCID. */
  #checkParentCid(): void {
    if (this.#cidChecked) return;
    const b = this.#ctx.backing();
    if (b) {
      const parent = b.impl;
      if (!(parent instanceof VmdkNode)) {
        throw invalidImage(`Backing file '${b.filename}' is not a vmdk image, so the parent CID of '${this.#ctx.filename}' cannot be valid`, { path: this.#ctx.filename });
      }
      if (parent.cid !== this.parentCid) {
        throw invalidImage(
          `Parent CID mismatch: '${this.#ctx.filename}' expects parent CID ${this.parentCid.toString(16)}, backing file '${b.filename}' has CID ${parent.cid.toString(16)} (the parent changed after the child was made)`,
          { path: this.#ctx.filename },
        );
      }
    }
    this.#cidChecked = true;
  }

  async #readBacking(offset: number, length: number): Promise<Buffer> {
    if (!this.#ctx.backing()) return Buffer.alloc(length);
    this.#checkParentCid();
    return this.#ctx.readBacking(offset, length);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    await this.readInto(offset, length, out);
    return out;
  }

  /** Fill out[0, length): data grains are read straight into it, runs of contiguous grains in
   *  one request; unallocated grains without a backing file and zeroed grains become zeros. */
  async readInto(offset: number, length: number, out: Buffer): Promise<void> {
    const put = (piece: Buffer, at: number): void => {
      piece.copy(out, at);
    };
    let pos = offset;
    const end = offset + length;
    while (pos < end) {
      const ext = this.#find(pos);
      const extOff = pos - ext.start;
      const extRemain = Math.min(end, ext.start + ext.length) - pos;
      const at = pos - offset;
      if (ext instanceof FlatExtent) {
        ext.file.debugEvent('read_aio');
        await ext.file.readInto(ext.hostOffset(extOff), out.subarray(at, at + extRemain));
        pos += extRemain;
        continue;
      }
      const inGrain = extOff % ext.grainBytes;
      let n = Math.min(extRemain, ext.grainBytes - inGrain);
      let st: GrainState;
      if (ext.lookupRun) {
        // The run of grains alike from here, from one grain-table fetch.
        ({ state: st, length: n } = await ext.lookupRun(extOff, extRemain));
      } else {
        st = await ext.lookup(extOff);
        if (st.kind === 'data' && !st.compressed) {
          // Coalesce following grains that sit right after this one in the file.
          while (n < extRemain) {
            const next = await ext.lookup(extOff + n);
            if (next.kind !== 'data' || next.compressed || next.host !== st.host + inGrain + n) break;
            n = Math.min(extRemain, n + ext.grainBytes);
          }
        } else if (st.kind === 'unalloc' && this.#ctx.backing()) {
          while (n < extRemain && (await ext.lookup(extOff + n)).kind === 'unalloc') n = Math.min(extRemain, n + ext.grainBytes);
        }
      }
      if (st.kind === 'data' && !st.compressed) {
        ext.file.debugEvent('read_aio');
        await ext.file.readInto(st.host + inGrain, out.subarray(at, at + n));
      } else if (st.kind === 'data') put(await ext.readData(st, inGrain, Math.min(n, ext.grainBytes - inGrain)), at);
      // One backing read for the whole run of unallocated grains.
      else if (st.kind === 'unalloc' && this.#ctx.backing()) {
        this.#file.debugEvent('read_backing_aio');
        put(await this.#readBacking(pos, n), at);
      }
      else out.fill(0, at, at + n);
      pos += n;
    }
  }

  /** Replace the CID once per open, on the first write (QEMU vmdk_write_cid). */
  async #touchCid(): Promise<void> {
    this.#cidUpdate ??= this.#descLock.run(async () => {
      const d = this.#descriptor;
      const avail = Math.max(0, Math.min(d.length, d.file.size - d.offset));
      const text = descriptorText(await d.file.read(d.offset, avail), 'latin1');
      const cid = nodeCrypto().randomInt(0, 0x100000000);
      const next = Buffer.from(replaceCid(text, cid), 'latin1');
      const area = d.embedded ? d.length : Math.ceil(Math.max(next.length, d.file.size) / SECTOR) * SECTOR;
      if (next.length > area) throw unsupported('The new VMDK descriptor does not fit in its area', { path: this.#ctx.filename });
      const buf = Buffer.alloc(area);
      next.copy(buf);
      await d.file.write(d.offset, buf);
      this.#cid = cid;
    });
    try {
      await this.#cidUpdate;
    } catch (e) {
      this.#cidUpdate = undefined;
      throw e;
    }
  }

  #writableSparse(ext: Extent): SparseExtent {
    if (!(ext instanceof SparseExtent)) throw unsupported('No write support for seSparse images available', { path: this.#ctx.filename });
    return ext;
  }

  #grainBase(ext: Extent) {
    return async (grainStart: number, zeroed: boolean): Promise<Buffer> => {
      if (zeroed || !this.#ctx.backing()) return Buffer.alloc(ext.grainBytes);
      const b = await this.#readBacking(ext.start + grainStart, ext.grainBytes);
      return Buffer.from(b);
    };
  }

  async write(offset: number, data: Buffer, _flags: WriteFlags): Promise<void> {
    let pos = offset;
    const end = offset + data.length;
    while (pos < end) {
      const ext = this.#find(pos);
      const extOff = pos - ext.start;
      const extRemain = Math.min(end, ext.start + ext.length) - pos;
      if (ext instanceof FlatExtent) {
        await ext.write(extOff, data.subarray(pos - offset, pos - offset + extRemain));
        pos += extRemain;
        continue;
      }
      const sparse = this.#writableSparse(ext);
      const n = Math.min(extRemain, ext.grainBytes - (extOff % ext.grainBytes));
      await sparse.write(extOff, data.subarray(pos - offset, pos - offset + n), this.#grainBase(ext));
      pos += n;
    }
    await this.#touchCid();
  }

  /** QEMU's vmdk_has_zero_init: flat extents read their files' bytes; sparse ones map nothing. */
  hasZeroInit(): boolean {
    return this.extents.every((e) => !e.flat || e.file.hasZeroInit);
  }

  async writeZeroes(offset: number, length: number, flags: ZeroFlags): Promise<void> {
    let pos = offset;
    const end = offset + length;
    while (pos < end) {
      const ext = this.#find(pos);
      const extOff = pos - ext.start;
      const extRemain = Math.min(end, ext.start + ext.length) - pos;
      if (ext instanceof FlatExtent) {
        await ext.writeZeroes(extOff, extRemain, flags.mayUnmap ?? false);
        pos += extRemain;
        continue;
      }
      const sparse = this.#writableSparse(ext);
      const inGrain = extOff % ext.grainBytes;
      const n = Math.min(extRemain, ext.grainBytes - inGrain);
      const wholeGrain = inGrain === 0 && (n === ext.grainBytes || extOff + n === ext.length);
      if (wholeGrain && sparse.zeroGrain && !sparse.gdAtEnd) {
        await sparse.setZeroed(extOff);
      } else {
        const st = await sparse.lookup(extOff);
        const readsZero = st.kind === 'zero' || (st.kind === 'unalloc' && !this.#ctx.backing());
        if (!readsZero) await sparse.write(extOff, Buffer.alloc(n), this.#grainBase(ext));
      }
      pos += n;
    }
    await this.#touchCid();
  }

  async writeCompressed(offset: number, data: Buffer): Promise<void> {
    const ext = this.#find(offset);
    if (!(ext instanceof SparseExtent) || !ext.compressed) {
      // QEMU writes plain grains when asked for compressed writes to an uncompressed extent.
      await this.write(offset, data, {});
      return;
    }
    const extOff = offset - ext.start;
    if (extOff % ext.grainBytes !== 0 || (data.length !== ext.grainBytes && extOff + data.length !== ext.length)) {
      throw invalidArgument('Compressed writes must cover one whole grain', { path: this.#ctx.filename, offset });
    }
    await ext.writeCompressed(extOff, data);
    await this.#touchCid();
  }

  /** QEMU's vmdk answers block status a grain at a time (a flat extent is one grain). */
  qemuLastStatusUnit(): number {
    const last = this.extents[this.extents.length - 1];
    if (!last || last.length === 0) return 0;
    return last.start + Math.floor((last.length - 1) / last.grainBytes) * last.grainBytes;
  }

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    const ext = this.#find(offset);
    const extOff = offset - ext.start;
    const limit = Math.min(length, ext.start + ext.length - offset);
    const ownFile = ext.file === this.#file;
    if (ext instanceof FlatExtent) {
      // As QEMU (BDRV_BLOCK_RECURSE for flat extents): holes in the extent file read as zero.
      const st: BlockStatus = { offset, length: limit, data: true, zero: false, allocated: true, hostOffset: ext.hostOffset(extOff), ...(ownFile ? {} : { hostFile: ext.file.filename }) };
      const r = await refineWithFile(ext.file, st);
      // The read path reads the extent file there as it is (BlockStatus.hostNode).
      return r.zero ? r : { ...r, hostNode: ext.file };
    }
    const inGrain = extOff % ext.grainBytes;
    let n = Math.min(limit, ext.grainBytes - inGrain);
    const st = await ext.lookup(extOff);
    const same = (o: GrainState): boolean => {
      if (o.kind !== st.kind) return false;
      if (o.kind === 'data' && st.kind === 'data') return !st.compressed && !o.compressed && o.host === st.host + inGrain + n;
      return true;
    };
    if (ext.lookupRun && !(st.kind === 'data' && st.compressed)) {
      // A grain table at a time (lookupRun merges within one table without awaiting per grain).
      const maxBytes = Math.min(limit, n + MAX_STATUS_GRAINS * ext.grainBytes);
      while (n < maxBytes) {
        const next = await ext.lookupRun(extOff + n, maxBytes - n);
        if (!same(next.state)) break;
        n += next.length;
      }
    } else {
      for (let i = 0; n < limit && i < MAX_STATUS_GRAINS; i++) {
        const next = await ext.lookup(extOff + n);
        if (!same(next)) break;
        n = Math.min(limit, n + ext.grainBytes);
      }
    }
    switch (st.kind) {
      case 'unalloc':
        return { offset, length: n, data: false, zero: !this.#ctx.backing(), allocated: false };
      case 'zero':
        return { offset, length: n, data: false, zero: true, allocated: true };
      default:
        return {
          offset,
          length: n,
          data: true,
          zero: false,
          allocated: true,
          // Plain grains are read from their extent file as they are (BlockStatus.hostNode).
          ...(st.compressed ? { compressed: true } : { hostOffset: st.host + inGrain, hostNode: ext.file, ...(ownFile ? {} : { hostFile: ext.file.filename }) }),
        };
    }
  }

  async info(): Promise<DriverInfo> {
    const children: { name: string; node: BlockNode }[] = [];
    for (const e of this.extents) if (e.file !== this.#file && !children.some((c) => c.node === e.file)) children.push({ name: e.displayName, node: e.file });
    const cs = this.clusterSize;
    let extra = 0;
    for (const c of children) {
      try {
        extra += (await stat(c.node.filename)).blocks * STAT_BLOCK;
      } catch {
        // An extent that cannot be stat'ed adds nothing (qemu-img shows what it can).
      }
    }
    return {
      ...(cs !== undefined ? { clusterSize: cs } : {}),
      ...(children.length ? { extraActualSize: extra } : {}),
      ...(this.extents[0]?.compressed ? { needsCompressedWrites: true } : {}),
      formatSpecific: {
        type: 'vmdk',
        data: {
          cid: this.#cid,
          'parent-cid': this.parentCid,
          'create-type': this.createType,
          extents: this.extents.map((e) => ({
            ...(e.compressed ? { compressed: true } : {}),
            'virtual-size': e.length,
            filename: e.displayName,
            ...(!e.flat ? { 'cluster-size': e.grainBytes } : {}),
            format: e.type,
          })),
        },
      },
      ...(children.length ? { children } : {}),
    };
  }

  async check(repair: RepairMode | undefined): Promise<CheckResult> {
    if (repair) throw unsupported('This image format does not support checks', { path: this.#ctx.filename });
    const result: CheckResult = { corruptions: 0, leaks: 0, checkErrors: 0, corruptionsFixed: 0, leaksFixed: 0, messages: [] };
    for (const e of this.extents) {
      if (!(e instanceof SparseExtent)) continue;
      const problem = await e.check();
      if (problem) {
        result.corruptions++;
        result.messages.push(problem);
        break;
      }
    }
    return result;
  }

  async close(): Promise<void> {
    await this.#cidUpdate?.catch(() => {});
  }
}

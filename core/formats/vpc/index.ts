// The vpc format (VHD: Connectix / Microsoft Virtual PC, Hyper-V), as QEMU's block/vpc.c reads
// and writes it. Fixed disks are raw data followed by the footer; dynamic disks are a footer
// copy, the dynamic disk header, the BAT, then blocks (sector bitmap + data) and the footer at
// the end. Differencing disks (type 4) are read as QEMU reads them: like dynamic disks, with the
// parent ignored (unallocated blocks read as zeros). QEMU has no check and no resize for vpc.
// Create options: subformat (dynamic | fixed), force_size.

import { nodeCrypto } from '../../host/lazy-node-modules.ts';
import type { BlockStatus, DriverInfo, FormatDriver, NodeImpl } from '../../block/types.ts';
import type { BlockNode } from '../../block/node.ts';
import { BlockError, invalidArgument, invalidImage } from '../../errors.ts';
import { Mutex } from '../../util/range-lock.ts';
import {
  decodeFooter, encodeFooter, hasCookie, validateFooter, DISK_TYPE_DYNAMIC, DISK_TYPE_FIXED, FEATURES_RESERVED,
  FOOTER_SIZE, FORMAT_VERSION, NO_DATA_OFFSET, VHD_EPOCH_UNIX, type VhdFooter,
} from './footer.ts';
import { decodeDynHeader, encodeDynHeader, DYN_HEADER_SIZE } from './dyn-header.ts';
import { geometryForCreate, virtualSizeOf, SECTOR, VHD_MAX_SIZE, type SizeCalc } from './geometry.ts';
import { optString, type OptionsTree } from '../../block/options-tree.ts';
import { BAT_UNALLOCATED, decodeBat, validateBatLayout, type BatLayout } from './bat.ts';

/** Block size of dynamic disks QEMU creates (spec default, 2 MiB). */
const CREATE_BLOCK_SIZE = 2 << 20;
/** Where QEMU puts the dynamic header and the BAT in new images. */
const CREATE_DYN_HEADER_OFFSET = FOOTER_SIZE;
const CREATE_BAT_OFFSET = FOOTER_SIZE + DYN_HEADER_SIZE;
/** Blocks one block-status answer may merge (keeps a call on a huge empty disk short). */
const MAX_STATUS_BLOCKS = 65536;
/** Creator version written by QEMU: Virtual PC 2007 (5.3). */
const CREATOR_VERSION = 0x00050003;

class VpcNode implements NodeImpl {
  readonly size: number;
  readonly alignment = SECTOR;
  readonly #file: BlockNode;
  readonly #footer: Buffer;
  readonly #fixed: boolean;
  readonly #bat?: { layout: BatLayout; entries: Uint32Array };
  #freeOffset = 0;
  readonly #alloc = new Mutex();
  /** Blocks whose bitmap this session has set to all-present (QEMU does the same on write). */
  readonly #bitmapDone = new Set<number>();

  constructor(file: BlockNode, size: number, footer: Buffer, bat?: { layout: BatLayout; entries: Uint32Array; freeOffset: number }) {
    this.#file = file;
    this.size = size;
    this.#footer = footer;
    this.#fixed = bat === undefined;
    if (bat) {
      this.#bat = { layout: bat.layout, entries: bat.entries };
      this.#freeOffset = bat.freeOffset;
    }
  }

  get clusterSize(): number | undefined {
    return this.#bat?.layout.blockSize;
  }

  /** Host offset of `offset` and the bytes left in its block; hostOffset -1 when unallocated. */
  #map(offset: number): { host: number; avail: number; index: number } {
    const { layout, entries } = this.#bat!;
    const index = Math.floor(offset / layout.blockSize);
    const inBlock = offset - index * layout.blockSize;
    const avail = layout.blockSize - inBlock;
    const e = index < entries.length ? entries[index]! : BAT_UNALLOCATED;
    if (e === BAT_UNALLOCATED) return { host: -1, avail, index };
    return { host: e * SECTOR + layout.bitmapSize + inBlock, avail, index };
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (this.#fixed) return this.#file.read(offset, length);
    const out = Buffer.alloc(length);
    const jobs: Promise<void>[] = [];
    for (let done = 0; done < length; ) {
      const m = this.#map(offset + done);
      const n = Math.min(m.avail, length - done);
      if (m.host >= 0) {
        const at = done;
        jobs.push(this.#file.read(m.host, n).then((b) => void b.copy(out, at)));
      }
      done += n;
    }
    await Promise.all(jobs);
    return out;
  }

  /** QEMU's vpc_has_zero_init: a fixed image is its file's data; a dynamic one maps nothing. */
  hasZeroInit(): boolean {
    return this.#fixed ? this.#file.hasZeroInit : true;
  }

  async write(offset: number, data: Buffer): Promise<void> {
    if (this.#fixed) return this.#file.write(offset, data);
    for (let done = 0; done < data.length; ) {
      let m = this.#map(offset + done);
      const n = Math.min(m.avail, data.length - done);
      if (m.host < 0 || !this.#bitmapDone.has(m.index)) {
        await this.#alloc.run(async () => {
          m = this.#map(offset + done);
          if (m.host < 0) await this.#allocate(m.index);
          else if (!this.#bitmapDone.has(m.index)) await this.#fillBitmap(m.index);
        });
        m = this.#map(offset + done);
      }
      await this.#file.write(m.host, data.subarray(done, done + n));
      done += n;
    }
  }

  /** Mark every sector of an existing block present, as QEMU does before writing to it. */
  async #fillBitmap(index: number): Promise<void> {
    const { layout, entries } = this.#bat!;
    await this.#file.write(entries[index]! * SECTOR, Buffer.alloc(layout.bitmapSize, 0xff));
    this.#bitmapDone.add(index);
  }

  /** New block at the end: bitmap, footer moved past it, then the BAT entry (QEMU's order). */
  async #allocate(index: number): Promise<void> {
    const { layout, entries } = this.#bat!;
    if (index >= entries.length) throw new BlockError('Io', `VHD block ${index} is past the Block Allocation Table`);
    const start = this.#freeOffset;
    const sectorNo = start / SECTOR;
    if (!Number.isInteger(sectorNo) || sectorNo >= BAT_UNALLOCATED) throw new BlockError('Io', 'VHD file is too large for another block');
    await this.#file.write(start, Buffer.alloc(layout.bitmapSize, 0xff));
    const end = start + layout.bitmapSize + layout.blockSize;
    // Bytes already in the file there (the old footer, trailing padding) must read as zeros.
    const dataStart = start + layout.bitmapSize;
    if (dataStart < this.#file.size) await this.#file.writeZeroes(dataStart, Math.min(end, this.#file.size) - dataStart);
    await this.#file.write(end, this.#footer);
    await this.#file.flush();
    const entry = Buffer.alloc(4);
    entry.writeUInt32BE(sectorNo);
    await this.#file.write(layout.tableOffset + index * 4, entry);
    await this.#file.flush();
    entries[index] = sectorNo;
    this.#freeOffset = end;
    this.#bitmapDone.add(index);
  }

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    if (this.#fixed) {
      // Raw data: the file knows its holes (QEMU answers BDRV_BLOCK_RAW and asks the file).
      const inFile = Math.min(length, this.#file.size - offset);
      if (inFile <= 0) return { offset, length, data: false, zero: true, allocated: true };
      const st = await this.#file.blockStatus(offset, inFile);
      return { ...st, allocated: true, hostOffset: offset, ...(st.data && !st.zero ? { hostNode: this.#file } : {}) };
    }
    const first = this.#map(offset);
    if (first.host >= 0) {
      // Reads take the block's bytes from the file as they are (BlockStatus.hostNode).
      return { offset, length: Math.min(first.avail, length), data: true, zero: false, allocated: true, hostOffset: first.host, hostNode: this.#file };
    }
    let n = Math.min(first.avail, length);
    for (let blocks = 1; n < length && blocks < MAX_STATUS_BLOCKS; blocks++) {
      const m = this.#map(offset + n);
      if (m.host >= 0) break;
      n += Math.min(m.avail, length - n);
    }
    return { offset, length: n, data: false, zero: true, allocated: true };
  }

  async flush(): Promise<void> {}

  async info(): Promise<DriverInfo> {
    return this.#bat ? { clusterSize: this.#bat.layout.blockSize } : {};
  }

  async close(): Promise<void> {}
}

/** The force_size_calc option (vpc_parse_options). */
function sizeCalcOption(options: OptionsTree): SizeCalc {
  const v = optString(options, 'force_size_calc');
  if (v === undefined || v === 'chs' || v === 'current_size') return v;
  throw invalidArgument(`Invalid size calculation mode: '${v}'`);
}

async function openVpc(file: BlockNode, force: SizeCalc): Promise<NodeImpl> {
  const fileSize = file.size;
  let buf = await file.read(0, Math.min(FOOTER_SIZE, fileSize));
  let fixed = false;
  if (!hasCookie(buf)) {
    if (fileSize < FOOTER_SIZE) throw invalidImage('invalid VPC image');
    buf = await file.read(fileSize - FOOTER_SIZE, FOOTER_SIZE);
    if (!hasCookie(buf)) throw invalidImage('invalid VPC image');
    fixed = true;
  }
  if (buf.length < FOOTER_SIZE) throw invalidImage('invalid VPC image');
  const footer = decodeFooter(buf);
  validateFooter(buf, footer);
  const size = virtualSizeOf(footer.creatorApp, { cylinders: footer.cylinders, heads: footer.heads, sectorsPerTrack: footer.sectorsPerTrack }, footer.currentSize, force);
  if (size > VHD_MAX_SIZE) throw new BlockError('InvalidImage', 'File too large');
  if (fixed) return new VpcNode(file, size, buf);

  const dynOffset = footer.dataOffset;
  // Like QEMU, a header running past the end of the file reads zeros there.
  if (dynOffset >= BigInt(fileSize)) throw invalidImage('Invalid header magic');
  const dyn = decodeDynHeader(await file.read(Number(dynOffset), DYN_HEADER_SIZE));
  const layout = validateBatLayout(dyn.blockSize, dyn.maxTableEntries, dyn.tableOffset, size, fileSize);
  const table = await file.read(layout.tableOffset, layout.maxTableEntries * 4);
  const bat = decodeBat(table, layout, fileSize);
  return new VpcNode(file, size, buf, { layout, ...bat });
}

/** Footer fields for a new image of the given type and (rounded) geometry. */
function newFooter(diskType: number, size: number, forceSize: boolean, geometry: { cylinders: number; heads: number; sectorsPerTrack: number }): Buffer {
  const f: Omit<VhdFooter, 'checksum'> = {
    features: FEATURES_RESERVED,
    version: FORMAT_VERSION,
    dataOffset: diskType === DISK_TYPE_DYNAMIC ? BigInt(CREATE_DYN_HEADER_OFFSET) : NO_DATA_OFFSET,
    timestamp: Math.max(0, Math.floor(Date.now() / 1000) - VHD_EPOCH_UNIX),
    creatorApp: forceSize ? 'qem2' : 'qemu',
    creatorVersion: CREATOR_VERSION,
    creatorOs: 'Wi2k',
    originalSize: BigInt(size),
    currentSize: BigInt(size),
    cylinders: geometry.cylinders,
    heads: geometry.heads,
    sectorsPerTrack: geometry.sectorsPerTrack,
    diskType,
    uuid: Buffer.from(nodeCrypto().randomUUID().replace(/-/g, ''), 'hex'),
    savedState: 0,
  };
  return encodeFooter(f);
}

export const vpcDriver: FormatDriver = {
  kind: 'format',
  name: 'vpc',
  description: 'VHD (Virtual PC / Hyper-V): fixed or dynamic',
  probe: (head) => (hasCookie(head) ? 100 : 0),
  createOptions: [
    { name: 'subformat', type: 'enum', values: ['dynamic', 'fixed'], default: 'dynamic', help: 'Type of virtual hard disk format. Supported formats are {dynamic (default) | fixed} ' },
    { name: 'force_size', type: 'bool', default: false, help: 'Force disk size calculation to use the actual size specified, rather than using the nearest CHS-based calculation' },
    { name: 'nocow', type: 'bool', default: false, help: 'Turn off copy-on-write (valid only on btrfs)', advanced: true },
  ],
  async create(file, ctx) {
    const fixed = ctx.options['subformat'] === 'fixed';
    const force = ctx.options['force_size'] === true;
    const geo = geometryForCreate(ctx.size, force);
    if (!geo) throw invalidArgument('Disk size is too large, max size is 2040 GiB');
    const footer = newFooter(fixed ? DISK_TYPE_FIXED : DISK_TYPE_DYNAMIC, geo.size, force, geo.geometry);
    if (fixed) {
      await file.truncate(geo.size, { shrink: true });
      await file.write(geo.size, footer);
      return;
    }
    const entries = Math.ceil(geo.size / CREATE_BLOCK_SIZE);
    const batBytes = Math.ceil((entries * 4) / SECTOR) * SECTOR;
    await file.write(0, footer);
    await file.write(CREATE_DYN_HEADER_OFFSET, encodeDynHeader(CREATE_BAT_OFFSET, entries, CREATE_BLOCK_SIZE));
    await file.write(CREATE_BAT_OFFSET, Buffer.alloc(batBytes, 0xff));
    await file.write(CREATE_BAT_OFFSET + batBytes, footer);
  },
  open: (file, ctx) => openVpc(file, sizeCalcOption(ctx.options)),
};

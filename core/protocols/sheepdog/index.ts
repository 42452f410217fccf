// The `sheepdog` protocol driver (QEMU 5.2 block/sheepdog.c; removed from QEMU in 6.0): a vdi
// of a Sheepdog cluster as a block node. Open looks the vdi up (locking the working vdi, as
// QEMU does), reads its inode and object table; reads go to the object each index entry names
// (zeros where none); writes to an object another vdi owns (a snapshot parent) create this
// vdi's own copy on the server (CREATE_AND_WRITE_OBJ with the parent's object as copy-on-write
// source), then record it in the inode. Snapshots (qemu-img snapshot -c/-l/-d, convert -l) are
// vdi snapshots: the working vdi becomes the snapshot and a new working vdi takes its place.
// Create makes a vdi (redundancy, object_size, preallocation) or a clone of a snapshot
// (backing_file=sheepdog:...#TAG). Resize grows only, discard drops whole objects.

import { BlockError, invalidArgument, unsupported } from '../../errors.ts';
import type { BlockStatus, NodeImpl, ProtocolDriver, SnapshotCapability, SnapshotInfo, TruncateOptions } from '../../block/types.ts';
import type { OptionSpec, OptionValues } from '../../block/options-schema.ts';
import { protocolPrefix } from '../../block/filename.ts';
import { SheepdogClient } from './client.ts';
import { parseSheepdogFilename, sheepdogTarget, sheepdogUri, type SheepdogTarget } from './address.ts';
import { INODE_TAG_OFFSET, INODE_VM_CLOCK_OFFSET, INODE_VM_STATE_SIZE_OFFSET, INODE_VDI_SIZE_OFFSET, isSnapshot, MAX_DATA_OBJS, SD_EC_MAX_STRIP, SD_INODE_HEADER_SIZE, SD_MAX_COPIES, SD_MAX_VDI_TAG_LEN, SD_NR_VDIS } from './proto.ts';
import { clusterDefault, dataOid, deleteVdi, flushVdi, lookupVdi, newVdi, readInode, readInodeHeader, readObject, readVdiBitmap, releaseVdi, vdiOid, writeObject, type Inode } from './vdi.ts';

/** 64-bit FNV-1a of a vdi name: where the daemon starts looking for its ids. */
function fnv1a64(s: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(s, 'utf8')) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h;
}

/** Largest request sent to the daemon in one piece. */
const MAX_IO = 4 * 1024 * 1024;

class SheepdogNode implements NodeImpl {
  readonly alignment = 1;
  /** A format above may write past the end: the vdi grows first (QEMU's sd_co_writev). */
  readonly growable = true;
  readonly #c: SheepdogClient;
  readonly #t: SheepdogTarget;
  readonly #label: string;
  #inode: Inode;
  /** Opened on a snapshot (id or tag): QEMU would branch a new working vdi on the first write. */
  readonly #isSnapshot: boolean;
  readonly #locked: boolean;
  /** Objects being created now: later writes to them wait, then write in place. */
  readonly #creating = new Map<number, Promise<void>>();
  #flushSupported = true;
  #closed = false;

  constructor(c: SheepdogClient, t: SheepdogTarget, label: string, inode: Inode, locked: boolean) {
    this.#c = c;
    this.#t = t;
    this.#label = label;
    this.#inode = inode;
    this.#isSnapshot = isSnapshot(inode.header);
    this.#locked = locked;
  }

  get size(): number {
    return this.#inode.header.vdiSize;
  }

  get maxTransfer(): number {
    return Math.max(MAX_IO, this.#inode.objectSize);
  }

  get #io() {
    return { copies: this.#inode.header.nrCopies, copyPolicy: this.#inode.header.copyPolicy };
  }

  /** Split [offset, offset+length) into per-object pieces. */
  #pieces(offset: number, length: number): { idx: number; off: number; len: number; at: number }[] {
    const os = this.#inode.objectSize;
    const out: { idx: number; off: number; len: number; at: number }[] = [];
    let pos = offset;
    while (pos < offset + length) {
      const idx = Math.floor(pos / os);
      const off = pos - idx * os;
      const len = Math.min(os - off, offset + length - pos, MAX_IO);
      out.push({ idx, off, len, at: pos - offset });
      pos += len;
    }
    return out;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    await this.readInto(offset, length, out);
    return out;
  }

  async readInto(offset: number, length: number, into: Buffer): Promise<void> {
    const end = Math.min(offset + length, this.size);
    if (end < offset + length) into.fill(0, Math.max(0, end - offset), length);
    if (end <= offset) return;
    await Promise.all(
      this.#pieces(offset, end - offset).map(async (p) => {
        const pending = this.#creating.get(p.idx);
        if (pending) await pending.catch(() => {});
        const owner = this.#inode.table[p.idx] ?? 0;
        if (owner === 0) {
          into.fill(0, p.at, p.at + p.len);
          return;
        }
        const data = await readObject(this.#c, dataOid(owner, p.idx), p.off, p.len, this.#io);
        data.copy(into, p.at);
      }),
    );
  }

  async write(offset: number, data: Buffer): Promise<void> {
    if (this.#isSnapshot) {
      throw unsupported(`sheepdog vdi '${this.#label}' is a snapshot: Platter does not write to snapshots (QEMU branched a new working vdi from it); clone it with 'create -b' and write the clone`);
    }
    if (offset + data.length > this.size) await this.#grow(offset + data.length);
    await Promise.all(this.#pieces(offset, data.length).map((p) => this.#writePiece(p.idx, p.off, data.subarray(p.at, p.at + p.len))));
  }

  #growing: Promise<void> = Promise.resolve();

  /** Grow to at least `size`, one resize at a time. */
  #grow(size: number): Promise<void> {
    const next = this.#growing.then(() => (size > this.size ? this.truncate(size, {}) : undefined));
    this.#growing = next.catch(() => {});
    return next;
  }

  async #writePiece(idx: number, off: number, data: Buffer): Promise<void> {
    for (;;) {
      const pending = this.#creating.get(idx);
      if (!pending) break;
      await pending.catch(() => {});
    }
    const vid = this.#inode.header.vdiId;
    const owner = this.#inode.table[idx] ?? 0;
    if (owner === vid) {
      await writeObject(this.#c, dataOid(vid, idx), off, data, this.#io);
      return;
    }
    // Not this vdi's own object: create it (copying the parent's, if any), then record it.
    const job = (async () => {
      await writeObject(this.#c, dataOid(vid, idx), off, data, this.#io, { cowOid: owner !== 0 ? dataOid(owner, idx) : 0n });
      await this.#setTableEntry(idx, vid);
    })();
    this.#creating.set(idx, job);
    try {
      await job;
    } finally {
      this.#creating.delete(idx);
    }
  }

  /** data_vdi_id[idx] = vid, in memory and in the inode object. */
  async #setTableEntry(idx: number, vid: number): Promise<void> {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(vid);
    await writeObject(this.#c, vdiOid(this.#inode.header.vdiId), SD_INODE_HEADER_SIZE + idx * 4, b, this.#io);
    this.#inode.table[idx] = vid;
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    // Whole objects that are not allocated already read as zeros; the rest is written.
    const os = this.#inode.objectSize;
    for (let pos = offset; pos < offset + length; ) {
      const idx = Math.floor(pos / os);
      const n = Math.min((idx + 1) * os, offset + length) - pos;
      if ((this.#inode.table[idx] ?? 0) !== 0 || this.#isSnapshot) {
        for (let o = 0; o < n; o += MAX_IO) await this.write(pos + o, Buffer.alloc(Math.min(MAX_IO, n - o)));
      }
      pos += n;
    }
  }

  /** A fresh vdi reads as zeros; a clone reads as its snapshot until written. */
  hasZeroInit(): boolean {
    return this.#inode.table.every((v) => v === 0);
  }

  /** sd_co_pdiscard: objects wholly inside the range are dropped from the inode. */
  async discard(offset: number, length: number): Promise<void> {
    if (this.#isSnapshot) return;
    const os = this.#inode.objectSize;
    const first = Math.ceil(offset / os);
    const end = Math.floor(Math.min(offset + length, this.size) / os) + (offset + length >= this.size ? (this.size % os !== 0 ? 1 : 0) : 0);
    for (let idx = first; idx < end; idx++) {
      if ((this.#inode.table[idx] ?? 0) === 0) continue;
      const pending = this.#creating.get(idx);
      if (pending) await pending.catch(() => {});
      await this.#setTableEntry(idx, 0);
    }
  }

  async blockStatus(offset: number, length: number): Promise<BlockStatus> {
    const os = this.#inode.objectSize;
    const idx0 = Math.floor(offset / os);
    const allocated = (this.#inode.table[idx0] ?? 0) !== 0;
    let idx = idx0 + 1;
    const last = Math.floor((offset + length - 1) / os);
    while (idx <= last && ((this.#inode.table[idx] ?? 0) !== 0) === allocated) idx++;
    const n = Math.min(idx * os, offset + length) - offset;
    if (allocated) return { offset, length: n, data: true, zero: false, allocated: true, hostOffset: offset };
    return { offset, length: n, data: false, zero: true, allocated: true };
  }

  async flush(): Promise<void> {
    if (!this.#flushSupported || this.#closed) return;
    this.#flushSupported = await flushVdi(this.#c, this.#inode.header.vdiId, this.#io);
  }

  /** sd_co_truncate: grow only, within the object table. */
  async truncate(size: number, options: TruncateOptions): Promise<void> {
    const old = this.size;
    if (size === old) return;
    if (options.preallocation !== undefined && options.preallocation !== 'off') throw unsupported(`Unsupported preallocation mode '${options.preallocation}'`);
    if (size < old) throw unsupported('shrinking is not supported');
    if (this.#isSnapshot) throw unsupported(`sheepdog vdi '${this.#label}' is a snapshot and cannot be resized`);
    const max = MAX_DATA_OBJS * this.#inode.objectSize;
    if (size > max) throw invalidArgument('too big image size');
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(size));
    await writeObject(this.#c, vdiOid(this.#inode.header.vdiId), INODE_VDI_SIZE_OFFSET, b, this.#io);
    const n = Math.ceil(size / this.#inode.objectSize);
    const table = new Uint32Array(n);
    table.set(this.#inode.table);
    this.#inode = { ...this.#inode, header: { ...this.#inode.header, vdiSize: size }, table };
  }

  /** sd_get_allocated_file_size: the objects the vdi's table names, whole. */
  async allocatedSize(): Promise<number> {
    let n = 0;
    for (const v of this.#inode.table) if (v !== 0) n++;
    return n * this.#inode.objectSize;
  }

  get snapshots(): SnapshotCapability {
    return {
      list: () => this.#listSnapshots(),
      create: (s) => this.#createSnapshot(s),
      apply: async () => {
        // sd_snapshot_goto loads a VM state; a disk-only snapshot has none.
        // QEMU 5.2: its error_report, then qemu-img's "-2 (No such file or directory)".
        throw new BlockError('NotFound', '-2 (No such file or directory)', {}, { reportedBefore: ['Invalid snapshot'] });
      },
      delete: (id) => this.#deleteSnapshot(id),
      openView: (id) => this.#openView(id),
    };
  }

  /** sd_snapshot_list: vdis of this name from the name's hash on, up to the first free id. */
  async #listSnapshots(): Promise<SnapshotInfo[]> {
    const name = this.#inode.header.name;
    const bitmap = await readVdiBitmap(this.#c);
    const start = Number(fnv1a64(name) & BigInt(SD_NR_VDIS - 1));
    const out: SnapshotInfo[] = [];
    for (let i = 0; i < SD_NR_VDIS; i++) {
      const vid = (start + i) % SD_NR_VDIS;
      if (!(bitmap[vid >> 3]! & (1 << (vid & 7)))) break;
      const h = await readInodeHeader(this.#c, vid, this.#label).catch(() => undefined);
      if (!h || h.name !== name || !isSnapshot(h)) continue;
      out.push({
        id: String(h.snapId),
        name: h.tag,
        vmStateSize: h.vmStateSize,
        dateSec: Number(h.snapCtime >> 32n),
        dateNsec: Number(h.snapCtime & 0xffffffffn),
        vmClockNsec: Number(h.vmClockNsec),
      });
    }
    return out;
  }

  /** sd_snapshot_create: tag the working vdi, make it a snapshot, continue on a new one. */
  async #createSnapshot(s: { name: string; vmClockNsec?: number; vmStateSize?: number }): Promise<SnapshotInfo> {
    const h = this.#inode.header;
    if (this.#isSnapshot) throw invalidArgument(`You can't create a snapshot of a snapshot VDI, ${h.name} (${h.vdiId}).`, {}, { errno: 'EINVAL' });
    if (Buffer.byteLength(s.name) >= SD_MAX_VDI_TAG_LEN) throw invalidArgument(`snapshot tag '${s.name}' is too long`, {}, { errno: 'EINVAL' });
    const tag = Buffer.alloc(SD_MAX_VDI_TAG_LEN);
    tag.write(s.name, 0, 'utf8');
    const u64 = (v: number) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(BigInt(v));
      return b;
    };
    const oid = vdiOid(h.vdiId);
    await writeObject(this.#c, oid, INODE_TAG_OFFSET, tag, this.#io);
    await writeObject(this.#c, oid, INODE_VM_CLOCK_OFFSET, u64(s.vmClockNsec ?? 0), this.#io);
    await writeObject(this.#c, oid, INODE_VM_STATE_SIZE_OFFSET, u64(s.vmStateSize ?? 0), this.#io);
    const newVid = await newVdi(this.#c, { name: h.name, size: h.vdiSize, baseVid: h.vdiId, copies: h.nrCopies, copyPolicy: h.copyPolicy, blockSizeShift: h.blockSizeShift, snapshot: true });
    const snap = await readInodeHeader(this.#c, h.vdiId, this.#label);
    // The lock moves to the new working vdi.
    if (this.#locked) {
      await releaseVdi(this.#c, h.vdiId).catch(() => {});
      await lookupVdi(this.#c, h.name, 0, '', true).catch(() => {});
    }
    this.#inode = await readInode(this.#c, newVid, this.#label);
    return { id: String(snap.snapId), name: snap.tag, vmStateSize: snap.vmStateSize, dateSec: Number(snap.snapCtime >> 32n), dateNsec: Number(snap.snapCtime & 0xffffffffn), vmClockNsec: Number(snap.vmClockNsec) };
  }

  /** A snapshot of this vdi by id (a number) or tag. */
  async #findSnapshot(idOrName: string): Promise<{ vid: number; snapId: number; tag: string }> {
    const name = this.#inode.header.name;
    const list = await this.#listSnapshots();
    const hit = list.find((s) => s.id === idOrName) ?? list.find((s) => s.name === idOrName);
    if (!hit) throw new BlockError('NotFound', `Can't find snapshot '${idOrName}'`);
    const vid = await lookupVdi(this.#c, name, Number(hit.id), '', false);
    return { vid, snapId: Number(hit.id), tag: hit.name };
  }

  async #deleteSnapshot(idOrName: string): Promise<void> {
    const s = await this.#findSnapshot(idOrName);
    await deleteVdi(this.#c, this.#inode.header.name, s.snapId, '');
  }

  async #openView(idOrName: string): Promise<NodeImpl> {
    const s = await this.#findSnapshot(idOrName);
    const c = await SheepdogClient.connect(this.#t.server);
    try {
      const inode = await readInode(c, s.vid, this.#label);
      return new SheepdogNode(c, { ...this.#t, snapId: s.snapId, tag: '' }, this.#label, inode, false);
    } catch (e) {
      await c.close();
      throw e;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await Promise.all([...this.#creating.values()].map((p) => p.catch(() => {})));
    this.#closed = true;
    if (this.#locked) await releaseVdi(this.#c, this.#inode.header.vdiId).catch(() => {});
    await this.#c.close();
  }
}

/** Open vdi `t` on a new connection; `lock` takes the cluster lock of a working vdi. */
async function openVdi(t: SheepdogTarget, label: string, lock: boolean): Promise<SheepdogNode> {
  const c = await SheepdogClient.connect(t.server);
  const snapshot = t.snapId !== 0 || t.tag !== '';
  let lockedVid = 0;
  try {
    const vid = await lookupVdi(c, t.vdi, t.snapId, t.tag, lock && !snapshot);
    if (lock && !snapshot) lockedVid = vid;
    const inode = await readInode(c, vid, label);
    return new SheepdogNode(c, t, label, inode, lock && !snapshot);
  } catch (e) {
    // A vdi locked and then found unreadable is unlocked again.
    if (lockedVid !== 0) await releaseVdi(c, lockedVid).catch(() => {});
    await c.close();
    throw e;
  }
}

/** parse_redundancy: "N" full copies, or "D:P" erasure coding (D data strips, P parity). */
function parseRedundancy(text: string): { copies: number; copyPolicy: number } {
  const bad = () => invalidArgument(`Invalid redundancy mode: '${text}'`);
  const m = /^([0-9]+)(?::([0-9]+))?$/.exec(text);
  if (!m) throw bad();
  const copy = Number(m[1]);
  if (m[2] === undefined) {
    if (copy < 1 || copy > SD_MAX_COPIES) throw bad();
    return { copies: copy, copyPolicy: 0 };
  }
  const parity = Number(m[2]);
  if (![2, 4, 8, 16].includes(copy)) throw invalidArgument('Invalid data strips number (must be one of 2, 4, 8, 16)');
  if (parity < 1 || parity >= SD_EC_MAX_STRIP) throw bad();
  return { copies: copy + parity, copyPolicy: ((copy / 2) << 4) + parity };
}

const createOptions: readonly OptionSpec[] = [
  { name: 'backing_file', type: 'string', help: 'File name of a base image (a sheepdog snapshot: sheepdog:///BASE#TAG)' },
  { name: 'preallocation', type: 'enum', values: ['off', 'full'], default: 'off', help: 'Preallocation mode (allowed values: off, full)' },
  { name: 'redundancy', type: 'string', help: 'Redundancy of the image: number of copies, or data:parity strips for erasure coding' },
  { name: 'object_size', type: 'size', help: 'Sheepdog object size (a power of two, 1 MiB to 2 GiB; the cluster default when absent)', advanced: true },
];

/** sd_co_create: a new vdi (or a clone of a snapshot), then preallocation if asked. */
async function createVdi(filename: string, size: number, options: OptionValues, warn: (m: string) => void): Promise<void> {
  void warn;
  const t = sheepdogTarget(parseSheepdogFilename(filename));
  if (t.snapId !== 0 || t.tag !== '') throw invalidArgument(`Cannot create a sheepdog snapshot '${filename}': name a vdi without '#SNAPSHOT'`);
  const pre = String(options['preallocation'] ?? 'off');
  if (pre !== 'off' && pre !== 'full') throw invalidArgument(`Invalid preallocation mode: '${pre}'`);
  let copies = 0;
  let copyPolicy = 0;
  if (options['redundancy'] !== undefined) ({ copies, copyPolicy } = parseRedundancy(String(options['redundancy'])));
  let blockSizeShift = 0;
  if (options['object_size'] !== undefined) {
    const os = Number(options['object_size']);
    if (!Number.isInteger(os) || os <= 0 || (os & (os - 1)) !== 0) throw invalidArgument('Object size needs to be power of 2');
    blockSizeShift = Math.log2(os);
    if (blockSizeShift < 20 || blockSizeShift > 31) throw invalidArgument('Object size must be between 1 MiB and 2 GiB');
  }
  const c = await SheepdogClient.connect(t.server);
  try {
    let baseVid = 0;
    const backing = options['backing_file'];
    if (typeof backing === 'string' && backing !== '') {
      const p = protocolPrefix(backing);
      if (p !== 'sheepdog' && p !== 'sheepdog+tcp' && p !== 'sheepdog+unix') throw invalidArgument('backing_file must be a sheepdog image');
      const bt = sheepdogTarget(parseSheepdogFilename(backing));
      if (bt.server.type !== t.server.type || JSON.stringify(bt.server) !== JSON.stringify(t.server)) throw invalidArgument(`backing_file '${backing}' is on another sheepdog server than '${filename}'`);
      const bvid = await lookupVdi(c, bt.vdi, bt.snapId, bt.tag, false);
      const bh = await readInodeHeader(c, bvid, backing);
      if (!isSnapshot(bh)) throw invalidArgument('cannot clone from a non snapshot vdi');
      baseVid = bvid;
      if (blockSizeShift === 0) blockSizeShift = bh.blockSizeShift;
      if (copies === 0) {
        copies = bh.nrCopies;
        copyPolicy = bh.copyPolicy;
      }
    }
    if (blockSizeShift === 0) blockSizeShift = (await clusterDefault(c)).blockSizeShift;
    const max = MAX_DATA_OBJS * 2 ** blockSizeShift;
    if (size > max) throw invalidArgument(`An image is too large. The maximum image size is ${Math.floor(max / 1024 / 1024 / 1024)}GB`);
    await newVdi(c, { name: t.vdi, size, baseVid, copies, copyPolicy, blockSizeShift, snapshot: false });
  } finally {
    await c.close();
  }
  if (pre === 'full') {
    // sd_prealloc: every object read and written back, so each is this vdi's own.
    const node = await openVdi(t, filename, true);
    try {
      const os = Math.min(MAX_IO, 2 ** blockSizeShift);
      for (let o = 0; o < node.size; o += os) {
        const n = Math.min(os, node.size - o);
        await node.write(o, await node.read(o, n));
      }
    } finally {
      await node.close();
    }
  }
}

export const sheepdogDriver: ProtocolDriver = {
  kind: 'protocol',
  name: 'sheepdog',
  description: 'A vdi of a Sheepdog cluster (sheepdog[+tcp|+unix]://[HOST:PORT]/VDI[#SNAPSHOT])',
  prefixes: ['sheepdog', 'sheepdog+tcp', 'sheepdog+unix'],
  parseFilename: (filename) => ({ filename }),
  createOptions,
  createsAtImageSize: true,
  displayName: (options) => {
    try {
      return options['filename'] === undefined ? sheepdogUri(sheepdogTarget(options)) : undefined;
    } catch {
      return undefined;
    }
  },
  async create(filename, size, options, ctx) {
    await createVdi(filename, size, options, ctx.warn);
  },
  async open(ctx) {
    const t = sheepdogTarget(ctx.options);
    const label = t.snapId ? `${t.vdi}#${t.snapId}` : t.tag ? `${t.vdi}#${t.tag}` : t.vdi;
    return openVdi(t, label, !ctx.readOnly);
  },
};

export { parseSheepdogFilename, sheepdogTarget };

// The read side of the virtual FAT disk: every sector is made when read (QEMU 7.2 block/vvfat.c
// vvfat_read): the MBR and boot sectors from the layout, the two FAT copies from one table, a
// directory's clusters from its entries, and a file's clusters from the host file, read then (not
// copied at open). Bytes past a host file's end (the rest of its last cluster, or a file that
// shrank) read as zeros.

import { open } from 'node:fs/promises';
import { BlockError, fromSystemError } from '../../errors.ts';
import type { NodeImpl } from '../../block/types.ts';
import { FAT32_BACKUP_BOOT_SECTOR, FAT32_FSINFO_SECTOR, SECTOR, encodeBootSector, encodeFsInfo, encodeMbr } from './layout.ts';
import type { Mapping, Volume } from './tree.ts';
import { Overlay } from './overlay.ts';
import { VvfatWriter } from './rw.ts';

export class VvfatNode implements NodeImpl {
  readonly size: number;
  readonly alignment = SECTOR;
  /** Sectors before the first FAT: MBR, the gap, boot sector (and FAT32's reserved sectors). */
  readonly #head: Buffer;
  readonly #volume: Volume;
  readonly #jsonName: string;
  /** rw: the overlay and the committer. */
  #overlay: Overlay | undefined;
  #writer: VvfatWriter | undefined;
  declare write?: NodeImpl['write'];
  declare flush?: NodeImpl['flush'];

  constructor(volume: Volume, label11: Buffer, jsonName: string) {
    this.#volume = volume;
    this.#jsonName = jsonName;
    const l = volume.layout;
    const g = l.geometry;
    this.size = g.totalSectors * SECTOR;
    const head = Buffer.alloc(l.fatStart * SECTOR);
    if (g.bootSector > 0) encodeMbr(l).copy(head, 0);
    const boot = encodeBootSector(l, label11);
    boot.copy(head, g.bootSector * SECTOR);
    if (l.fatType === 32) {
      const free = l.clusterLimit - l.firstDataCluster - volume.usedClusters;
      const fsinfo = encodeFsInfo(free, volume.nextFreeCluster < l.clusterLimit ? volume.nextFreeCluster : 0xffffffff);
      fsinfo.copy(head, (g.bootSector + FAT32_FSINFO_SECTOR) * SECTOR);
      boot.copy(head, (g.bootSector + FAT32_BACKUP_BOOT_SECTOR) * SECTOR);
      fsinfo.copy(head, (g.bootSector + FAT32_BACKUP_BOOT_SECTOR + FAT32_FSINFO_SECTOR) * SECTOR);
    }
    this.#head = head;
  }

  /** Make the disk writable: writes go to an overlay and are committed into `root`. */
  async enableWrites(root: string): Promise<void> {
    VvfatWriter.check(this.#volume);
    this.#overlay = await Overlay.create(this.size);
    const writer = new VvfatWriter(root, this.#volume, this.#overlay, (o, n) => this.read(o, n));
    this.#writer = writer;
    this.write = (offset, data) => writer.write(offset, data);
    this.flush = () => writer.commit();
  }

  qemuFilename(): string {
    return this.#jsonName;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    await this.readInto(offset, length, out);
    return out;
  }

  async readInto(offset: number, length: number, into: Buffer): Promise<void> {
    await this.#synthesize(offset, length, into);
    if (this.#overlay) await this.#overlay.patch(offset / SECTOR, into.subarray(0, length));
  }

  async #synthesize(offset: number, length: number, into: Buffer): Promise<void> {
    const l = this.#volume.layout;
    const fatBytes = l.sectorsPerFat * SECTOR;
    const fatStart = l.fatStart * SECTOR;
    const dataStart = l.rootDirStart * SECTOR;
    let pos = offset;
    const end = offset + length;
    while (pos < end) {
      const at = pos - offset;
      if (pos < fatStart) {
        const n = Math.min(end, fatStart) - pos;
        this.#head.copy(into, at, pos, pos + n);
        pos += n;
      } else if (pos < dataStart) {
        // Two identical FAT copies.
        const inFat = (pos - fatStart) % fatBytes;
        const n = Math.min(end - pos, fatBytes - inFat, dataStart - pos);
        this.#volume.fat.bytes.copy(into, at, inFat, inFat + n);
        pos += n;
      } else {
        const rel = pos - l.clusterBase * SECTOR;
        const cluster = Math.floor(rel / l.clusterBytes);
        const m = this.#find(cluster);
        if (!m) {
          // Free clusters (and the disk's tail past the last one) read as zeros.
          const next = this.#nextMappingStart(cluster);
          const stop = next === undefined ? end : Math.min(end, l.clusterBase * SECTOR + next * l.clusterBytes);
          into.fill(0, at, at + (stop - pos));
          pos = stop;
          continue;
        }
        const mStart = l.clusterBase * SECTOR + m.begin * l.clusterBytes;
        const mEnd = l.clusterBase * SECTOR + m.end * l.clusterBytes;
        const n = Math.min(end, mEnd) - pos;
        const within = pos - mStart;
        if (m.kind === 'dir') m.entries!.copy(into, at, within, within + n);
        else if (m.materialised) into.fill(0, at, at + n); // the overlay holds all of it
        else await this.#readFile(m, within, into.subarray(at, at + n));
        pos += n;
      }
    }
  }

  /** The mapping holding `cluster` (binary search over the runs, which are in cluster order). */
  #find(cluster: number): Mapping | undefined {
    const ms = this.#volume.mappings;
    let lo = 0;
    let hi = ms.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const m = ms[mid]!;
      if (cluster < m.begin) hi = mid - 1;
      else if (cluster >= m.end) lo = mid + 1;
      else return m;
    }
    return undefined;
  }

  #nextMappingStart(cluster: number): number | undefined {
    for (const m of this.#volume.mappings) if (m.begin > cluster) return m.begin;
    return undefined;
  }

  /** Bytes [from, from + out.length) of a file's clusters: the host file's bytes, zeros past its end. */
  async #readFile(m: Mapping, from: number, out: Buffer): Promise<void> {
    let fh;
    try {
      fh = await open(m.path as unknown as string, 'r');
    } catch (e) {
      throw fromSystemError(e, { path: m.path.toString('utf8'), op: 'read' });
    }
    try {
      let done = 0;
      while (done < out.length) {
        const { bytesRead } = await fh.read(out, done, out.length - done, from + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      out.fill(0, done);
    } catch (e) {
      throw e instanceof BlockError ? e : fromSystemError(e, { path: m.path.toString('utf8'), op: 'read' });
    } finally {
      await fh.close().catch(() => {});
    }
  }

  async close(): Promise<void> {
    if (!this.#writer) return;
    try {
      await this.#writer.commit();
    } finally {
      await this.#overlay!.close();
    }
  }
}

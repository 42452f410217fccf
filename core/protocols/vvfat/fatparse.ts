// Reading back what a guest made of the virtual FAT volume (for `rw` commits): the FAT and the
// directory tree, walked from the root, with every rule a commit relies on checked first (FAT spec
// "FAT Data Structure", "Directory Structure", "Long File Name Implementation"). Anything that does
// not hold (a chain leaving the volume, a loop, two files sharing a cluster, a size larger than its
// chain, a broken name, a clash) makes the volume inconsistent, and nothing is committed, as QEMU's
// vvfat refuses to commit an inconsistent volume (is_consistent).

import { DIRENT_SIZE, shortNameChecksum } from './names.ts';
import { FatTable, SECTOR, type VolumeLayout } from './layout.ts';

export interface WantedFile {
  kind: 'file';
  size: number;
  /** Clusters in chain order (empty for an empty file). */
  chain: number[];
}
export interface WantedDir {
  kind: 'dir';
  chain: number[];
}
export type Wanted = WantedFile | WantedDir;

export class InconsistentVolume extends Error {}

/** Highest valid cluster number + 1 of the volume as its boot sector describes it. */
export function clusterEnd(l: VolumeLayout): number {
  if (l.fatType === 32) return l.clusterLimit;
  const dataStart = l.rootDirStart + (l.rootEntries * DIRENT_SIZE) / SECTOR;
  return Math.floor((l.geometry.totalSectors - dataStart) / l.sectorsPerCluster) + 2;
}

/** The guest's tree: path below the root -> what it is. */
export async function readGuestTree(l: VolumeLayout, read: (offset: number, length: number) => Promise<Buffer>): Promise<Map<string, Wanted>> {
  const fat = new FatTable(l.fatType, l.sectorsPerFat);
  (await read(l.fatStart * SECTOR, l.sectorsPerFat * SECTOR)).copy(fat.bytes);
  const end = clusterEnd(l);
  const eoc = l.fatType === 12 ? 0xff8 : l.fatType === 16 ? 0xfff8 : 0x0ffffff8;
  const owner = new Map<number, string>();
  const cb = l.clusterBytes;

  const chainOf = (first: number, what: string): number[] => {
    const chain: number[] = [];
    let c = first;
    for (;;) {
      if (c < 2 || c >= end) throw new InconsistentVolume(`${what}: cluster ${c} is outside the volume`);
      const prev = owner.get(c);
      if (prev !== undefined) throw new InconsistentVolume(`${what}: cluster ${c} is also used by ${prev || '/'}`);
      owner.set(c, what);
      chain.push(c);
      let next = fat.get(c);
      if (l.fatType === 32) next &= 0x0fffffff;
      if (next >= eoc) return chain;
      c = next;
    }
  };
  const readChain = async (chain: number[]): Promise<Buffer> => {
    const parts: Buffer[] = [];
    for (const c of chain) parts.push(await read((l.clusterBase + c * l.sectorsPerCluster) * SECTOR, cb));
    return Buffer.concat(parts);
  };

  const out = new Map<string, Wanted>();
  const walk = async (rel: string, entries: Buffer): Promise<void> => {
    const names = new Set<string>();
    let lfn: { parts: string[]; count: number; sum: number } | undefined;
    for (let at = 0; at + DIRENT_SIZE <= entries.length; at += DIRENT_SIZE) {
      const e = entries.subarray(at, at + DIRENT_SIZE);
      if (e[0] === 0x00) break;
      if (e[0] === 0xe5) {
        lfn = undefined;
        continue;
      }
      const attr = e[11]!;
      if (attr === 0x0f) {
        // Long-name part: the part flagged 0x40 comes first, then ordinals count down to 1.
        const ord = e[0]! & 0x1f;
        const chars: number[] = [];
        for (const o of [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30]) chars.push(e.readUInt16LE(o));
        let text = '';
        for (const ch of chars) {
          if (ch === 0 || ch === 0xffff) break;
          text += String.fromCharCode(ch);
        }
        if (e[0]! & 0x40) lfn = { parts: [], count: ord, sum: e[13]! };
        if (lfn && ord === lfn.count - lfn.parts.length && e[13] === lfn.sum) lfn.parts.unshift(text);
        else lfn = undefined;
        continue;
      }
      if (attr & 0x08) {
        lfn = undefined; // volume label
        continue;
      }
      const short = e.subarray(0, 11);
      if (short[0] === 0x2e && (short.toString('latin1') === '.          ' || short.toString('latin1') === '..         ')) {
        lfn = undefined;
        continue;
      }
      let name: string;
      if (lfn && lfn.parts.length === lfn.count && shortNameChecksum(short) === lfn.sum) name = lfn.parts.join('');
      else {
        // No long name: the short name in lower case (QEMU's downcase_short_names).
        const raw = Buffer.from(short);
        if (raw[0] === 0x05) raw[0] = 0xe5;
        const base = raw.toString('latin1', 0, 8).trimEnd();
        const ext = raw.toString('latin1', 8, 11).trimEnd();
        name = (ext ? `${base}.${ext}` : base).toLowerCase();
      }
      lfn = undefined;
      const path = rel ? `${rel}/${name}` : name;
      if (name === '' || name === '.' || name === '..' || /[/\0]/.test(name)) throw new InconsistentVolume(`invalid file name '${path}'`);
      if (names.has(name)) throw new InconsistentVolume(`'${path}' appears twice`);
      names.add(name);
      const first = e.readUInt16LE(26) | (l.fatType === 32 ? e.readUInt16LE(20) << 16 : 0);
      const size = e.readUInt32LE(28);
      if (attr & 0x10) {
        if (first === 0) throw new InconsistentVolume(`directory '${path}' has no clusters`);
        const chain = chainOf(first, path);
        out.set(path, { kind: 'dir', chain });
        await walk(path, await readChain(chain));
      } else {
        const chain = first === 0 ? [] : chainOf(first, path);
        if (chain.length * cb < size) throw new InconsistentVolume(`'${path}' is ${size} bytes but has ${chain.length * cb} bytes of clusters`);
        if (chain.length > Math.ceil(size / cb)) throw new InconsistentVolume(`'${path}' has more clusters than its size needs`);
        out.set(path, { kind: 'file', size, chain });
      }
    }
  };

  let rootEntries: Buffer;
  if (l.fatType === 32) {
    const chain = chainOf(l.rootCluster, '');
    out.set('', { kind: 'dir', chain });
    rootEntries = await readChain(chain);
  } else {
    rootEntries = await read(l.rootDirStart * SECTOR, l.rootEntries * DIRENT_SIZE);
    out.set('', { kind: 'dir', chain: [] });
  }
  await walk('', rootEntries);
  return out;
}

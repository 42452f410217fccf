// `rw`: writes to the virtual FAT disk go to an overlay (overlay.ts) and are committed into the
// host directory when the disk is flushed or closed (QEMU 7.2's vvfat commits after each write
// once the volume is consistent, block/vvfat.c try_commit; Platter at flush and close, where a
// guest's changes are complete). A commit reads the guest's tree back (fatparse.ts), compares it
// with what the host held, and applies the difference: new and changed files, new and removed
// directories and files, renames (as a new file and a removed one).
//
// Never losing a host file comes first. Before anything is changed: the volume must be consistent,
// every host entry the commit touches must be as it was when read (else someone else changed it),
// no symbolic link or special file may be written through, and every new or changed file's bytes
// are written beside its target under a temporary name and synced. Only then are the temporary
// files renamed into place and the removed entries removed. A commit refused leaves the directory
// as it was and says why; the changes stay in the overlay, so a later flush may still commit them.

import { lstat, mkdir, open, readdir, rename, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { nodeCrypto } from '../../host/lazy-node-modules.ts';
import { BlockError } from '../../errors.ts';
import { SECTOR } from './layout.ts';
import { InconsistentVolume, readGuestTree, type WantedFile } from './fatparse.ts';
import type { Overlay } from './overlay.ts';
import type { HostEntry, Mapping, Volume } from './tree.ts';

/** What the host holds at a path as far as commits know, and the clusters the guest had it in. */
interface Known {
  host: HostEntry;
  /** Files: the chain and size the volume showed for it after the last commit (or at open). */
  chain?: number[];
  size?: number;
  /** The file's clusters at open, read from the host while not overwritten. */
  mapping?: Mapping;
}

export class VvfatWriter {
  readonly #root: string;
  readonly #volume: Volume;
  readonly #overlay: Overlay;
  readonly #read: (offset: number, length: number) => Promise<Buffer>;
  readonly #known = new Map<string, Known>();
  /** Clusters written since the last commit. */
  #dirty = new Set<number>();
  /** Sectors written since the last commit (including the FATs and the fixed root). */
  #changed = false;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(root: string, volume: Volume, overlay: Overlay, read: (offset: number, length: number) => Promise<Buffer>) {
    this.#root = root;
    this.#volume = volume;
    this.#overlay = overlay;
    this.#read = read;
    const byRel = new Map(volume.mappings.map((m) => [m.rel, m]));
    for (const [rel, host] of volume.host) {
      const m = byRel.get(rel);
      const k: Known = { host };
      if (host.kind !== 'dir') {
        k.size = host.size;
        k.chain = m ? Array.from({ length: m.end - m.begin }, (_, i) => m.begin + i) : [];
        if (m) k.mapping = m;
      }
      this.#known.set(rel, k);
    }
  }

  /** Host names that are not UTF-8 cannot be matched with the guest's names: rw refuses them. */
  static check(volume: Volume): void {
    for (const [rel, h] of volume.host) {
      if (!h.utf8) throw new BlockError('Unsupported', `vvfat 'rw': the host name '${rel}' is not UTF-8, so changes could not be matched to it`);
    }
  }

  /** One at a time: writes and commits. */
  #serial<T>(f: () => Promise<T>): Promise<T> {
    const p = this.#queue.then(f, f);
    this.#queue = p.catch(() => {});
    return p;
  }

  write(offset: number, data: Buffer): Promise<void> {
    return this.#serial(async () => {
      const l = this.#volume.layout;
      const first = offset / SECTOR;
      const current = await this.#read(offset, data.length);
      // Sectors that change, in runs; unchanged ones stay out of the overlay.
      const count = data.length / SECTOR;
      const differs = (i: number) => !data.subarray(i * SECTOR, (i + 1) * SECTOR).equals(current.subarray(i * SECTOR, (i + 1) * SECTOR));
      for (let i = 0; i < count; i++) {
        if (first + i < l.fatStart && differs(i)) this.#checkReserved(first + i, data.subarray(i * SECTOR, (i + 1) * SECTOR), current.subarray(i * SECTOR, (i + 1) * SECTOR));
      }
      let i = 0;
      while (i < count) {
        if (!differs(i)) {
          i++;
          continue;
        }
        let j = i + 1;
        while (j < count && differs(j)) j++;
        await this.#overlay.write(first + i, Buffer.from(data.subarray(i * SECTOR, j * SECTOR)));
        this.#changed = true;
        for (let k = i; k < j; k++) {
          if (first + k >= l.rootDirStart) this.#dirty.add(Math.floor((first + k - l.clusterBase) / l.sectorsPerCluster));
        }
        i = j;
      }
    });
  }

  /** The MBR and boot sectors may not change, but for the "dirty volume" flag byte (QEMU allows
   *  only that byte too: "Tried to write to protected bootsector"); FAT32's FSInfo may. */
  #checkReserved(sector: number, want: Buffer, have: Buffer): void {
    const l = this.#volume.layout;
    const boot = l.geometry.bootSector;
    if (l.fatType === 32 && (sector === boot + 1 || sector === boot + 7)) return;
    const flagByte = sector === boot ? (l.fatType === 32 ? 65 : 37) : -1;
    for (let i = 0; i < SECTOR; i++) {
      if (i !== flagByte && want[i] !== have[i]) throw new BlockError('Io', 'Tried to write to protected bootsector', { op: 'write', offset: sector * SECTOR });
    }
  }

  /** Commit the guest's changes into the host directory (nothing when nothing was written). */
  commit(): Promise<void> {
    return this.#serial(() => this.#commit());
  }

  async #commit(): Promise<void> {
    if (!this.#changed) return;
    const l = this.#volume.layout;
    const refuse = (why: string) => new BlockError('Io', `vvfat: nothing was committed to '${this.#root}': ${why}`, { path: this.#root, op: 'commit' });
    let wanted;
    try {
      wanted = await readGuestTree(l, this.#read);
    } catch (e) {
      if (e instanceof InconsistentVolume) throw refuse(`the FAT volume is not consistent (${e.message})`);
      throw e;
    }
    // The plan.
    const mkdirs: string[] = [];
    const writes: { rel: string; file: WantedFile }[] = [];
    const removeFiles: string[] = [];
    const removeDirs: string[] = [];
    for (const [rel, w] of wanted) {
      if (rel === '') continue;
      const k = this.#known.get(rel);
      if (!k) {
        if (w.kind === 'dir') mkdirs.push(rel);
        else writes.push({ rel, file: w });
        continue;
      }
      const wasDir = k.host.kind === 'dir';
      if (wasDir !== (w.kind === 'dir')) throw refuse(`'${rel}' was a ${wasDir ? 'directory' : 'file'} and is now a ${wasDir ? 'file' : 'directory'}; Platter does not turn one into the other`);
      if (w.kind !== 'file') continue;
      const same = w.size === k.size && w.chain.length === k.chain!.length && w.chain.every((c, i) => c === k.chain![i] && !this.#dirty.has(c));
      if (same) continue;
      if (k.host.link || k.host.kind === 'other') throw refuse(`'${rel}' is a symbolic link or special file on the host, which Platter does not write through`);
      if (k.host.readOnly) throw refuse(`'${rel}' is read-only on the host`);
      writes.push({ rel, file: w });
    }
    /** The nearest ancestor that is a symbolic link on the host, if any. */
    const linkAbove = (rel: string): string | undefined => {
      for (let i = rel.lastIndexOf('/'); i > 0; i = rel.lastIndexOf('/', i - 1)) {
        const up = rel.slice(0, i);
        if (this.#known.get(up)?.host.link) return up;
      }
      return undefined;
    };
    for (const [rel, k] of this.#known) {
      if (rel === '' || wanted.has(rel)) continue;
      const link = linkAbove(rel);
      if (link !== undefined) {
        // Inside a linked directory: removing the link removes the view, never the files it leads to.
        if (!wanted.has(link)) continue;
        throw refuse(`'${rel}' is inside '${link}', a symbolic link on the host, which Platter does not write through`);
      }
      if (k.host.readOnly && !k.host.link) throw refuse(`'${rel}' is read-only on the host`);
      if (k.host.kind === 'dir' && !k.host.link) removeDirs.push(rel);
      else removeFiles.push(rel);
    }
    for (const rel of [...mkdirs, ...writes.map((w) => w.rel)]) {
      const link = linkAbove(rel);
      if (link !== undefined) throw refuse(`'${rel}' is inside '${link}', a symbolic link on the host, which Platter does not write through`);
    }
    if (mkdirs.length + writes.length + removeFiles.length + removeDirs.length === 0) {
      this.#dirty.clear();
      this.#changed = false;
      return;
    }
    // Nothing touched may have changed on the host since it was read.
    const host = (rel: string) => join(this.#root, rel);
    for (const rel of [...writes.map((w) => w.rel), ...removeFiles, ...removeDirs, ...mkdirs]) {
      const k = this.#known.get(rel);
      const st = await lstat(host(rel)).catch(() => undefined);
      if (!k) {
        if (st) throw refuse(`'${rel}' appeared on the host since the directory was read`);
        continue;
      }
      if (!st || st.ino !== k.host.ino || (k.host.kind === 'file' && !k.host.link && (st.size !== k.host.size || st.mtimeMs !== k.host.mtimeMs))) {
        throw refuse(`'${rel}' changed on the host since the directory was read`);
      }
    }
    const removing = new Set([...removeFiles, ...removeDirs]);
    for (const rel of removeDirs) {
      for (const name of await readdir(host(rel))) {
        const child = `${rel}/${name}`;
        if (!removing.has(child)) throw refuse(`'${child}' is on the host but not in the volume; its directory '${rel}' cannot be removed`);
      }
    }
    // Stage: new directories, then every new or changed file's bytes under a temporary name.
    const made: string[] = [];
    const staged: { tmp: string; rel: string }[] = [];
    const rollback = async () => {
      for (const s of staged) await unlink(s.tmp).catch(() => {});
      for (const d of made.reverse()) await rmdir(host(d)).catch(() => {});
    };
    try {
      for (const rel of mkdirs.sort((a, b) => a.split('/').length - b.split('/').length)) {
        await mkdir(host(rel));
        made.push(rel);
      }
      for (const w of writes) {
        const target = host(w.rel);
        const tmp = join(target, '..', `.platter-vvfat-${nodeCrypto().randomBytes(6).toString('hex')}`);
        const fh = await open(tmp, 'wx', 0o644);
        staged.push({ tmp, rel: w.rel });
        try {
          let left = w.file.size;
          let pos = 0;
          for (const c of w.file.chain) {
            if (left <= 0) break;
            const n = Math.min(left, l.clusterBytes);
            const data = await this.#read((l.clusterBase + c * l.sectorsPerCluster) * SECTOR, l.clusterBytes);
            await fh.write(data, 0, n, pos);
            pos += n;
            left -= n;
          }
          await fh.sync();
        } finally {
          await fh.close();
        }
      }
      // Clusters still read from host files about to change or go are copied into the overlay
      // first, so the disk reads the same after the commit.
      for (const rel of [...writes.map((w) => w.rel), ...removeFiles]) {
        const m = this.#known.get(rel)?.mapping;
        if (!m || m.materialised) continue;
        for (let c = m.begin; c < m.end; c++) {
          const sector = l.clusterBase + c * l.sectorsPerCluster;
          for (let s = 0; s < l.sectorsPerCluster; s++) {
            if (this.#overlay.has(sector + s)) continue;
            await this.#overlay.write(sector + s, await this.#read((sector + s) * SECTOR, SECTOR));
          }
        }
        m.materialised = true;
      }
    } catch (e) {
      await rollback();
      throw refuse(`staging the changes failed (${e instanceof Error ? e.message : String(e)})`);
    }
    // Apply: new files into place, then removals (files, then directories deepest first).
    try {
      for (const s of staged) await rename(s.tmp, host(s.rel));
      for (const rel of removeFiles) await unlink(host(rel));
      for (const rel of removeDirs.sort((a, b) => b.split('/').length - a.split('/').length)) await rmdir(host(rel));
    } catch (e) {
      // Only renames of staged files and removals the guest asked for can have happened.
      await rollback();
      throw new BlockError('Io', `vvfat: the commit to '${this.#root}' stopped part way (${e instanceof Error ? e.message : String(e)}); files already renamed into place hold the volume's contents, nothing else was lost`, { path: this.#root, op: 'commit' });
    }
    // What the host holds now.
    for (const rel of removing) this.#known.delete(rel);
    for (const rel of mkdirs) {
      const st = await lstat(host(rel));
      this.#known.set(rel, { host: { kind: 'dir', link: false, size: 0, mtimeMs: st.mtimeMs, ino: st.ino, utf8: true } });
    }
    for (const w of writes) {
      const st = await lstat(host(w.rel));
      this.#known.set(w.rel, { host: { kind: 'file', link: false, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, utf8: true }, chain: w.file.chain, size: w.file.size });
    }
    this.#dirty.clear();
    this.#changed = false;
  }
}

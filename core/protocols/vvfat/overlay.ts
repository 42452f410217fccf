// Where `rw` writes go before they are committed into the host directory: a sparse temporary file
// the size of the disk, deleted from the file system as soon as it is open (QEMU keeps a temporary
// qcow image, vvfat.qcow, the same way), and one bit per sector saying which sectors it holds.

import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SECTOR } from './layout.ts';

export class Overlay {
  readonly #fh: FileHandle;
  readonly #written: Uint8Array;

  private constructor(fh: FileHandle, sectors: number) {
    this.#fh = fh;
    this.#written = new Uint8Array(Math.ceil(sectors / 8));
  }

  static async create(size: number): Promise<Overlay> {
    const dir = await mkdtemp(join(tmpdir(), 'platter-vvfat-'));
    const path = join(dir, 'vvfat.overlay');
    const fh = await open(path, 'w+', 0o600);
    try {
      await fh.truncate(size);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    return new Overlay(fh, size / SECTOR);
  }

  has(sector: number): boolean {
    return (this.#written[sector >> 3]! & (1 << (sector & 7))) !== 0;
  }

  /** Any sector of [first, first + count) held here. */
  any(first: number, count: number): boolean {
    for (let s = first; s < first + count; s++) if (this.has(s)) return true;
    return false;
  }

  async write(sector: number, data: Buffer): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.#fh.write(data, done, data.length - done, sector * SECTOR + done);
      done += bytesWritten;
    }
    for (let s = sector; s < sector + data.length / SECTOR; s++) this.#written[s >> 3]! |= 1 << (s & 7);
  }

  /** Put the held sectors of [sector, sector + into.length / 512) over `into`. */
  async patch(sector: number, into: Buffer): Promise<void> {
    const count = into.length / SECTOR;
    let i = 0;
    while (i < count) {
      if (!this.has(sector + i)) {
        i++;
        continue;
      }
      let j = i;
      while (j < count && this.has(sector + j)) j++;
      await this.#fh.read(into, i * SECTOR, (j - i) * SECTOR, (sector + i) * SECTOR);
      i = j;
    }
  }

  async close(): Promise<void> {
    await this.#fh.close();
  }
}

// SectorCipher: an unlocked payload key and its cipher spec, encrypting/decrypting runs of
// 512-byte sectors numbered by the caller (LUKS: guest sector; qcow AES: guest sector). Big
// requests are cut into pieces that run in parallel on the worker pool; tiny ones run inline
// (a worker round trip costs more than encrypting one 4 KiB page). The key is held in one
// buffer that close() zeroes.

import { BlockError } from '../errors.ts';
import type { WorkerPool } from '../workers/pool.ts';
import { CRYPTO_SECTOR_SIZE, cryptSectors, type SectorCipherSpec } from './sector-engine.ts';

/** Requests up to this size are encrypted on the calling thread. */
const INLINE_MAX = 4096;
/** Piece size sent to one worker task. */
const PIECE_BYTES = 256 * 1024;

export class SectorCipher {
  readonly spec: SectorCipherSpec;
  readonly sectorSize = CRYPTO_SECTOR_SIZE;
  readonly #key: Buffer;
  readonly #workers: WorkerPool;
  #closed = false;

  /** Keeps its own copy of `key`. */
  constructor(spec: SectorCipherSpec, key: Uint8Array, workers: WorkerPool) {
    this.spec = spec;
    this.#key = Buffer.alloc(key.length);
    this.#key.set(key);
    this.#workers = workers;
  }

  /** Encrypt `data` (whole sectors) whose first sector is number `startSector`. New buffer. */
  encrypt(startSector: number, data: Buffer): Promise<Buffer> {
    return this.#run(startSector, data, true);
  }

  /** Decrypt `data` (whole sectors) whose first sector is number `startSector`. New buffer. */
  decrypt(startSector: number, data: Buffer): Promise<Buffer> {
    return this.#run(startSector, data, false);
  }

  async #run(startSector: number, data: Buffer, encrypt: boolean): Promise<Buffer> {
    if (this.#closed) throw new BlockError('Io', 'Encryption key is closed');
    if (data.length <= INLINE_MAX) {
      const r = cryptSectors(this.spec, this.#key, startSector, data, encrypt);
      return Buffer.from(r.buffer, r.byteOffset, r.length);
    }
    const out = Buffer.allocUnsafe(data.length);
    const jobs: Promise<void>[] = [];
    for (let off = 0; off < data.length; off += PIECE_BYTES) {
      const len = Math.min(PIECE_BYTES, data.length - off);
      const piece = new Uint8Array(len);
      piece.set(data.subarray(off, off + len));
      const key = new Uint8Array(this.#key);
      const task = encrypt ? 'luksEncrypt' : 'luksDecrypt';
      jobs.push(
        this.#workers
          .run(task, { spec: this.spec, key, startSector: startSector + off / this.sectorSize, data: piece }, [piece.buffer, key.buffer])
          .then((r) => {
            out.set(r, off);
          }),
      );
    }
    await Promise.all(jobs);
    return out;
  }

  /** Zero the key; later calls fail. */
  close(): void {
    this.#key.fill(0);
    this.#closed = true;
  }
}

// Scratch buffers reused from one request to the next (the compressed bytes a read-only format
// reads before inflating them). A fresh large buffer costs a page fault for every 4 KiB the first
// time it is written: for a whole-image convert of a compressed image that cost more system time
// than the inflating itself.

export class ScratchBuffers {
  readonly #free: Buffer[] = [];
  readonly #size: number;
  readonly #keep: number;

  /** Buffers of `size` bytes, at most `keep` of them kept between uses. */
  constructor(size: number, keep: number) {
    this.#size = size;
    this.#keep = keep;
  }

  /** A buffer of at least `length` bytes (give it back with `give` once nothing reads it). */
  take(length: number): Buffer {
    if (length <= this.#size) {
      const b = this.#free.pop();
      if (b) return b;
      return Buffer.allocUnsafeSlow(this.#size);
    }
    // Longer than the pooled size: its own buffer, not kept.
    return Buffer.allocUnsafeSlow(length);
  }

  give(b: Buffer): void {
    if (b.length === this.#size && this.#free.length < this.#keep) this.#free.push(b);
  }

  clear(): void {
    this.#free.length = 0;
  }
}

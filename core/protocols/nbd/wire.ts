// Byte-level plumbing shared by the NBD client and server: an exact-length reader over a stream
// (the handshake and the reply/request loops read "exactly n bytes or fail"), bounded by the
// stream's end, an error, or an inactivity deadline, so a silent or vanished peer never hangs.

import type { Duplex } from 'node:stream';

export class PeerClosed extends Error {
  constructor(message = 'Connection closed') {
    super(message);
    this.name = 'PeerClosed';
  }
}

export class PeerTimeout extends Error {
  constructor(message = 'Connection timed out') {
    super(message);
    this.name = 'PeerTimeout';
  }
}

/** Reads exact byte counts from a Duplex. One reader at a time (reads are serialised by callers). */
export class ExactReader {
  #chunks: Buffer[] = [];
  #avail = 0;
  #want: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  /** A readInto() under way: bytes go straight into `dest` as they arrive. */
  #fill: { dest: Buffer; off: number; resolve: () => void; reject: (e: Error) => void } | undefined;
  #error: Error | undefined;
  #stream: Duplex | undefined;
  #onData = (b: Buffer) => this.#push(b);
  #onEnd = () => this.fail(new PeerClosed());
  #onError = (e: Error) => this.fail(e);
  #timer: NodeJS.Timeout | undefined;
  #timeoutMs = 0;

  constructor(stream: Duplex) {
    this.attach(stream);
  }

  /** Read from another stream from now on (after STARTTLS). Bytes already buffered are kept. */
  attach(stream: Duplex): void {
    this.detach();
    this.#stream = stream;
    stream.on('data', this.#onData);
    stream.on('end', this.#onEnd);
    stream.on('close', this.#onEnd);
    stream.on('error', this.#onError);
  }

  detach(): void {
    const s = this.#stream;
    if (!s) return;
    s.off('data', this.#onData);
    s.off('end', this.#onEnd);
    s.off('close', this.#onEnd);
    s.off('error', this.#onError);
    this.#stream = undefined;
  }

  get buffered(): number {
    return this.#avail;
  }

  /** Fail the pending and every later read with `e` (the first failure wins). */
  fail(e: Error): void {
    if (this.#error) return;
    this.#error = e;
    this.#clearTimer();
    const w = this.#want;
    this.#want = undefined;
    w?.reject(e);
    const f = this.#fill;
    this.#fill = undefined;
    f?.reject(e);
  }

  get failed(): Error | undefined {
    return this.#error;
  }

  /** While a read waits, fail it when no byte arrives for `ms` (0: wait forever). */
  setTimeout(ms: number): void {
    this.#timeoutMs = ms;
    if (this.#want || this.#fill) this.#armTimer();
    else this.#clearTimer();
  }

  read(n: number): Promise<Buffer> {
    if (this.#avail >= n) return Promise.resolve(this.#take(n));
    if (this.#error) return Promise.reject(this.#error);
    if (this.#want) return Promise.reject(new Error('ExactReader: concurrent reads'));
    return new Promise<Buffer>((resolve, reject) => {
      this.#want = { n, resolve, reject };
      this.#armTimer();
    });
  }

  /** Fill all of `dest` with the next bytes, copied from the stream's chunks as they arrive (no
   *  buffer of their own: a READ's data go straight to the reader's buffer). */
  readInto(dest: Buffer): Promise<void> {
    if (this.#want || this.#fill) return Promise.reject(new Error('ExactReader: concurrent reads'));
    const off = this.#copyOut(dest, 0);
    if (off === dest.length) return Promise.resolve();
    if (this.#error) return Promise.reject(this.#error);
    return new Promise<void>((resolve, reject) => {
      this.#fill = { dest, off, resolve, reject };
      this.#armTimer();
    });
  }

  #copyOut(dest: Buffer, off: number): number {
    while (off < dest.length && this.#chunks.length > 0) {
      const c = this.#chunks[0]!;
      const k = Math.min(c.length, dest.length - off);
      c.copy(dest, off, 0, k);
      off += k;
      this.#avail -= k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    return off;
  }

  #push(b: Buffer): void {
    if (b.length === 0) return;
    this.#chunks.push(b);
    this.#avail += b.length;
    const f = this.#fill;
    if (f) {
      f.off = this.#copyOut(f.dest, f.off);
      if (f.off < f.dest.length) return this.#armTimer();
      this.#fill = undefined;
      this.#clearTimer();
      f.resolve();
      return;
    }
    const w = this.#want;
    if (!w) return;
    if (this.#avail >= w.n) {
      this.#want = undefined;
      this.#clearTimer();
      w.resolve(this.#take(w.n));
    } else this.#armTimer();
  }

  #armTimer(): void {
    this.#clearTimer();
    if (this.#timeoutMs > 0) {
      this.#timer = setTimeout(() => this.fail(new PeerTimeout()), this.#timeoutMs);
      this.#timer.unref?.();
    }
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.#chunks[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      this.#avail -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const c = this.#chunks[0]!;
      const k = Math.min(c.length, n - got);
      c.copy(out, got, 0, k);
      got += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    this.#avail -= n;
    return out;
  }
}

export function u64(b: Buffer, off: number): number {
  const hi = b.readUInt32BE(off);
  const lo = b.readUInt32BE(off + 4);
  return hi * 0x100000000 + lo;
}

export function putU64(b: Buffer, off: number, v: number): void {
  b.writeUInt32BE(Math.floor(v / 0x100000000) >>> 0, off);
  b.writeUInt32BE(v >>> 0, off + 4);
}

/** Write to a stream, resolving when the data was handed to the kernel (or failing). */
export function writeAll(stream: Duplex, data: Buffer | Buffer[]): Promise<void> {
  const parts = Array.isArray(data) ? data : [data];
  return new Promise((resolve, reject) => {
    if (stream.destroyed || !stream.writable) {
      reject(new PeerClosed());
      return;
    }
    for (let i = 0; i < parts.length - 1; i++) stream.write(parts[i]!);
    stream.write(parts[parts.length - 1]!, (e) => (e ? reject(e) : resolve()));
  });
}

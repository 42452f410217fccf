// Compression tasks: raw deflate as qcow2 writes it (zlib, windowBits -12, QEMU's
// qcow2_compress parameters), inflate, and zlib-wrapped deflate for vmdk grains.
import { deflateRawSync, inflateRawSync, deflateSync, inflateSync, constants } from 'node:zlib';

/** qcow2 compressed clusters: raw deflate, level 6 (Z_DEFAULT_COMPRESSION), 4 KiB window. */
const QCOW2_WINDOW_BITS = 12;

/**
 * Whether deflate cannot bring a chunk under its own length, judged without deflating all of it
 * (QEMU then stores the cluster uncompressed; deflate would spend as long on it as on text). Two
 * things let deflate shrink data: an uneven byte histogram (Huffman coding) and repeated strings.
 * A chunk counts as incompressible only when its byte entropy is within 0.01 bit of 8 (Huffman
 * would save less than its code table costs) and a fast deflate of its first 8 KiB finds nothing
 * to shrink either (no repeats within reach). Encrypted, already compressed and random data pass;
 * text, zeros, runs and periodic patterns do not. Data random at its start and repetitive later
 * with a flat histogram overall would be stored uncompressed: the same bytes, a little larger.
 */
const INCOMPRESSIBLE_BITS_PER_BYTE = 7.99;
/** Bytes of the chunk the fast deflate looks at for repeats (two windows of 4 KiB). */
const REPEAT_SAMPLE = 8192;
/** Smallest chunk the statistics say anything about. */
const MIN_SAMPLE = 4096;

/** Order-0 entropy of `c` in bits per byte. */
export function byteEntropy(c: Uint8Array): number {
  const counts = new Uint32Array(256);
  for (let i = 0; i < c.length; i++) counts[c[i]!]!++;
  let bits = 0;
  for (let v = 0; v < 256; v++) {
    const n = counts[v]!;
    if (n !== 0) bits -= n * Math.log2(n / c.length);
  }
  return c.length === 0 ? 0 : bits / c.length;
}

/** A level-1 deflate of the chunk's start does not come out shorter than its input. */
export function sampleDoesNotShrink(c: Uint8Array): boolean {
  const sample = c.subarray(0, REPEAT_SAMPLE);
  return deflateRawSync(sample, { level: 1, windowBits: QCOW2_WINDOW_BITS, memLevel: 9 }).length >= sample.length;
}

export function looksIncompressible(c: Uint8Array): boolean {
  return c.length >= MIN_SAMPLE && byteEntropy(c) >= INCOMPRESSIBLE_BITS_PER_BYTE && sampleDoesNotShrink(c);
}

export const COMPRESSION_TASKS = {
  /** Raw-deflate each input; returns [] for an entry that did not shrink below `limit` bytes
   *  (or that looksIncompressible: it would not). */
  deflateRaw(input: { chunks: Uint8Array[]; limit: number; windowBits?: number }): Uint8Array[] {
    return input.chunks.map((c) => {
      if (looksIncompressible(c)) return new Uint8Array(0);
      const out = deflateRawSync(c, { level: 6, windowBits: input.windowBits ?? QCOW2_WINDOW_BITS, memLevel: 9 });
      return out.length < input.limit ? new Uint8Array(out.buffer, out.byteOffset, out.length) : new Uint8Array(0);
    });
  },
  /** Raw-inflate each input to exactly `outputLength` bytes (bytes past the stream's end are ignored). */
  inflateRaw(input: { chunks: Uint8Array[]; outputLength: number }): Uint8Array[] {
    return input.chunks.map((c) => {
      const out = inflateRawSync(c, { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: input.outputLength });
      return new Uint8Array(out.buffer, out.byteOffset, out.length);
    });
  },
  /** zlib-wrapped deflate (vmdk streamOptimized / compressed grains). */
  deflateZlib(input: { chunks: Uint8Array[]; level?: number }): Uint8Array[] {
    return input.chunks.map((c) => {
      const out = deflateSync(c, { level: input.level ?? 6 });
      return new Uint8Array(out.buffer, out.byteOffset, out.length);
    });
  },
  /** zlib-wrapped inflate that must reach the stream's end within `outputLength` bytes (cloop
   *  blocks, inflated with Z_FINISH as QEMU does): a truncated stream, a bad checksum or more
   *  output throws; bytes after the stream's end are ignored. */
  inflateZlibWhole(input: { chunks: Uint8Array[]; outputLength: number }): Uint8Array[] {
    return input.chunks.map((c) => {
      // One output chunk of the block's size: no growing and joining of 16 KiB pieces.
      const out = inflateSync(c, { maxOutputLength: input.outputLength, chunkSize: Math.max(64, input.outputLength) });
      return new Uint8Array(out.buffer, out.byteOffset, out.length);
    });
  },
  inflateZlib(input: { chunks: Uint8Array[]; outputLength: number }): Uint8Array[] {
    return input.chunks.map((c) => {
      const out = inflateSync(c, { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: input.outputLength });
      return new Uint8Array(out.buffer, out.byteOffset, out.length);
    });
  },
};

// Compression tasks: raw deflate as qcow2 writes it (zlib, windowBits -12, QEMU's
// qcow2_compress parameters), inflate, and zlib-wrapped deflate for vmdk grains.
import { deflateRawSync, inflateRawSync, deflateSync, inflateSync, constants } from 'node:zlib';

/** qcow2 compressed clusters: raw deflate, level 6 (Z_DEFAULT_COMPRESSION), 4 KiB window. */
const QCOW2_WINDOW_BITS = 12;

export const COMPRESSION_TASKS = {
  /** Raw-deflate each input; returns [] for an entry that did not shrink below `limit` bytes. */
  deflateRaw(input: { chunks: Uint8Array[]; limit: number; windowBits?: number }): Uint8Array[] {
    return input.chunks.map((c) => {
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
  inflateZlib(input: { chunks: Uint8Array[]; outputLength: number }): Uint8Array[] {
    return input.chunks.map((c) => {
      const out = inflateSync(c, { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: input.outputLength });
      return new Uint8Array(out.buffer, out.byteOffset, out.length);
    });
  },
};

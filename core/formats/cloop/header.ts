// cloop V2.0 header and offsets table codec (Linux compressed loop, as create_compressed_fs
// writes it and QEMU's block/cloop.c reads it): a 128-byte shell-script preamble, then big-endian
// u32 block_size and n_blocks, then n_blocks + 1 big-endian u64 file offsets; block i is the zlib
// stream in [offsets[i], offsets[i+1]). Validation follows QEMU 7.2's cloop_open, in its order
// and words.

import { BlockError, invalidImage, type BlockErrorContext } from '../../errors.ts';

/** The V2.0 preamble's first line(s); QEMU compares only these bytes (cloop_probe). */
export const CLOOP_MAGIC_V2 = '#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n';
/** QEMU's probe score for a cloop V2.0 image (low: the magic is a shell script). */
export const CLOOP_PROBE_SCORE = 2;
/** Byte offsets of the fields after the preamble. */
export const CLOOP_BLOCK_SIZE_OFFSET = 128;
export const CLOOP_N_BLOCKS_OFFSET = 132;
export const CLOOP_OFFSETS_OFFSET = 136;
/** QEMU's MAX_BLOCK_SIZE: the largest block (and half the largest compressed block). */
export const CLOOP_MAX_BLOCK_SIZE = 64 * 1024 * 1024;
/** n_blocks must keep (n_blocks + 1) * 8 within a u32: (UINT32_MAX - 1) / 8. */
export const CLOOP_MAX_N_BLOCKS = Math.floor((0xffffffff - 1) / 8);
/** QEMU refuses offsets tables above 512 MiB. */
export const CLOOP_MAX_OFFSETS_BYTES = 512 * 1024 * 1024;

/** Whether a (zero-padded, 512-byte) first sector starts with the V2.0 preamble (cloop_probe). */
export function isCloopHeader(head: Buffer): boolean {
  const n = Math.min(CLOOP_MAGIC_V2.length, head.length);
  return head.toString('latin1', 0, n) === CLOOP_MAGIC_V2.slice(0, n);
}

/** block_size (big-endian u32 at 128), checked as QEMU checks it. */
export function validateBlockSize(blockSize: number, ctx: BlockErrorContext): void {
  if (blockSize % 512 !== 0) throw invalidImage(`block_size ${blockSize} must be a multiple of 512`, ctx);
  if (blockSize === 0) throw invalidImage('block_size cannot be zero', ctx);
  if (blockSize > CLOOP_MAX_BLOCK_SIZE) throw invalidImage(`block_size ${blockSize} must be ${CLOOP_MAX_BLOCK_SIZE / (1024 * 1024)} MB or less`, ctx);
}

/** n_blocks (big-endian u32 at 132), checked as QEMU checks it; returns the table's bytes. */
export function offsetsTableBytes(nBlocks: number, ctx: BlockErrorContext): number {
  if (nBlocks > CLOOP_MAX_N_BLOCKS) throw invalidImage(`n_blocks ${nBlocks} must be ${CLOOP_MAX_N_BLOCKS} or less`, ctx);
  const bytes = (nBlocks + 1) * 8;
  if (bytes > CLOOP_MAX_OFFSETS_BYTES) throw invalidImage('image requires too many offsets, try increasing block size', ctx);
  return bytes;
}

/**
 * The offsets table. Only the entries stored in the file are kept: QEMU reads the rest as zeros
 * (a short read past the end), which is valid only while every stored entry is zero too.
 */
export interface CloopOffsets {
  /** Entries 0 .. stored.length - 1 (entries past it are 0). Values past 2^53 are kept rounded:
   *  such a block starts past any file and cannot be read. */
  stored: Float64Array;
  /** n_blocks + 1. */
  count: number;
}

/** The virtual size as QEMU computes it: n_blocks * sectors_per_block in u32 arithmetic
 *  (wrapping, as QEMU's does), in sectors. */
export function cloopVirtualSize(nBlocks: number, blockSize: number): number {
  return ((nBlocks * (blockSize / 512)) % 2 ** 32) * 512;
}

/**
 * Decode the `tableBytes` bytes at CLOOP_OFFSETS_OFFSET of which `inFile` are in the file (the
 * buffer holds those), checking monotonic offsets and compressed block sizes as QEMU does.
 */
export function decodeOffsets(buf: Buffer, count: number, ctx: BlockErrorContext): CloopOffsets {
  const n = Math.min(count, Math.ceil(buf.length / 8));
  const padded = buf.length >= n * 8 ? buf : Buffer.concat([buf, Buffer.alloc(n * 8 - buf.length)]);
  const stored = new Float64Array(n);
  let prev = 0n;
  for (let i = 0; i < count; i++) {
    // Entries past the file read as zero: once one is zero and the previous is too, all are.
    if (i >= n) {
      if (prev !== 0n) throw notMonotonic(i, ctx);
      break;
    }
    const hi = padded.readUInt32BE(i * 8);
    const lo = padded.readUInt32BE(i * 8 + 4);
    const v = (BigInt(hi) << 32n) | BigInt(lo);
    stored[i] = hi * 2 ** 32 + lo;
    if (i > 0) {
      if (v < prev) throw notMonotonic(i, ctx);
      if (v - prev > BigInt(2 * CLOOP_MAX_BLOCK_SIZE)) throw invalidImage(`invalid compressed block size at index ${i}, image file is corrupt`, ctx);
    }
    prev = v;
  }
  return { stored, count };
}

function notMonotonic(i: number, ctx: BlockErrorContext): BlockError {
  return invalidImage(`offsets not monotonically increasing at index ${i}, image file is corrupt`, ctx);
}

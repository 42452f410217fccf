// Stream-optimized VMDK pieces (VMware Virtual Disk Format 1.1, "Stream-Optimized Compressed
// Sparse Extents"): compressed grains behind grain markers (lba u64, size u32, deflate data,
// zlib-wrapped), and the footer that holds the real header when the header's gdOffset is
// GD_AT_END (footer marker, footer header, end-of-stream marker in the last three sectors).
// Compression and decompression run in the worker pool (deflateZlib / inflateZlib).

import type { BlockNode } from '../../block/node.ts';
import type { WorkerPool } from '../../workers/pool.ts';
import { BlockError, invalidImage } from '../../errors.ts';
import { decodeMarker, GRAIN_MARKER_SIZE, MARKER_EOS, MARKER_FOOTER, SECTOR, SPARSE_HEADER_SIZE, VMDK4_MAGIC } from './sparse-header.ts';

/** A compressed grain may take at most two grains of space (QEMU reads 2 clusters). */
export const MAX_COMPRESSED_GRAIN_FACTOR = 2;
/** Footer marker + footer header + end-of-stream marker. */
export const FOOTER_BYTES = 3 * SECTOR;

/** Read the footer of a stream whose header says GD_AT_END; returns the footer's header sector. */
export async function readFooterHeader(file: BlockNode): Promise<Buffer> {
  if (file.size < FOOTER_BYTES + SECTOR) throw invalidImage('Invalid footer: the file is too small to hold one');
  const buf = await file.read(Math.floor(file.size / SECTOR) * SECTOR - FOOTER_BYTES, FOOTER_BYTES);
  const footerMarker = decodeMarker(buf, 0);
  const eos = decodeMarker(buf, 2 * SECTOR);
  if (
    buf.readUInt32BE(SECTOR) !== VMDK4_MAGIC ||
    footerMarker.size !== 0 ||
    footerMarker.type !== MARKER_FOOTER ||
    eos.value !== 0n ||
    eos.size !== 0 ||
    eos.type !== MARKER_EOS
  ) {
    throw invalidImage('Invalid footer');
  }
  return buf.subarray(SECTOR, SECTOR + SPARSE_HEADER_SIZE);
}

/** Read and inflate the grain stored at `host` (with or without a grain marker). */
export async function readCompressedGrain(file: BlockNode, workers: WorkerPool, host: number, grainBytes: number, markers: boolean): Promise<Buffer> {
  const limit = grainBytes * MAX_COMPRESSED_GRAIN_FACTOR;
  let data: Buffer;
  if (markers) {
    if (host + GRAIN_MARKER_SIZE > file.size) throw invalidImage(`Compressed grain marker at offset ${host} is past the end of the file`);
    const marker = await file.read(host, GRAIN_MARKER_SIZE);
    const size = marker.readUInt32LE(8);
    if (size === 0 || size > limit) {
      throw invalidImage(`Compressed grain at offset ${host} has size ${size} (expecting 1 to ${limit} bytes)`);
    }
    if (host + GRAIN_MARKER_SIZE + size > file.size) throw invalidImage(`Compressed grain at offset ${host} (${size} bytes) is past the end of the file`);
    data = await file.read(host + GRAIN_MARKER_SIZE, size);
  } else {
    const n = Math.min(limit, file.size - host);
    if (n <= 0) throw invalidImage(`Compressed grain at offset ${host} is past the end of the file`);
    data = await file.read(host, n);
  }
  let out: Uint8Array;
  try {
    [out] = (await workers.run('inflateZlib', { chunks: [data], outputLength: grainBytes })) as [Uint8Array];
  } catch (e) {
    if (e instanceof BlockError) throw e;
    throw invalidImage(`Invalid compressed grain at offset ${host}: ${(e as Error).message}`);
  }
  const grain = Buffer.alloc(grainBytes);
  Buffer.from(out.buffer, out.byteOffset, out.length).copy(grain, 0, 0, Math.min(out.length, grainBytes));
  return grain;
}

/** Deflate one grain and wrap it in a grain marker, padded to a whole sector. */
export async function encodeCompressedGrain(workers: WorkerPool, lbaSector: number, data: Buffer): Promise<Buffer> {
  const [z] = (await workers.run('deflateZlib', { chunks: [data] })) as [Uint8Array];
  const total = Math.ceil((GRAIN_MARKER_SIZE + z.length) / SECTOR) * SECTOR;
  const out = Buffer.alloc(total);
  out.writeBigUInt64LE(BigInt(lbaSector), 0);
  out.writeUInt32LE(z.length, 8);
  Buffer.from(z.buffer, z.byteOffset, z.length).copy(out, GRAIN_MARKER_SIZE);
  return out;
}

// The Parallels format extension (docs/interop/parallels.txt "Format Extension"), read as QEMU
// 7.2's block/parallels-ext.c reads it: one cluster at header.ext_off (in sectors) holding a
// magic, the MD5 of the rest of the cluster, then features, each a 24-byte header and its data
// padded to 8 bytes, up to an end-of-features marker. The one feature QEMU knows is the dirty
// bitmap: a 32-byte head and an L1 table of u64 entries (0: clusters of zeros, 1: of ones,
// else the sector of a cluster of serialized bits). QEMU reads it only on read-only opens; the
// bitmaps it loads are read-only. Messages are QEMU's.

import { BlockError, invalidImage, unsupported, type BlockErrorContext } from '../../errors.ts';
import type { BlockNode } from '../../block/node.ts';
import type { WorkerPool } from '../../workers/pool.ts';
import { DirtyBitmap } from '../../block/dirty-bitmap.ts';
import { SECTOR } from './header.ts';

export const FORMAT_EXTENSION_MAGIC = 0xab234cef23dcea87n;
export const END_OF_FEATURES_MAGIC = 0n;
export const DIRTY_BITMAP_FEATURE_MAGIC = 0x20385fae252cb34an;
/** ParallelsFormatExtensionHeader: magic (u64) and MD5 (16 bytes). */
export const EXT_HEADER_SIZE = 24;
/** ParallelsFeatureHeader: magic, flags (u64 each), data_size, unused (u32 each). */
export const FEATURE_HEADER_SIZE = 24;
/** ParallelsDirtyBitmapFeature: size (u64, sectors), id (16 bytes), granularity (u32, sectors),
 *  l1_size (u32), then the L1 table. */
export const BITMAP_FEATURE_SIZE = 32;
/** Platter reads an extension cluster of at most this many bytes (QEMU reads any cluster size
 *  into memory; a crafted cluster size of 2 GiB would take that much). */
export const MAX_EXTENSION_CLUSTER = 256 << 20;

/** One dirty bitmap of the extension, as QEMU loads it (named by its UUID, read-only). */
export interface ParallelsBitmap {
  name: string;
  /** Bytes of guest data per bit. */
  granularity: number;
  bits: DirtyBitmap;
}

export interface ExtensionContext {
  file: BlockNode;
  clusterSize: number;
  /** The image's virtual size in sectors (QEMU bs->total_sectors at open). */
  totalSectors: bigint;
  workers: WorkerPool;
  ectx: BlockErrorContext;
}

const hex = (v: bigint) => v.toString(16);

/** QEMU's qemu_uuid_unparse: the 16 bytes in order, 8-4-4-4-12 hex digits. */
export function uuidText(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** Read and check the extension cluster at byte `offset`; its bitmaps (QEMU
 *  parallels_read_format_extension). */
export async function readFormatExtension(offset: bigint, x: ExtensionContext): Promise<ParallelsBitmap[]> {
  if (x.clusterSize > MAX_EXTENSION_CLUSTER) {
    throw unsupported(`Format Extension cluster of ${x.clusterSize} bytes is larger than Platter reads (${MAX_EXTENSION_CLUSTER} bytes)`, x.ectx);
  }
  // Past INT64_MAX QEMU's offset overflows (it asserts); past the end of the file it reads zeros.
  if (offset > 2n ** 63n - 1n) throw new BlockError('Io', 'Failed to read Format Extension cluster: Invalid argument', x.ectx, { errno: 'EINVAL' });
  const cluster = offset >= BigInt(x.file.size) ? Buffer.alloc(x.clusterSize) : await x.file.read(Number(offset), x.clusterSize);
  return parseFormatExtension(cluster, x);
}

/** QEMU's parallels_parse_format_extension over one cluster's bytes. */
export async function parseFormatExtension(cluster: Buffer, x: ExtensionContext): Promise<ParallelsBitmap[]> {
  const fail = (m: string) => invalidImage(m, x.ectx);
  if (cluster.length < EXT_HEADER_SIZE) throw fail(`Format Extension cluster of ${cluster.length} bytes is too small for its header`);
  const magic = cluster.readBigUInt64LE(0);
  if (magic !== FORMAT_EXTENSION_MAGIC) {
    throw fail(`Wrong parallels Format Extension magic: 0x${hex(magic)}, expected: 0x${hex(FORMAT_EXTENSION_MAGIC)}`);
  }
  const rest = Buffer.from(cluster.subarray(EXT_HEADER_SIZE));
  const [digest] = [await x.workers.run('md5', { data: new Uint8Array(rest.buffer, rest.byteOffset, rest.length) }, [rest.buffer as ArrayBuffer])];
  if (!Buffer.from(digest).equals(cluster.subarray(8, 24))) {
    throw fail('Wrong checksum in Format Extension header. Format extension is corrupted.');
  }
  const bitmaps: ParallelsBitmap[] = [];
  let pos = EXT_HEADER_SIZE;
  for (;;) {
    // QEMU counts only the headers against the cluster (not the data it skips); Platter counts
    // every byte, so a feature cannot lead it past the cluster's end.
    const remaining = cluster.length - pos;
    if (remaining < FEATURE_HEADER_SIZE) {
      throw fail(`Can not read feature header, as remaining bytes (${remaining}) in Format Extension is less than Feature header size (${FEATURE_HEADER_SIZE})`);
    }
    const fMagic = cluster.readBigUInt64LE(pos);
    const flags = cluster.readBigUInt64LE(pos + 8);
    const dataSize = cluster.readUInt32LE(pos + 16);
    pos += FEATURE_HEADER_SIZE;
    if (flags !== 0n) throw fail('Flags for extension feature are unsupported');
    if (dataSize > cluster.length - pos) throw fail('Feature data_size exceedes Format Extension cluster');
    if (fMagic === END_OF_FEATURES_MAGIC) return bitmaps;
    if (fMagic !== DIRTY_BITMAP_FEATURE_MAGIC) throw fail(`Unknown feature: 0x${hex(fMagic)}`);
    const bitmap = await loadBitmap(cluster.subarray(pos, pos + dataSize), x);
    if (bitmaps.some((b) => b.name === bitmap.name)) throw fail(`Bitmap already exists: ${bitmap.name}`);
    bitmaps.push(bitmap);
    pos = Math.ceil((pos + dataSize) / 8) * 8;
  }
}

/** QEMU's parallels_load_bitmap and parallels_load_bitmap_data. */
async function loadBitmap(data: Buffer, x: ExtensionContext): Promise<ParallelsBitmap> {
  const fail = (m: string) => invalidImage(m, x.ectx);
  if (data.length < BITMAP_FEATURE_SIZE) {
    throw fail(`Too small Bitmap Feature area in Parallels Format Extension: ${data.length} bytes, expected at least ${BITMAP_FEATURE_SIZE} bytes`);
  }
  const sectors = data.readBigUInt64LE(0);
  const name = uuidText(data.subarray(8, 24));
  const granSectors = data.readUInt32LE(24);
  const l1Size = data.readUInt32LE(28);
  if (sectors !== x.totalSectors) {
    throw fail(`Bitmap size (in sectors) ${BigInt.asIntN(64, sectors)} differs from disk size in sectors ${x.totalSectors}`);
  }
  if (l1Size * 8 > data.length - BITMAP_FEATURE_SIZE) throw fail('Bitmaps feature corrupted: l1 table exceeds extension data_size');
  // QEMU shifts the granularity in 32 bits and asserts a power of two of at least a sector.
  const granularity = (granSectors * SECTOR) % 2 ** 32;
  if (granularity < SECTOR || (granularity & (granularity - 1)) !== 0) {
    throw fail(`Bitmap granularity of ${granSectors} sectors is not a power of two of at least 1 sector`);
  }
  const size = Number(sectors) * SECTOR;
  const bits = new DirtyBitmap(size, granularity);
  const serializedBytes = size === 0 ? 0 : Math.ceil(bits.bits / 64) * 8;
  const tabSize = Math.ceil(serializedBytes / x.clusterSize);
  if (tabSize !== l1Size) {
    throw fail(`Bitmap table size ${l1Size} does not correspond to bitmap size and cluster size. Expected ${tabSize}`);
  }
  const perEntry = x.clusterSize * 8; // bits one cluster of serialized bitmap holds
  for (let i = 0; i < l1Size; i++) {
    const entry = data.readBigUInt64LE(BITMAP_FEATURE_SIZE + 8 * i);
    const first = i * perEntry;
    const count = Math.min(perEntry, bits.bits - first);
    if (entry === 0n) continue;
    if (entry === 1n) {
      bits.deserializeOnes(first, count);
      continue;
    }
    const at = entry * BigInt(SECTOR);
    if (at > 2n ** 63n - 1n) throw new BlockError('Io', 'Failed to read bitmap data cluster: Invalid argument', x.ectx, { errno: 'EINVAL' });
    if (at >= BigInt(x.file.size)) continue; // QEMU reads zeros there: no bits set
    bits.deserialize(first, count, await x.file.read(Number(at), x.clusterSize));
  }
  return { name, granularity, bits };
}

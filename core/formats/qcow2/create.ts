// qemu-img create -f qcow2 (QEMU qcow2_co_create as inspiration): check the options with
// qemu-img's words, write the three first clusters QEMU writes (header, refcount table, one
// refcount block), then grow the empty image to its size (the L1 table lands in cluster 3)
// and preallocate as asked. Encryption (encrypt.format=luks|aes) is set up by encryption.ts.

import { checkBackingFormatName } from '../../block/qemu-drivers.ts';
import type { BlockNode } from '../../block/node.ts';
import type { CreateContext } from '../../block/types.ts';
import { invalidArgument } from '../../errors.ts';
import {
  AUTOCLEAR_DATA_FILE_RAW,
  COMPAT_LAZY_REFCOUNTS,
  COMPRESSION_ZSTD,
  emptyHeader,
  encodeHeader,
  INCOMPAT_COMPRESSION,
  INCOMPAT_DATA_FILE,
  INCOMPAT_EXTL2,
  MAX_BACKING_NAME,
} from './header.ts';
import { encodeReftableEntry, L1E_SIZE } from './entries.ts';
import { writeRefcountEntry } from './refcount.ts';
import { loadImage } from './load.ts';
import { growL1 } from './cluster-map.ts';
import { l1EntriesFor, MAX_L1_BYTES, MIN_EXTL2_CLUSTER_BITS } from './validate.ts';
import { preallocate } from './prealloc.ts';
import { DEFAULT_CLUSTER_SIZE, DEFAULT_REFCOUNT_BITS, MAX_CLUSTER_SIZE, MAX_REFCOUNT_BITS, MIN_CLUSTER_SIZE, versionOf } from './options.ts';
import type { Preallocation } from '../../block/types.ts';
import { createLuksHeader, cryptoCreateParams, type CryptoCreateParams } from './encryption.ts';
import { CRYPT_AES, CRYPT_LUKS, CRYPT_NONE } from './header.ts';

/** Guest sizes must be whole 512-byte sectors (QEMU: BDRV_SECTOR_SIZE). */
const SECTOR = 512;
/** Clusters written at creation: header, refcount table, first refcount block. */
const INITIAL_CLUSTERS = 3;

const V3_HINT = '(use version=v3 or greater)';

export interface Qcow2CreateParams {
  version: number;
  clusterSize: number;
  refcountBits: number;
  lazyRefcounts: boolean;
  extendedL2: boolean;
  compressionType: number;
  preallocation: Preallocation;
  backingFile?: string;
  backingFormat?: string;
  dataFile?: string;
  dataFileRaw: boolean;
  /** encrypt.* options (encryption.ts); method CRYPT_NONE when unencrypted. */
  crypto?: CryptoCreateParams;
}

/** Turn option values into checked parameters (qemu-img's errors, same order of checks). */
export function createParams(o: Record<string, unknown>, size: number): Qcow2CreateParams {
  const crypto = cryptoCreateParams(o, 'qcow2');
  const version = versionOf(String(o['compat'] ?? '1.1'));
  const clusterSize = Number(o['cluster_size'] ?? DEFAULT_CLUSTER_SIZE);
  if (!Number.isInteger(Math.log2(clusterSize)) || clusterSize < MIN_CLUSTER_SIZE || clusterSize > MAX_CLUSTER_SIZE) {
    throw invalidArgument('Cluster size must be a power of two between 512 and 2048k');
  }
  const refcountBits = Number(o['refcount_bits'] ?? DEFAULT_REFCOUNT_BITS);
  if (!Number.isInteger(Math.log2(refcountBits)) || refcountBits < 1 || refcountBits > MAX_REFCOUNT_BITS) {
    throw invalidArgument('Refcount width must be a power of two and may not exceed 64 bits');
  }
  const lazyRefcounts = o['lazy_refcounts'] === true;
  const extendedL2Early = o['extended_l2'] === true;
  if (l1EntriesFor(size, Math.log2(clusterSize), extendedL2Early) * L1E_SIZE > MAX_L1_BYTES) {
    throw invalidArgument("The image size is too large for file format 'qcow2' (try using a larger cluster size)");
  }
  const extendedL2 = o['extended_l2'] === true;
  const compressionType = o['compression_type'] === 'zstd' ? COMPRESSION_ZSTD : 0;
  const dataFile = typeof o['data_file'] === 'string' && o['data_file'] !== '' ? (o['data_file'] as string) : undefined;
  const dataFileRaw = o['data_file_raw'] === true;
  let preallocation = (o['preallocation'] as Preallocation | undefined) ?? 'off';
  const backingFile = typeof o['backing_file'] === 'string' && o['backing_file'] !== '' ? (o['backing_file'] as string) : undefined;
  const backingFormat = typeof o['backing_fmt'] === 'string' && o['backing_fmt'] !== '' ? (o['backing_fmt'] as string) : undefined;

  if (version < 3) {
    if (lazyRefcounts) throw invalidArgument(`Lazy refcounts only supported with compatibility level 1.1 and above ${V3_HINT}`);
    if (refcountBits !== DEFAULT_REFCOUNT_BITS) throw invalidArgument(`Different refcount widths than 16 bits require compatibility level 1.1 or above ${V3_HINT}`);
    if (extendedL2) throw invalidArgument(`Extended L2 entries are only supported with compatibility level 1.1 and above ${V3_HINT}`);
    if (compressionType !== 0) throw invalidArgument(`Non-zlib compression type is only supported with compatibility level 1.1 and above ${V3_HINT}`);
    if (dataFile) throw invalidArgument(`External data files are only supported with compatibility level 1.1 and above ${V3_HINT}`);
  }
  if (extendedL2 && clusterSize < 2 ** MIN_EXTL2_CLUSTER_BITS) {
    throw invalidArgument(`Extended L2 entries are only supported with cluster sizes of at least ${2 ** MIN_EXTL2_CLUSTER_BITS} bytes`);
  }
  if (dataFileRaw && !dataFile) throw invalidArgument('data-file-raw requires data-file');
  if (dataFile && backingFile && dataFileRaw) throw invalidArgument('Backing file and data-file-raw cannot be used at the same time');
  const badFormat = checkBackingFormatName(backingFormat);
  if (badFormat) throw invalidArgument(badFormat);
  if (backingFormat && !backingFile) throw invalidArgument('Backing file format specified without a backing file');
  if (backingFile && preallocation !== 'off' && !extendedL2) throw invalidArgument('Backing file and preallocation can only be used at the same time if extended_l2 is on');
  if (backingFile && Buffer.byteLength(backingFile) > MAX_BACKING_NAME) throw invalidArgument(`Backing file name too long (at most ${MAX_BACKING_NAME} bytes)`);
  // A raw data file must stay consistent: its mapping is fixed from the start (QEMU does this).
  if (dataFileRaw && preallocation === 'off') preallocation = 'metadata';
  return { crypto, version, clusterSize, refcountBits, lazyRefcounts, extendedL2, compressionType, preallocation, dataFileRaw, ...(backingFile ? { backingFile } : {}), ...(backingFormat ? { backingFormat } : {}), ...(dataFile ? { dataFile } : {}) };
}

/** The first three clusters of an empty image (size 0, no L1 table). */
export function initialClusters(p: Qcow2CreateParams): Buffer {
  const cs = p.clusterSize;
  const h = emptyHeader(p.version, Math.log2(cs), 0);
  h.refcountOrder = Math.log2(p.refcountBits);
  h.refcountTableOffset = cs;
  h.refcountTableClusters = 1;
  if (p.extendedL2) h.incompatible |= INCOMPAT_EXTL2;
  if (p.compressionType === COMPRESSION_ZSTD) {
    h.incompatible |= INCOMPAT_COMPRESSION;
    h.compressionType = COMPRESSION_ZSTD;
  }
  if (p.dataFile) {
    h.incompatible |= INCOMPAT_DATA_FILE;
    h.dataFile = p.dataFile;
  }
  if (p.dataFileRaw) h.autoclear |= AUTOCLEAR_DATA_FILE_RAW;
  if (p.lazyRefcounts) h.compatible |= COMPAT_LAZY_REFCOUNTS;
  if (p.backingFile) h.backingFile = p.backingFile;
  if (p.backingFormat) h.backingFormat = p.backingFormat;
  const out = Buffer.alloc(INITIAL_CLUSTERS * cs);
  encodeHeader(h, cs).copy(out, 0);
  encodeReftableEntry(out.subarray(cs, 2 * cs), 0, 2 * cs);
  const block = out.subarray(2 * cs, 3 * cs);
  for (let c = 0; c < INITIAL_CLUSTERS; c++) writeRefcountEntry(block, c, p.refcountBits, 1);
  return out;
}

export async function createQcow2(file: BlockNode, ctx: CreateContext): Promise<void> {
  // qemu-img create rounds the size up to whole sectors (qcow2_co_create_opts); only QMP's
  // blockdev-create refuses an unaligned size.
  const size = Math.ceil(ctx.size / SECTOR) * SECTOR;
  const p = createParams(ctx.options, size);
  await file.write(0, initialClusters(p));
  const img = await loadImage(file, { filename: ctx.filename, readOnly: false, workers: ctx.workers, warn: ctx.warn });
  if (p.dataFile) img.dataFile = await ctx.createSibling(p.dataFile);
  await img.meta.run(async () => {
    await growL1(img, l1EntriesFor(size, img.clusterBits, img.geo.extendedL2));
    img.header.size = size;
    if (p.crypto && p.crypto.method !== CRYPT_NONE) {
      ctx.secrets.passphrase(p.crypto.secretId!); // an unknown secret id fails before the header changes
      if (p.crypto.method === CRYPT_LUKS) {
        img.header.cryptoExt = await createLuksHeader(file, p.crypto, ctx.secrets, ctx.workers, img.clusterSize, (n) => img.refcounts.allocate(n));
      }
      img.header.cryptMethod = p.crypto.method;
    }
    await img.writeHeader();
    await preallocate(img, 0, size, p.preallocation);
    // An external data file covers the whole disk from the start (sparse unless preallocated).
    if (p.dataFile && img.dataFile.size < size) await img.dataFile.truncate(size, { preallocation: 'off', shrink: false });
  });
}

// Opening a qcow2 image (docs/interop/qcow2.txt "Header" .. "Snapshots"; QEMU qcow2_do_open as
// inspiration): read and validate the header and its extensions, then the active L1 table, the
// refcount table and the snapshot table, each checked against the file before use. Nothing is
// written here; node-level effects (dirty repair, data file) are in index.ts.

import type { BlockNode } from '../../block/node.ts';
import { invalidImage, unsupported, type BlockErrorContext } from '../../errors.ts';
import type { WorkerPool } from '../../workers/pool.ts';
import { decodeExtensions, decodeFixedHeader, HEADER_READ_BYTES } from './header.ts';
import { L1E_SIZE } from './entries.ts';
import { Qcow2Image } from './image.ts';
import { MAX_CLUSTER_BITS, MIN_CLUSTER_BITS, validateHeader } from './validate.ts';
import { readSnapshotTable } from './snapshots-table.ts';

export interface LoadOptions {
  filename: string;
  readOnly: boolean;
  workers: WorkerPool;
  warn: (m: string) => void;
  /** Opened for qemu-img check: the snapshot table is read by the check, not here (QEMU
   *  BDRV_O_CHECK), so a broken table does not stop the check that can repair it. */
  forCheck?: boolean;
}

export async function loadImage(file: BlockNode, o: LoadOptions): Promise<Qcow2Image> {
  const ctx: BlockErrorContext = { path: o.filename };
  const fileSize = file.size;
  const head = await file.read(0, Math.min(fileSize, HEADER_READ_BYTES));
  const h = decodeFixedHeader(head, ctx);
  if (h.version !== 2 && h.version !== 3) throw unsupported(`Unsupported qcow2 version ${h.version}`, ctx);
  if (h.clusterBits < MIN_CLUSTER_BITS || h.clusterBits > MAX_CLUSTER_BITS) {
    throw invalidImage(`Unsupported cluster size: 2^${h.clusterBits} (expected 2^${MIN_CLUSTER_BITS}..2^${MAX_CLUSTER_BITS})`, ctx);
  }
  const cs = 2 ** h.clusterBits;
  const cluster0 = await file.read(0, Math.min(fileSize, cs));
  decodeExtensions(h, cluster0, ctx);
  validateHeader(h, fileSize, o.readOnly, ctx, o.forCheck ?? false);
  if (h.backingFileOffset > 0 && h.backingFileSize > 0) {
    h.backingFile = cluster0.toString('utf8', h.backingFileOffset, h.backingFileOffset + h.backingFileSize);
  }
  // Encrypted images (h.cryptMethod !== CRYPT_NONE): the cipher is set up by encryption.ts
  // (openCrypto) once the image is loaded; nothing here reads guest data.
  const l1 = h.l1Size > 0 ? await file.read(h.l1TableOffset, h.l1Size * L1E_SIZE) : Buffer.alloc(0);
  const reftable = await file.read(h.refcountTableOffset, h.refcountTableClusters * cs);
  const img = new Qcow2Image({ header: h, file, l1, reftable, readOnly: o.readOnly, ctx, workers: o.workers, warn: o.warn });
  if (h.nbSnapshots > 0 && !o.forCheck) {
    const t = await readSnapshotTable(file, h.snapshotsOffset, h.nbSnapshots, cs, ctx);
    img.snapshots = t.snapshots;
    // An entry without a disk size (v2) was taken at the image's size (QEMU's reading).
    for (const sn of img.snapshots) sn.diskSize ??= h.size;
    img.snapshotTableBytes = t.bytes;
  }
  return img;
}

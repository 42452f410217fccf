// Which permissions each node of a graph takes and shares, as QEMU 7.2's block layer computes them
// (block/block-backend.c blk_new_open; block.c bdrv_default_perms_for_storage / _for_cow,
// bdrv_filter_default_perms, bdrv_child_perm's force-share rule; block/raw-format.c
// raw_child_perm). The file protocol turns the bottom node's pair into lock bytes (file/lock.ts),
// so these rules decide whether Platter and QEMU processes conflict exactly as two QEMU processes
// would. Checked against /proc/locks of qemu-io, qemu-img and qemu-nbd 7.2
// (test/interop/locking-qemu.test.ts).

import { PERM_ALL, PERM_CONSISTENT_READ, PERM_RESIZE, PERM_WRITE, PERM_WRITE_UNCHANGED } from './types.ts';

export interface PermPair {
  perm: number;
  shared: number;
}

/** What a root that shares nothing but reads keeps shared (BDRV_O_NO_SHARE in blk_new_open). */
export const NO_SHARE_SHARED = PERM_CONSISTENT_READ | PERM_WRITE_UNCHANGED;

/** The bits a filter passes to its child unchanged (DEFAULT_PERM_PASSTHROUGH; in 7.2 all four). */
const PERM_PASSTHROUGH = PERM_CONSISTENT_READ | PERM_WRITE | PERM_WRITE_UNCHANGED | PERM_RESIZE;

/**
 * The user's open (QEMU's BlockBackend from blk_new_open): consistent read, plus write when
 * read-write, plus `extraPerm` (PERM_RESIZE for resize, as BDRV_O_RESIZE). Sharing:
 *  - `noShare` (BDRV_O_NO_SHARE): only reads are shared, so nobody else may write or resize.
 *    qemu-img uses it for the convert source; Platter's default for read-write opens (a desktop
 *    app holding an image writable keeps other writers out, as a QEMU guest disk without
 *    share-rw does).
 *  - otherwise everything is shared, as qemu-img info / qemu-io and read-only Platter opens do;
 *  - force-share (-U) shares everything at every layer below (bdrv_child_perm).
 */
export function rootPerms(readOnly: boolean, forceShare: boolean, extraPerm = 0, noShare = !readOnly): PermPair {
  const perm = PERM_CONSISTENT_READ | (readOnly ? 0 : PERM_WRITE) | (extraPerm & PERM_ALL);
  const shared = forceShare || !noShare ? PERM_ALL : NO_SHARE_SHARED;
  return { perm, shared };
}

/** A filter's child (the raw format over its file): perms pass through unchanged
 *  (bdrv_filter_default_perms; raw_child_perm then keeps only the parent's write/resize). */
export function filterChildPerms(parent: PermPair): PermPair {
  return { perm: parent.perm & PERM_PASSTHROUGH, shared: (parent.shared & PERM_PASSTHROUGH) | (PERM_ALL & ~PERM_PASSTHROUGH) };
}

/**
 * A format driver's storage child (metadata and data: qcow2, vmdk, ... over their file), per
 * bdrv_default_perms_for_storage: metadata may be written whenever the node is writable, reads
 * must be consistent, and nobody else may write or resize underneath it.
 */
export function storageChildPerms(parent: PermPair, writable: boolean, forceShare: boolean): PermPair {
  let { perm, shared } = filterChildPerms(parent);
  if (writable) perm |= PERM_WRITE | PERM_RESIZE;
  perm |= PERM_CONSISTENT_READ;
  shared &= ~(PERM_WRITE | PERM_RESIZE);
  if (perm & PERM_WRITE_UNCHANGED) perm |= PERM_WRITE;
  if (perm & PERM_WRITE) perm |= PERM_RESIZE;
  if (forceShare) shared = PERM_ALL;
  return { perm, shared };
}

/**
 * A data-only child (BDRV_CHILD_DATA: vmdk extents, a qcow2 external data file), per
 * bdrv_default_perms_for_storage without the metadata rules: others may keep writing if the user
 * lets them, but nobody may resize it; writing it implies resizing. `writable` false (an extent
 * opened read-only under a writable image) drops the write bits.
 */
export function dataChildPerms(parent: PermPair, writable: boolean, forceShare: boolean): PermPair {
  let { perm, shared } = filterChildPerms(parent);
  if (!writable) perm &= PERM_CONSISTENT_READ;
  shared &= ~PERM_RESIZE;
  if (perm & PERM_WRITE_UNCHANGED) perm |= PERM_WRITE;
  if (perm & PERM_WRITE) perm |= PERM_RESIZE;
  if (forceShare) shared = PERM_ALL;
  return { perm, shared };
}

/** A backing child (bdrv_default_perms_for_cow): read only; writers tolerated only if the parent
 *  tolerates them. */
export function backingChildPerms(parent: PermPair): PermPair {
  const perm = parent.perm & PERM_CONSISTENT_READ;
  let shared = parent.shared & PERM_WRITE ? PERM_WRITE | PERM_RESIZE : 0;
  shared |= PERM_CONSISTENT_READ | PERM_WRITE_UNCHANGED;
  return { perm, shared };
}

/** What a protocol node takes while the format is still being probed: nothing, so probing never
 *  conflicts; the node is reopened with the format's perms once the format is known. */
export const PROBE_PERMS: PermPair = { perm: 0, shared: PERM_ALL };

/** QEMU's names for the bits, used in lock conflict messages ("Failed to get "write" lock"). */
export const PERM_NAMES: Record<number, string> = {
  [PERM_CONSISTENT_READ]: 'consistent read',
  [PERM_WRITE]: 'write',
  [PERM_WRITE_UNCHANGED]: 'write unchanged',
  [PERM_RESIZE]: 'resize',
};

/** The name of one permission bit (bdrv_perm_names). */
export function permName(bit: number): string {
  return PERM_NAMES[bit] ?? `permission 0x${bit.toString(16)}`;
}

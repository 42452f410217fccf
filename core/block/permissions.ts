// Which permissions each node of a graph takes and shares, as QEMU's block layer computes them
// (block.c: blk_new_open, bdrv_default_perms_for_storage / _for_cow, bdrv_filter_default_perms).
// The file protocol turns the bottom node's pair into lock bytes, so these rules decide whether
// Platter and QEMU processes conflict exactly as two QEMU processes would.

import { PERM_ALL, PERM_CONSISTENT_READ, PERM_RESIZE, PERM_WRITE, PERM_WRITE_UNCHANGED } from './types.ts';

export interface PermPair {
  perm: number;
  shared: number;
}

/** The user's open (qemu-img/qemu-io's BlockBackend, which sets BDRV_O_NO_SHARE unless -U). */
export function rootPerms(readOnly: boolean, forceShare: boolean, extraPerm = 0): PermPair {
  const perm = PERM_CONSISTENT_READ | (readOnly ? 0 : PERM_WRITE) | extraPerm;
  const shared = forceShare ? PERM_ALL : PERM_CONSISTENT_READ | PERM_WRITE_UNCHANGED;
  return { perm, shared };
}

/** A filter's child (the raw format over its file): perms pass through unchanged. */
export function filterChildPerms(parent: PermPair): PermPair {
  return { perm: parent.perm & PERM_ALL, shared: (parent.shared & PERM_ALL) | PERM_WRITE_UNCHANGED };
}

/**
 * A format driver's storage child (metadata and data): metadata may be written whenever the node
 * is writable, and nobody else may write or resize underneath it.
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

/** A backing child: read only; writers tolerated only if the parent tolerates them. */
export function backingChildPerms(parent: PermPair): PermPair {
  const perm = parent.perm & PERM_CONSISTENT_READ;
  let shared = parent.shared & PERM_WRITE ? PERM_WRITE | PERM_RESIZE : 0;
  shared |= PERM_CONSISTENT_READ | PERM_WRITE_UNCHANGED;
  return { perm, shared };
}

/** QEMU's names for the bits, used in lock conflict messages ("Failed to get "write" lock"). */
export const PERM_NAMES: Record<number, string> = {
  [PERM_CONSISTENT_READ]: 'consistent read',
  [PERM_WRITE]: 'write',
  [PERM_WRITE_UNCHANGED]: 'write unchanged',
  [PERM_RESIZE]: 'resize',
};

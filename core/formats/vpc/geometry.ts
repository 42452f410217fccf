// CHS geometry of a VHD (VHD specification, appendix "CHS Calculation"), computed as QEMU's
// vpc driver does so that sizes match qemu-img, and QEMU's rule for which size field (CHS or
// "Current Size") gives the virtual size of an existing image.

/** Largest spec-conformant geometry 65535 x 16 x 255; an image at this geometry uses its
 *  Current Size instead (QEMU: VHD_MAX_GEOMETRY). */
export const CHS_MAX_CYLINDERS = 65535;
export const CHS_MAX_HEADS = 16;
export const CHS_MAX_SECTORS = 255;
export const VHD_MAX_GEOMETRY = CHS_MAX_CYLINDERS * CHS_MAX_HEADS * CHS_MAX_SECTORS;
/** QEMU refuses VHDs over 2040 GiB. */
export const VHD_MAX_SIZE = 2040 * 2 ** 30;
export const SECTOR = 512;

export interface Geometry {
  cylinders: number;
  heads: number;
  sectorsPerTrack: number;
}

/** The spec's CHS algorithm for a sector count (may round down). */
export function calculateGeometry(totalSectors: number): Geometry {
  const total = Math.min(totalSectors, VHD_MAX_GEOMETRY);
  let spt: number;
  let heads: number;
  let cth: number;
  if (total >= 65535 * 16 * 63) {
    spt = 255;
    heads = 16;
    cth = Math.floor(total / spt);
  } else {
    spt = 17;
    cth = Math.floor(total / spt);
    heads = Math.max(4, Math.ceil(cth / 1024));
    if (cth >= heads * 1024 || heads > 16) {
      spt = 31;
      heads = 16;
      cth = Math.floor(total / spt);
    }
    if (cth >= heads * 1024) {
      spt = 63;
      heads = 16;
      cth = Math.floor(total / spt);
    }
  }
  return { cylinders: Math.floor(cth / heads), heads, sectorsPerTrack: spt };
}

export const geometrySectors = (g: Geometry) => g.cylinders * g.heads * g.sectorsPerTrack;

/**
 * Geometry and virtual size for a new image of `size` bytes, as qemu-img create does: round the
 * size up to whole sectors, then grow the sector count until the CHS geometry covers it; with
 * force_size (or past the CHS range) the geometry is the maximum and the exact size is kept.
 * Returns undefined when the size is over the 2040 GiB limit.
 */
export function geometryForCreate(size: number, forceSize: boolean): { geometry: Geometry; size: number } | undefined {
  const sectors = Math.ceil(size / SECTOR);
  let g: Geometry = { cylinders: 0, heads: 0, sectorsPerTrack: 0 };
  if (forceSize) {
    g = { cylinders: CHS_MAX_CYLINDERS, heads: CHS_MAX_HEADS, sectorsPerTrack: CHS_MAX_SECTORS };
  } else {
    const want = Math.min(VHD_MAX_GEOMETRY, sectors);
    for (let i = 0; want > geometrySectors(g); i++) g = calculateGeometry(want + i);
  }
  if (geometrySectors(g) === VHD_MAX_GEOMETRY) {
    if (sectors * SECTOR > VHD_MAX_SIZE) return undefined;
    return { geometry: g, size: sectors * SECTOR };
  }
  return { geometry: g, size: geometrySectors(g) * SECTOR };
}

/** Creator applications whose images are sized by "Current Size" rather than CHS (QEMU's table:
 *  Hyper-V "win ", qemu force_size "qem2", Disk2vhd "d2v ", XenConverter "CTXS", XenServer "tap\0"). */
const CURRENT_SIZE_CREATORS = new Set(['win ', 'qem2', 'd2v ', 'CTXS', 'tap\0']);

/** How the size is worked out: by the creator table, or as the user forces it (the vpc driver's
 *  force_size_calc option). */
export type SizeCalc = 'chs' | 'current_size' | undefined;

/** The virtual size QEMU gives an existing image (vpc_open). Even when CHS is forced, a disk of
 *  the largest CHS geometry is sized by Current Size. */
export function virtualSizeOf(creatorApp: string, g: Geometry, currentSize: bigint, force?: SizeCalc): number {
  const chs = geometrySectors(g);
  const useChs = !CURRENT_SIZE_CREATORS.has(creatorApp) || force === 'chs';
  if (!useChs || chs === VHD_MAX_GEOMETRY || force === 'current_size') {
    const sectors = currentSize / 512n;
    return sectors > BigInt(Number.MAX_SAFE_INTEGER) / 512n ? Number.MAX_SAFE_INTEGER : Number(sectors) * SECTOR;
  }
  return chs * SECTOR;
}

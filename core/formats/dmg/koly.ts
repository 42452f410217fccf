// The UDIF trailer ("koly" block, 512 bytes at the end of a DMG; Apple's UDIFResourceFile, field
// offsets as QEMU's block/dmg.c reads them). QEMU looks for the magic in the last 515 bytes of
// the file, since images of odd sizes do not end on a sector boundary.
import type { BlockNode } from '../../block/node.ts';
import { invalidImage } from '../../errors.ts';
import { readPadded } from '../../util/padded-read.ts';

export const KOLY_SIZE = 512;
/** How far from the end QEMU searches for "koly": the last 511 bytes of the second-last sector
 *  and the first 4 of the last (dmg_find_koly_offset). */
const KOLY_SEARCH = 515;

/** The trailer fields Platter uses (all big-endian). */
export interface Koly {
  /** Where the trailer starts in the file. */
  offset: number;
  /** 0x18 DataForkOffset: chunk offsets in the tables are relative to it. */
  dataForkOffset: bigint;
  /** 0x28/0x30 RsrcForkOffset, RsrcForkLength: the tables as a resource fork. */
  rsrcForkOffset: bigint;
  rsrcForkLength: bigint;
  /** 0xD8/0xE0 XMLOffset, XMLLength: the tables as an XML property list. */
  xmlOffset: bigint;
  xmlLength: bigint;
  /** 0x1EC SectorCount: the virtual disk size in 512-byte sectors. */
  sectorCount: bigint;
}

/** Locate and decode the trailer, with QEMU's words where it has some. */
export async function readKoly(file: BlockNode): Promise<Koly> {
  // QEMU sees the file's length rounded up to whole sectors (bdrv_getlength), the tail reading
  // as zeros: only an empty file is "too short", and the search window ends at the rounded end.
  const size = Math.ceil(file.size / 512) * 512;
  if (size < KOLY_SIZE) throw invalidImage('dmg file must be at least 512 bytes long');
  const start = size > 511 + 512 ? size - 511 - 512 : 0;
  const window = await readPadded(file, start, Math.min(size - start, KOLY_SEARCH));
  let at = -1;
  for (let i = 0; i + 4 <= window.length; i++) {
    if (window[i] === 0x6b && window[i + 1] === 0x6f && window[i + 2] === 0x6c && window[i + 3] === 0x79) {
      at = start + i;
      break;
    }
  }
  if (at < 0) throw invalidImage('Could not locate UDIF trailer in dmg file');
  const k = await readPadded(file, at, KOLY_SIZE);
  return {
    offset: at,
    dataForkOffset: k.readBigUInt64BE(0x18),
    rsrcForkOffset: k.readBigUInt64BE(0x28),
    rsrcForkLength: k.readBigUInt64BE(0x30),
    xmlOffset: k.readBigUInt64BE(0xd8),
    xmlLength: k.readBigUInt64BE(0xe0),
    sectorCount: k.readBigUInt64BE(0x1ec),
  };
}

// Where the chunk tables live (Apple UDIF): as base64 <data> elements of the XML property list
// (the "blkx" array), or as resources of a classic resource fork, whichever the trailer names
// (QEMU's dmg_open prefers the resource fork when it has a length). Both are read as QEMU's
// dmg_read_plist_xml and dmg_read_resource_fork read them, with specific errors where QEMU only
// says "Invalid argument".
import type { BlockNode } from '../../block/node.ts';
import { invalidImage } from '../../errors.ts';
import { readPadded } from '../../util/padded-read.ts';
import type { Koly } from './koly.ts';
import { decodeMish, type RawChunk } from './mish.ts';

/** QEMU's cap on the XML property list (dmg_read_plist_xml: "a test sample had about 1 MiB"). */
export const XML_MAX = 16 << 20;

const BASE64_BODY = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

/** The chunks of every mish table in the XML property list at [offset, offset+length). */
export function chunksFromXml(xml: Buffer, dataForkOffset: bigint, unknown: (type: number) => void): RawChunk[] {
  const text = xml.toString('latin1');
  const chunks: RawChunk[] = [];
  let from = 0;
  for (let n = 0; ; n++) {
    const open = text.indexOf('<data>', from);
    if (open < 0) break;
    const close = text.indexOf('</data>', open + 6);
    if (close < 0) throw invalidImage(`dmg property list is malformed: <data> element ${n} has no </data>`);
    const body = text.slice(open + 6, close);
    if (!BASE64_BODY.test(body)) throw invalidImage(`dmg property list is malformed: <data> element ${n} is not base64`);
    const table = decodeMish(Buffer.from(body, 'base64'), dataForkOffset, unknown);
    if (table) chunks.push(...table);
    from = close + 7;
  }
  return chunks;
}

export async function readXmlChunks(file: BlockNode, koly: Koly, unknown: (type: number) => void): Promise<RawChunk[]> {
  const length = koly.xmlLength;
  if (length === 0n || length > BigInt(XML_MAX)) throw invalidImage(`dmg property list length ${length} is out of range (1 byte to 16 MiB)`);
  const xml = await readPadded(file, Number(koly.xmlOffset), Number(length));
  return chunksFromXml(xml, koly.dataForkOffset, unknown);
}

/** The chunks of every mish resource in the resource fork's data area (each resource is a
 *  big-endian u32 length and its bytes; the resource map after the data is not needed). */
export async function readRsrcChunks(file: BlockNode, koly: Koly, unknown: (type: number) => void): Promise<RawChunk[]> {
  const begin = Number(koly.rsrcForkOffset);
  const forkLength = Number(koly.rsrcForkLength);
  const head = await readPadded(file, begin, 12);
  const dataOffset = head.readUInt32BE(0);
  const dataLength = head.readUInt32BE(8);
  if (dataOffset > forkLength) throw invalidImage(`dmg resource fork data offset ${dataOffset} lies past the fork's ${forkLength} bytes`);
  if (dataLength === 0 || dataOffset + dataLength > forkLength) throw invalidImage(`dmg resource fork data length ${dataLength} does not fit the fork's ${forkLength} bytes`);
  const chunks: RawChunk[] = [];
  let at = begin + dataOffset;
  const end = at + dataLength;
  while (at < end) {
    const count = (await readPadded(file, at, 4)).readUInt32BE(0);
    if (count === 0 || count > end - at) throw invalidImage(`dmg resource at byte ${at} has length ${count}, which does not fit the resource data`);
    at += 4;
    const table = decodeMish(await readPadded(file, at, count), koly.dataForkOffset, unknown);
    if (table) chunks.push(...table);
    at += count;
  }
  return chunks;
}

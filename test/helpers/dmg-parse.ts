// A minimal reader of the chunk entries of a .dmg for tests (trailer -> XML plist -> base64
// mish blocks), independent of Platter's driver: used to feed the codecs the chunks of the
// fixtures one by one.
export interface ParsedChunk {
  type: number;
  sector: number;
  count: number;
  data: Buffer;
}

export function parseDmgChunks(file: Buffer): { sectors: number; chunks: ParsedChunk[] } {
  const k = file.lastIndexOf('koly');
  if (k < 0) throw new Error('no koly trailer');
  const dataFork = Number(file.readBigUInt64BE(k + 0x18));
  const xmlOffset = Number(file.readBigUInt64BE(k + 0xd8));
  const xmlLength = Number(file.readBigUInt64BE(k + 0xe0));
  const sectors = Number(file.readBigUInt64BE(k + 0x1ec));
  const xml = file.subarray(xmlOffset, xmlOffset + xmlLength).toString('latin1');
  const chunks: ParsedChunk[] = [];
  for (const m of xml.matchAll(/<data>([^<]*)<\/data>/g)) {
    const b = Buffer.from(m[1]!, 'base64');
    if (b.length < 244 || b.toString('latin1', 0, 4) !== 'mish') continue;
    const first = Number(b.readBigUInt64BE(8));
    const base = dataFork + Number(b.readBigUInt64BE(0x18));
    const n = b.readUInt32BE(200);
    for (let i = 0; i < n; i++) {
      const e = 204 + 40 * i;
      const type = b.readUInt32BE(e);
      if (type === 0x7ffffffe || type === 0xffffffff) continue;
      const off = base + Number(b.readBigUInt64BE(e + 0x18));
      const len = Number(b.readBigUInt64BE(e + 0x20));
      chunks.push({ type, sector: first + Number(b.readBigUInt64BE(e + 8)), count: Number(b.readBigUInt64BE(e + 0x10)), data: file.subarray(off, off + len) });
    }
  }
  return { sectors, chunks };
}

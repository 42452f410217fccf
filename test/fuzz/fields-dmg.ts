// Structure-aware fuzz fields of a dmg seed (Apple UDIF): the trailer's fork offsets, lengths and
// sector count, and, where the chunk tables are stored in binary (resource-fork form), the
// resource lengths, the mish header and the first chunk entries. Tables in XML form are base64
// text: random byte changes (the generic strategies) reach those.
import type { Field, FormatFuzzSpec } from './fields.ts';

const be = (offset: number, size: Field['size'], name: string): Field => ({ offset, size, endian: 'be', name });

export const dmgFuzzSpec: FormatFuzzSpec = {
  fields(b) {
    const k = b.lastIndexOf('koly');
    if (k < 0) return [];
    const f = [be(k + 0x18, 8, 'data_fork_offset'), be(k + 0x28, 8, 'rsrc_fork_offset'), be(k + 0x30, 8, 'rsrc_fork_length'), be(k + 0xd8, 8, 'xml_offset'), be(k + 0xe0, 8, 'xml_length'), be(k + 0x1ec, 8, 'sector_count')];
    const rsrc = Number(b.readBigUInt64BE(k + 0x28));
    const rsrcLength = b.readBigUInt64BE(k + 0x30);
    if (rsrcLength === 0n || rsrc + 16 > b.length) return f;
    f.push(be(rsrc, 4, 'rsrc_data_offset'), be(rsrc + 8, 4, 'rsrc_data_length'));
    const res = rsrc + b.readUInt32BE(rsrc);
    if (res + 4 + 244 > b.length) return f;
    const mish = res + 4;
    f.push(be(res, 4, 'resource_length'), be(mish, 4, 'mish_magic'), be(mish + 8, 8, 'mish_first_sector'), be(mish + 0x18, 8, 'mish_data_offset'), be(mish + 200, 4, 'mish_chunk_count'));
    for (let i = 0; i < 16 && mish + 204 + 40 * (i + 1) <= b.length; i++) {
      const e = mish + 204 + 40 * i;
      f.push(be(e, 4, `chunk${i}.type`), be(e + 8, 8, `chunk${i}.sector`), be(e + 0x10, 8, `chunk${i}.count`), be(e + 0x18, 8, `chunk${i}.offset`), be(e + 0x20, 8, `chunk${i}.length`));
    }
    return f;
  },
};

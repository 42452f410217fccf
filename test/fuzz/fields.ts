// Structure-aware mutation: the on-disk fields that matter per format (sizes, offsets, counts,
// table entries, flags, feature bits), found by decoding the seed image's own header so table
// positions are real, and the checksum each format protects its headers with (recomputed on some
// cases and left stale on others).

import { dmgFuzzSpec } from './fields-dmg.ts';

export interface Field {
  /** Where the field is in the file. */
  offset: number;
  /** Bytes: 1, 2, 4 or 8. */
  size: 1 | 2 | 4 | 8;
  endian: 'be' | 'le';
  name: string;
}

export interface FormatFuzzSpec {
  /** The fields of this seed worth mutating. */
  fields(image: Buffer): Field[];
  /** Recompute header checksums after a mutation (so deeper code is reached). */
  fixChecksums?(image: Buffer): void;
}

const be = (offset: number, size: Field['size'], name: string): Field => ({ offset, size, endian: 'be', name });
const le = (offset: number, size: Field['size'], name: string): Field => ({ offset, size, endian: 'le', name });

function readField(buf: Buffer, f: Field): bigint {
  if (f.offset + f.size > buf.length) return 0n;
  switch (f.size) {
    case 1:
      return BigInt(buf[f.offset]!);
    case 2:
      return BigInt(f.endian === 'be' ? buf.readUInt16BE(f.offset) : buf.readUInt16LE(f.offset));
    case 4:
      return BigInt(f.endian === 'be' ? buf.readUInt32BE(f.offset) : buf.readUInt32LE(f.offset));
    case 8:
      return f.endian === 'be' ? buf.readBigUInt64BE(f.offset) : buf.readBigUInt64LE(f.offset);
  }
}

export function writeField(buf: Buffer, f: Field, v: bigint): void {
  if (f.offset + f.size > buf.length) return;
  const mask = (1n << BigInt(f.size * 8)) - 1n;
  const x = v & mask;
  switch (f.size) {
    case 1:
      buf[f.offset] = Number(x);
      break;
    case 2:
      f.endian === 'be' ? buf.writeUInt16BE(Number(x), f.offset) : buf.writeUInt16LE(Number(x), f.offset);
      break;
    case 4:
      f.endian === 'be' ? buf.writeUInt32BE(Number(x), f.offset) : buf.writeUInt32LE(Number(x), f.offset);
      break;
    case 8:
      f.endian === 'be' ? buf.writeBigUInt64BE(x, f.offset) : buf.writeBigUInt64LE(x, f.offset);
      break;
  }
}

export { readField };

/** `count` table entries of `size` bytes from `offset`, capped so a mutation list stays small. */
function table(offset: bigint | number, count: number, size: 4 | 8, endian: 'be' | 'le', name: string, fileLength: number): Field[] {
  const out: Field[] = [];
  const start = Number(offset);
  if (!Number.isSafeInteger(start) || start <= 0 || start >= fileLength) return out;
  for (let i = 0; i < Math.min(count, 64); i++) {
    const o = start + i * size;
    if (o + size > fileLength) break;
    out.push({ offset: o, size, endian, name: `${name}[${i}]` });
  }
  return out;
}

const qcow2: FormatFuzzSpec = {
  fields(b) {
    const f = [
      be(4, 4, 'version'), be(8, 8, 'backing_file_offset'), be(16, 4, 'backing_file_size'), be(20, 4, 'cluster_bits'),
      be(24, 8, 'size'), be(32, 4, 'crypt_method'), be(36, 4, 'l1_size'), be(40, 8, 'l1_table_offset'),
      be(48, 8, 'refcount_table_offset'), be(56, 4, 'refcount_table_clusters'), be(60, 4, 'nb_snapshots'),
      be(64, 8, 'snapshots_offset'), be(72, 8, 'incompatible_features'), be(80, 8, 'compatible_features'),
      be(88, 8, 'autoclear_features'), be(96, 4, 'refcount_order'), be(100, 4, 'header_length'),
    ];
    const l1 = table(b.readBigUInt64BE(40), b.readUInt32BE(36), 8, 'be', 'l1', b.length);
    const rt = table(b.readBigUInt64BE(48), 16, 8, 'be', 'refcount_table', b.length);
    // The first L2 table and refcount block named by those tables.
    const l2 = l1.length ? table(b.readBigUInt64BE(l1[0]!.offset) & 0x00fffffffffffe00n, 64, 8, 'be', 'l2', b.length) : [];
    const rb = rt.length ? table(b.readBigUInt64BE(rt[0]!.offset), 32, 8, 'be', 'refcount_block', b.length) : [];
    const snap = Number(b.readBigUInt64BE(64));
    const snaps = b.readUInt32BE(60) > 0 && snap > 0 && snap + 40 < b.length
      ? [be(snap, 8, 'snap.l1_table_offset'), be(snap + 8, 4, 'snap.l1_size'), be(snap + 12, 2, 'snap.id_str_size'), be(snap + 14, 2, 'snap.name_size'), be(snap + 36, 4, 'snap.extra_data_size')]
      : [];
    return [...f, ...l1, ...l2, ...rt, ...rb, ...snaps];
  },
};

const qcow1: FormatFuzzSpec = {
  fields(b) {
    const f = [be(4, 4, 'version'), be(8, 8, 'backing_file_offset'), be(16, 4, 'backing_file_size'), be(24, 8, 'size'), be(32, 1, 'cluster_bits'), be(33, 1, 'l2_bits'), be(36, 4, 'crypt_method'), be(40, 8, 'l1_table_offset')];
    const l1 = table(b.readBigUInt64BE(40), 16, 8, 'be', 'l1', b.length);
    const l2 = l1.length ? table(b.readBigUInt64BE(l1[0]!.offset), 32, 8, 'be', 'l2', b.length) : [];
    return [...f, ...l1, ...l2];
  },
};

const qed: FormatFuzzSpec = {
  fields(b) {
    const f = [le(4, 4, 'cluster_size'), le(8, 4, 'table_size'), le(12, 4, 'header_size'), le(16, 8, 'features'), le(24, 8, 'compat_features'), le(32, 8, 'autoclear_features'), le(40, 8, 'l1_table_offset'), le(48, 8, 'image_size'), le(56, 4, 'backing_filename_offset'), le(60, 4, 'backing_filename_size')];
    const l1 = table(b.readBigUInt64LE(40), 16, 8, 'le', 'l1', b.length);
    const l2 = l1.length ? table(b.readBigUInt64LE(l1[0]!.offset), 32, 8, 'le', 'l2', b.length) : [];
    return [...f, ...l1, ...l2];
  },
};

const vdi: FormatFuzzSpec = {
  fields(b) {
    const f = [le(64, 4, 'signature'), le(68, 4, 'version'), le(72, 4, 'header_size'), le(76, 4, 'image_type'), le(80, 4, 'image_flags'), le(340, 4, 'offset_bmap'), le(344, 4, 'offset_data'), le(360, 4, 'sector_size'), le(368, 8, 'disk_size'), le(376, 4, 'block_size'), le(380, 4, 'block_extra'), le(384, 4, 'blocks_in_image'), le(388, 4, 'blocks_allocated')];
    return [...f, ...table(b.readUInt32LE(340), 32, 4, 'le', 'bmap', b.length)];
  },
};

/** VHD footer checksum: one's complement of the byte sum with the field zeroed. */
function vpcChecksum(buf: Buffer, start: number, length: number, fieldAt: number): void {
  if (start < 0 || start + length > buf.length) return;
  buf.writeUInt32BE(0, start + fieldAt);
  let sum = 0;
  for (let i = start; i < start + length; i++) sum = (sum + buf[i]!) >>> 0;
  buf.writeUInt32BE(~sum >>> 0, start + fieldAt);
}

const vpc: FormatFuzzSpec = {
  fields(b) {
    const foot = (base: number, tag: string) => [be(base + 8, 4, `${tag}.features`), be(base + 12, 4, `${tag}.version`), be(base + 16, 8, `${tag}.data_offset`), be(base + 28, 4, `${tag}.creator_app`), be(base + 40, 8, `${tag}.orig_size`), be(base + 48, 8, `${tag}.current_size`), be(base + 56, 2, `${tag}.cyls`), be(base + 58, 1, `${tag}.heads`), be(base + 59, 1, `${tag}.secs`), be(base + 60, 4, `${tag}.type`), be(base + 64, 4, `${tag}.checksum`)];
    const f = [...foot(0, 'footer0'), ...foot(b.length - 512, 'footer')];
    const dyn = Number(b.readBigUInt64BE(16));
    if (dyn > 0 && dyn + 1024 <= b.length) {
      f.push(be(dyn + 8, 8, 'dyn.data_offset'), be(dyn + 16, 8, 'dyn.table_offset'), be(dyn + 24, 4, 'dyn.version'), be(dyn + 28, 4, 'dyn.max_table_entries'), be(dyn + 32, 4, 'dyn.block_size'), be(dyn + 36, 4, 'dyn.checksum'));
      f.push(...table(b.readBigUInt64BE(dyn + 16), 32, 4, 'be', 'bat', b.length));
    }
    return f;
  },
  fixChecksums(b) {
    vpcChecksum(b, 0, 512, 64);
    vpcChecksum(b, b.length - 512, 512, 64);
    const dyn = b.length >= 512 ? Number(b.readBigUInt64BE(16)) : 0;
    if (dyn > 0 && dyn + 1024 <= b.length) vpcChecksum(b, dyn, 1024, 36);
  },
};

const vmdk: FormatFuzzSpec = {
  fields(b) {
    const f = [le(4, 4, 'version'), le(8, 4, 'flags'), le(12, 8, 'capacity'), le(20, 8, 'grain_size'), le(28, 8, 'descriptor_offset'), le(36, 8, 'descriptor_size'), le(44, 4, 'num_gtes_per_gt'), le(48, 8, 'rgd_offset'), le(56, 8, 'gd_offset'), le(64, 8, 'overhead'), le(77, 2, 'compress_algorithm')];
    const gdSector = b.readBigUInt64LE(56);
    const gd = gdSector > 0n && gdSector < 1n << 40n ? table(gdSector * 512n, 16, 4, 'le', 'gd', b.length) : [];
    const gt = gd.length ? table(BigInt(b.readUInt32LE(gd[0]!.offset)) * 512n, 32, 4, 'le', 'gt', b.length) : [];
    return [...f, ...gd, ...gt];
  },
};

const luks: FormatFuzzSpec = {
  fields() {
    const f = [be(6, 2, 'version'), be(104, 4, 'payload_offset'), be(108, 4, 'key_bytes'), be(164, 4, 'mk_digest_iter')];
    for (let i = 0; i < 8; i++) {
      const o = 208 + i * 48;
      f.push(be(o, 4, `slot${i}.active`), be(o + 4, 4, `slot${i}.iterations`), be(o + 40, 4, `slot${i}.key_offset`), be(o + 44, 4, `slot${i}.stripes`));
    }
    return f;
  },
};

const raw: FormatFuzzSpec = { fields: () => [] };

/** Bochs redolog header (little endian) and its catalog. */
const bochs: FormatFuzzSpec = {
  fields(b) {
    if (b.length < 96) return [];
    const f = [le(64, 4, 'version'), le(68, 4, 'header'), le(72, 4, 'catalog'), le(76, 4, 'bitmap'), le(80, 4, 'extent'), le(84, 4, 'reserved_or_v1_disk'), le(88, 8, 'disk')];
    return [...f, ...table(b.readUInt32LE(68), b.readUInt32LE(72), 4, 'le', 'catalog', b.length)];
  },
};

/** cloop V2.0 header (big endian) and its offsets table. */
const cloop: FormatFuzzSpec = {
  fields(b) {
    if (b.length < 136) return [];
    return [be(128, 4, 'block_size'), be(132, 4, 'n_blocks'), ...table(136, b.readUInt32BE(132) + 1, 8, 'be', 'offsets', b.length)];
  },
};

export const FUZZ_SPECS: Record<string, FormatFuzzSpec> = { qcow2, qcow: qcow1, qed, vdi, vpc, vmdk, luks, raw, bochs, cloop, dmg: dmgFuzzSpec };

/** parallels: the header (magic tail, version, tracks, catalog size, sectors, inuse, data and
 *  extension offsets) and the first BAT entries. */
FUZZ_SPECS['parallels'] = {
  fields: (b) => [le(12, 4, 'magic_tail'), le(16, 4, 'version'), le(28, 4, 'tracks'), le(32, 4, 'bat_entries'), le(36, 8, 'nb_sectors'), le(44, 4, 'inuse'), le(48, 4, 'data_off'), le(52, 4, 'flags'), le(56, 8, 'ext_off'), ...table(64, 32, 4, 'le', 'bat', b.length)],
};

/** Values that break arithmetic: zero, one, sign bits, all-ones, near the file size. */
export function interestingValues(size: Field['size'], fileLength: number): bigint[] {
  const bits = BigInt(size * 8);
  const max = (1n << bits) - 1n;
  const vals = [0n, 1n, 2n, 7n, 8n, 9n, 16n, 21n, 22n, 63n, 64n, 255n, 256n, 511n, 512n, 4096n, 65535n, 65536n, max, max - 1n, max >> 1n, (max >> 1n) + 1n, BigInt(fileLength), BigInt(fileLength) - 512n, BigInt(fileLength) + 512n, 1n << 30n, 1n << 31n, (1n << 32n) - 1n, 1n << 32n];
  return vals.map((v) => v & max);
}

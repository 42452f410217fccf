// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table driven. Used by VHDX for its
// headers, region tables and log entries (MS-VHDX 2.2: "CRC-32C ... Castagnoli polynomial").

/** Reflected form of the Castagnoli polynomial 0x1EDC6F41. */
const CASTAGNOLI_REFLECTED = 0x82f63b78;

const TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ CASTAGNOLI_REFLECTED : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** Continue a CRC-32C over `data` from a previous (finalised) value `crc` (0 to start). */
export function crc32c(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/**
 * CRC-32C of `data` with the 4-byte checksum field at `fieldOffset` taken as zero (how VHDX
 * computes every checksum), without modifying `data`.
 */
export function crc32cWithZeroField(data: Uint8Array, fieldOffset: number): number {
  let c = crc32c(data.subarray(0, fieldOffset));
  c = crc32c(new Uint8Array(4), c);
  return crc32c(data.subarray(fieldOffset + 4), c);
}

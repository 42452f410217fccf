// The iSCSI header digest (RFC 7143 section 13.1 "HeaderDigest and DataDigest": CRC32C), on the
// table-driven CRC-32C of core/util (RFC 3720 appendix B.4 gives the test vectors).

import { crc32c } from '../../util/crc32c.ts';

/** The 4 digest bytes as they go on the wire: the CRC least significant byte first
 *  (RFC 3720 B.4: 32 zero bytes give aa 36 91 8a). */
export function crc32cDigest(data: Uint8Array): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(crc32c(data), 0);
  return b;
}

export { crc32c };

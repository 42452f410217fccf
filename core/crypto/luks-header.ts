// The LUKS1 partition header ("phdr", 592 bytes, big-endian) and its 8 key-slot records, as
// the LUKS On-Disk Format Specification 1.2.x section 2.4 ("PHDR layout") and 2.5 (key slots)
// define them. Decode/encode only: what the fields must satisfy is validate.ts's job.

import { invalidImage } from '../errors.ts';

/** "LUKS" 0xBA 0xBE (spec 2.4, magic). */
export const LUKS_MAGIC = Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]);
export const LUKS_VERSION_1 = 1;
/** Size of the phdr with its 8 key-slot records. */
export const LUKS_PHDR_SIZE = 592;
export const LUKS_NUM_KEY_SLOTS = 8;
/** Key slot states (spec 2.5: LUKS_KEY_ENABLED / LUKS_KEY_DISABLED). */
export const LUKS_KEY_ENABLED = 0x00ac71f3;
export const LUKS_KEY_DISABLED = 0x0000dead;
/** mk-digest length (spec: LUKS_DIGESTSIZE), salt length (LUKS_SALTSIZE). */
export const LUKS_DIGEST_SIZE = 20;
export const LUKS_SALT_SIZE = 32;
/** Anti-forensic stripes cryptsetup and QEMU always write (spec: LUKS_STRIPES). */
export const LUKS_STRIPES = 4000;
/** Sector unit of payload-offset and key-material-offset. */
export const LUKS_SECTOR_SIZE = 512;

const NAME_LEN = 32; // cipher-name, cipher-mode, hash-spec
const UUID_LEN = 40;
const KEY_SLOT_SIZE = 48;

/** Field offsets in the phdr (spec 2.4). */
const OFF = {
  magic: 0,
  version: 6,
  cipherName: 8,
  cipherMode: 40,
  hashSpec: 72,
  payloadOffset: 104,
  keyBytes: 108,
  mkDigest: 112,
  mkDigestSalt: 132,
  mkDigestIterations: 164,
  uuid: 168,
  keySlots: 208,
} as const;

/** One key-slot record (spec 2.5). */
export interface LuksKeySlot {
  /** LUKS_KEY_ENABLED or LUKS_KEY_DISABLED (anything else is corruption). */
  active: number;
  /** PBKDF2 iterations for the passphrase. */
  iterations: number;
  salt: Buffer;
  /** Start of the slot's key material, in 512-byte sectors. */
  keyMaterialOffset: number;
  /** Anti-forensic stripes (4000). */
  stripes: number;
}

export interface LuksHeader {
  magic: Buffer;
  version: number;
  cipherName: string;
  cipherMode: string;
  hashSpec: string;
  /** Start of the encrypted payload, in 512-byte sectors. */
  payloadOffset: number;
  /** Master key length in bytes (both halves for xts). */
  keyBytes: number;
  mkDigest: Buffer;
  mkDigestSalt: Buffer;
  mkDigestIterations: number;
  uuid: string;
  keySlots: LuksKeySlot[];
}

/** A NUL-terminated string field; bytes past the first NUL are ignored. */
function readCString(buf: Buffer, off: number, len: number): string {
  const field = buf.subarray(off, off + len);
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? len : end).toString('latin1');
}

function writeCString(buf: Buffer, off: number, len: number, value: string, what: string): void {
  const bytes = Buffer.from(value, 'latin1');
  if (bytes.length >= len) throw invalidImage(`${what} '${value}' is too long for LUKS header`);
  buf.fill(0, off, off + len);
  bytes.copy(buf, off);
}

/** Decode the first 592 bytes of a LUKS header (magic and version are checked by validate). */
export function decodeLuksHeader(buf: Buffer): LuksHeader {
  if (buf.length < LUKS_PHDR_SIZE) throw invalidImage(`LUKS header is truncated: ${buf.length} bytes, expected ${LUKS_PHDR_SIZE}`);
  const keySlots: LuksKeySlot[] = [];
  for (let i = 0; i < LUKS_NUM_KEY_SLOTS; i++) {
    const o = OFF.keySlots + i * KEY_SLOT_SIZE;
    keySlots.push({
      active: buf.readUInt32BE(o),
      iterations: buf.readUInt32BE(o + 4),
      salt: Buffer.from(buf.subarray(o + 8, o + 8 + LUKS_SALT_SIZE)),
      keyMaterialOffset: buf.readUInt32BE(o + 40),
      stripes: buf.readUInt32BE(o + 44),
    });
  }
  return {
    magic: Buffer.from(buf.subarray(OFF.magic, OFF.magic + LUKS_MAGIC.length)),
    version: buf.readUInt16BE(OFF.version),
    cipherName: readCString(buf, OFF.cipherName, NAME_LEN),
    cipherMode: readCString(buf, OFF.cipherMode, NAME_LEN),
    hashSpec: readCString(buf, OFF.hashSpec, NAME_LEN),
    payloadOffset: buf.readUInt32BE(OFF.payloadOffset),
    keyBytes: buf.readUInt32BE(OFF.keyBytes),
    mkDigest: Buffer.from(buf.subarray(OFF.mkDigest, OFF.mkDigest + LUKS_DIGEST_SIZE)),
    mkDigestSalt: Buffer.from(buf.subarray(OFF.mkDigestSalt, OFF.mkDigestSalt + LUKS_SALT_SIZE)),
    mkDigestIterations: buf.readUInt32BE(OFF.mkDigestIterations),
    uuid: readCString(buf, OFF.uuid, UUID_LEN),
    keySlots,
  };
}

/** Encode a header into 592 bytes (the caller writes it at offset 0). */
export function encodeLuksHeader(h: LuksHeader): Buffer {
  const buf = Buffer.alloc(LUKS_PHDR_SIZE);
  LUKS_MAGIC.copy(buf, OFF.magic);
  buf.writeUInt16BE(h.version, OFF.version);
  writeCString(buf, OFF.cipherName, NAME_LEN, h.cipherName, 'Cipher name');
  writeCString(buf, OFF.cipherMode, NAME_LEN, h.cipherMode, 'Cipher mode');
  writeCString(buf, OFF.hashSpec, NAME_LEN, h.hashSpec, 'Hash name');
  buf.writeUInt32BE(h.payloadOffset, OFF.payloadOffset);
  buf.writeUInt32BE(h.keyBytes, OFF.keyBytes);
  h.mkDigest.copy(buf, OFF.mkDigest, 0, LUKS_DIGEST_SIZE);
  h.mkDigestSalt.copy(buf, OFF.mkDigestSalt, 0, LUKS_SALT_SIZE);
  buf.writeUInt32BE(h.mkDigestIterations, OFF.mkDigestIterations);
  writeCString(buf, OFF.uuid, UUID_LEN, h.uuid, 'UUID');
  h.keySlots.forEach((s, i) => {
    const o = OFF.keySlots + i * KEY_SLOT_SIZE;
    buf.writeUInt32BE(s.active, o);
    buf.writeUInt32BE(s.iterations, o + 4);
    s.salt.copy(buf, o + 8, 0, LUKS_SALT_SIZE);
    buf.writeUInt32BE(s.keyMaterialOffset, o + 40);
    buf.writeUInt32BE(s.stripes, o + 44);
  });
  return buf;
}

/** Does this buffer start with a LUKS header (any version)? */
export function hasLuksMagic(head: Buffer): boolean {
  return head.length >= LUKS_MAGIC.length && head.subarray(0, LUKS_MAGIC.length).equals(LUKS_MAGIC);
}

/** Bytes of key material a slot holds: keyBytes * stripes, rounded up to whole sectors. */
export function keyMaterialSectors(keyBytes: number, stripes: number): number {
  return Math.ceil((keyBytes * stripes) / LUKS_SECTOR_SIZE);
}

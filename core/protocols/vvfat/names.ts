// Directory-entry names of the virtual FAT volume: 8.3 short names with QEMU's numeric tails,
// VFAT long-name (LFN) entries, and the checksum that ties them together. Behaviour learnt from
// QEMU 7.2 block/vvfat.c (create_short_filename, create_long_filename, fat_chksum) and the FAT
// specification (Microsoft FAT32 File System Specification 1.03, "Long File Name Implementation").

/** One directory entry is 32 bytes (FAT spec "Directory Structure"). */
export const DIRENT_SIZE = 32;
/** Attribute byte of a long-name entry (READ_ONLY|HIDDEN|SYSTEM|VOLUME_ID). */
export const ATTR_LONG_NAME = 0x0f;
/** First name byte 0xE5 means "deleted"; a real 0xE5 is stored as 0x05 (FAT spec DIR_Name[0]). */
const DIR_KANJI = 0xe5;
const DIR_KANJI_FAKE = 0x05;

/** Characters an 8.3 name may keep besides A-Z and 0-9, as QEMU's to_valid_short_char. */
const SHORT_SPECIALS = new Set(Array.from("$%'-_@~`!(){}^#&", (c) => c.charCodeAt(0)));

/** GLib's g_unichar_toupper: the simple (one code point) upper case, else the character. */
function toUpperSimple(cp: number): number {
  const s = String.fromCodePoint(cp).toUpperCase();
  const up = s.codePointAt(0)!;
  return s.length === String.fromCodePoint(up).length ? up : cp;
}

/**
 * The byte a character becomes in a short name, or 0 when it is dropped (QEMU's
 * to_valid_short_char). QEMU looks the character up with strchr, which compares only its low
 * byte: a non-ASCII character whose low byte is one of the allowed punctuation marks becomes that
 * mark (U+0124 becomes '$'). Kept so the names equal QEMU's.
 */
export function shortNameChar(cp: number): number {
  const u = toUpperSimple(cp);
  if ((u >= 0x30 && u <= 0x39) || (u >= 0x41 && u <= 0x5a)) return u;
  const low = u & 0xff;
  return SHORT_SPECIALS.has(low) ? low : 0;
}

/**
 * The 11-byte short name for `name` in a directory whose earlier short names (and volume label,
 * and dot entries) are `taken` (QEMU's create_short_filename): the base (up to 8 valid
 * characters, before the last dot) and extension (up to 3, after it), upper case; a "~N" tail
 * when anything was dropped or the name clashes, counting up until it is unique. Undefined when
 * no tail up to ~999998 is free (QEMU gives up there too).
 */
export function shortName(name: string, taken: { has(key: string): boolean }): Buffer | undefined {
  const out = Buffer.alloc(11, 0x20);
  const cps = Array.from(name, (c) => c.codePointAt(0)!);
  let lossy = false;
  let j = 0;
  let lastDot = -1;
  for (let k = 0; k < cps.length; k++) {
    const c = cps[k]!;
    if (c === 0x2e) {
      // A dot before any kept character does not start the extension.
      if (j === 0) lossy = true;
      else {
        if (lastDot >= 0) lossy = true;
        lastDot = k;
      }
    } else if (lastDot < 0) {
      const v = shortNameChar(c);
      if (j < 8 && v) out[j++] = v;
      else lossy = true;
    }
  }
  if (lastDot >= 0) {
    let e = 0;
    for (let k = lastDot + 1; k < cps.length; k++) {
      const v = shortNameChar(cps[k]!);
      if (e < 3 && v) out[8 + e++] = v;
      else lossy = true;
    }
  }
  if (out[0] === DIR_KANJI) out[0] = DIR_KANJI_FAKE;
  // Where a tail goes: after the base's last character, pulled left so it fits in 8.
  let baseLen = 0;
  while (baseLen < 8 && out[baseLen] !== 0x20) baseLen++;
  for (let i = lossy ? 1 : 0; i < 999999; i++) {
    if (i > 0) {
      const tail = `~${i}`;
      out.write(tail, Math.min(baseLen, 8 - tail.length), 'latin1');
    }
    if (!taken.has(out.toString('latin1'))) return out;
  }
  return undefined;
}

/** The checksum of a short name that each of its long-name entries carries (FAT spec ChkSum). */
export function shortNameChecksum(name11: Buffer): number {
  let sum = 0;
  for (let i = 0; i < 11; i++) sum = ((((sum & 1) << 7) | ((sum & 0xfe) >> 1)) + name11[i]!) & 0xff;
  return sum;
}

/** Byte offsets of the 13 UTF-16 characters inside one long-name entry (FAT spec LDIR_Name1-3). */
const LFN_CHAR_OFFSETS = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];

/**
 * The long-name entries for `name`, in the order they are stored (the last part first, its
 * ordinal flagged 0x40), 13 UTF-16 units each, NUL-terminated unless the name fills the last
 * entry exactly, then 0xFFFF padding (QEMU's create_long_filename). `checksum` is the short
 * name's checksum.
 */
export function longNameEntries(name: string, checksum: number): Buffer {
  const units: number[] = [];
  for (let i = 0; i < name.length; i++) units.push(name.charCodeAt(i));
  const count = Math.ceil((units.length * 2) / 26);
  const out = Buffer.alloc(count * DIRENT_SIZE);
  for (let e = 0; e < count; e++) {
    const entry = out.subarray(e * DIRENT_SIZE, (e + 1) * DIRENT_SIZE);
    const ordinal = count - e; // stored entry e holds part number (count - e)
    entry[0] = ordinal | (e === 0 ? 0x40 : 0);
    entry[11] = ATTR_LONG_NAME;
    entry[12] = 0;
    entry[13] = checksum;
    // bytes 26-27 (first cluster) stay 0
    const base = (ordinal - 1) * 13;
    for (let k = 0; k < 13; k++) {
      const idx = base + k;
      const v = idx < units.length ? units[idx]! : idx === units.length ? 0 : 0xffff;
      entry.writeUInt16LE(v, LFN_CHAR_OFFSETS[k]!);
    }
  }
  return out;
}

/** A name as a FAT directory shows it ("README  TXT" -> "README.TXT"), for messages and tests. */
export function displayShortName(name11: Buffer): string {
  const base = name11.subarray(0, 8).toString('latin1').trimEnd();
  const ext = name11.subarray(8, 11).toString('latin1').trimEnd();
  return ext ? `${base}.${ext}` : base;
}

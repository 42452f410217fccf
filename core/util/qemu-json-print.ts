// JSON text as qemu-img prints it (info, check, measure --output=json). QEMU turns its QAPI
// results into QDicts and prints those: a QDict is a hash table of 512 buckets, so keys come out
// in bucket order of its string hash (the TDB hash), and a key added later comes first within a
// bucket. Strings are escaped as QEMU's JSON writer does: '"', '\' and \b \f \n \r \t by name,
// every other character below 0x20 or above 0x7e as \uXXXX in upper-case hex (surrogate pairs
// beyond the BMP); '/' is left alone. Pretty-printed with 4-space indents.

const QDICT_BUCKETS = 512;

/** QEMU's QDict key hash (the TDB hash) of the key's UTF-8 bytes, as a uint32. */
export function qdictHash(key: string): number {
  const bytes = Buffer.from(key, 'utf8');
  let value = Math.imul(0x238f13af, bytes.length) >>> 0;
  for (let i = 0; i < bytes.length; i++) value = (value + ((bytes[i]! << ((i * 5) % 24)) >>> 0)) >>> 0;
  return (Math.imul(1103515243, value) + 12345) >>> 0;
}

/** The keys of an object in the order QEMU prints them (given in the order they were added). */
export function qdictOrder(keys: readonly string[]): string[] {
  // Later keys first, then a stable sort by bucket: within a bucket the newest comes first.
  return [...keys].reverse().map((k) => ({ k, b: qdictHash(k) % QDICT_BUCKETS })).sort((x, y) => x.b - y.b).map((e) => e.k);
}

/** A string as QEMU's JSON writer escapes it. */
export function quote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (cp >= 0x20 && cp <= 0x7e) out += ch;
    else if (cp <= 0xffff) out += `\\u${cp.toString(16).toUpperCase().padStart(4, '0')}`;
    else {
      const v = cp - 0x10000;
      out += `\\u${(0xd800 + (v >> 10)).toString(16).toUpperCase()}\\u${(0xdc00 + (v & 0x3ff)).toString(16).toUpperCase()}`;
    }
  }
  return out + '"';
}

function write(v: unknown, depth: number): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return quote(v);
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  const pad = '    '.repeat(depth + 1);
  const end = '    '.repeat(depth);
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return `[\n${v.map((x) => pad + write(x, depth + 1)).join(',\n')}\n${end}]`;
  }
  const obj = v as Record<string, unknown>;
  const keys = qdictOrder(Object.keys(obj).filter((k) => obj[k] !== undefined));
  if (keys.length === 0) return '{}';
  return `{\n${keys.map((k) => `${pad}${quote(k)}: ${write(obj[k], depth + 1)}`).join(',\n')}\n${end}}`;
}

/** `v` as qemu-img's pretty JSON output, with a final newline. */
export function qemuJson(v: unknown): string {
  return write(v, 0) + '\n';
}

// Apple's XML property lists (the DTD http://www.apple.com/DTDs/PropertyList-1.0.dtd), as macOS
// tools print them with -plist / -a: `ioreg -a`, `diskutil list -plist`, `diskutil info -plist`.
// A small strict reader: dict, array, string, integer, real, true, false, data, date. Integers
// past 2^53 stay text (sizes of real disks are far below). Anything else is an error, never a
// guess: the callers treat an unreadable answer as "no such device".

export type PlistValue = string | number | boolean | Buffer | Date | PlistValue[] | { [key: string]: PlistValue };

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const MAX_DEPTH = 64;

function unescapeText(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, e: string) => {
    if (e.startsWith('#x')) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(parseInt(e.slice(1), 10));
    const v = ENTITIES[e];
    if (v === undefined) throw new Error(`plist: unknown entity ${m}`);
    return v;
  });
}

/** Parse a whole XML property list; throws Error on anything malformed. */
export function parsePlist(xml: string): PlistValue {
  let pos = 0;
  const skipMisc = () => {
    for (;;) {
      const m = /^(\s+|<\?[\s\S]*?\?>|<!--[\s\S]*?-->|<!DOCTYPE[^>]*>)/.exec(xml.slice(pos, pos + 4096));
      if (!m) return;
      pos += m[0].length;
    }
  };
  const tag = (): { name: string; close: boolean; empty: boolean } => {
    skipMisc();
    const m = /^<(\/?)([A-Za-z]+)(\s[^>]*?)?(\/?)>/.exec(xml.slice(pos, pos + 1024));
    if (!m) throw new Error(`plist: expected a tag at ${pos}`);
    pos += m[0].length;
    return { name: m[2]!, close: m[1] === '/', empty: m[4] === '/' };
  };
  const text = (name: string): string => {
    const end = xml.indexOf(`</${name}>`, pos);
    if (end < 0) throw new Error(`plist: <${name}> is not closed`);
    const raw = xml.slice(pos, end);
    if (raw.includes('<')) throw new Error(`plist: markup inside <${name}>`);
    pos = end + name.length + 3;
    return unescapeText(raw);
  };
  const value = (t: { name: string; close: boolean; empty: boolean }, depth: number): PlistValue => {
    if (t.close) throw new Error(`plist: unexpected </${t.name}>`);
    if (depth > MAX_DEPTH) throw new Error('plist: nested too deeply');
    switch (t.name) {
      case 'true':
      case 'false':
        if (!t.empty) expectClose(t.name);
        return t.name === 'true';
      case 'string':
        return t.empty ? '' : text('string');
      case 'integer': {
        const s = t.empty ? '' : text('integer').trim();
        if (!/^[+-]?\d+$/.test(s) && !/^0x[0-9a-fA-F]+$/.test(s)) throw new Error(`plist: bad integer '${s}'`);
        const n = Number(s);
        return Number.isSafeInteger(n) ? n : s;
      }
      case 'real': {
        const n = Number(t.empty ? '' : text('real').trim());
        if (Number.isNaN(n)) throw new Error('plist: bad real');
        return n;
      }
      case 'data':
        return Buffer.from((t.empty ? '' : text('data')).replace(/\s+/g, ''), 'base64');
      case 'date': {
        const d = new Date(t.empty ? '' : text('date').trim());
        if (Number.isNaN(d.getTime())) throw new Error('plist: bad date');
        return d;
      }
      case 'array': {
        const out: PlistValue[] = [];
        if (t.empty) return out;
        for (;;) {
          const n = tag();
          if (n.close && n.name === 'array') return out;
          out.push(value(n, depth + 1));
        }
      }
      case 'dict': {
        const out: { [key: string]: PlistValue } = Object.create(null) as { [key: string]: PlistValue };
        if (t.empty) return out;
        for (;;) {
          const k = tag();
          if (k.close && k.name === 'dict') return out;
          if (k.name !== 'key' || k.close) throw new Error(`plist: expected <key> in <dict>, found <${k.name}>`);
          const key = k.empty ? '' : text('key');
          out[key] = value(tag(), depth + 1);
        }
      }
      default:
        throw new Error(`plist: unknown element <${t.name}>`);
    }
  };
  const expectClose = (name: string) => {
    const c = tag();
    if (!c.close || c.name !== name) throw new Error(`plist: <${name}> is not closed`);
  };
  const root = tag();
  if (root.name !== 'plist' || root.close) throw new Error('plist: no <plist> element');
  const v = value(tag(), 0);
  expectClose('plist');
  skipMisc();
  if (pos !== xml.length) throw new Error('plist: text after </plist>');
  return v;
}

export function isDict(v: PlistValue | undefined): v is { [key: string]: PlistValue } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v) && !(v instanceof Date);
}

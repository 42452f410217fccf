// JSON as QEMU's parser reads it (qobject/json-lexer.c, json-parser.c): RFC 8259 plus strings in
// single quotes (where \' escapes a quote), which `json:` filenames in image headers and on
// command lines use. Errors carry QEMU's words ("JSON parse error, premature EOI").

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export class QemuJsonError extends Error {
  constructor(message: string) {
    super(`JSON parse error, ${message}`);
    this.name = 'QemuJsonError';
  }
}

/** Nesting deeper than this is refused (QEMU: MAX_NESTING 1024), so input cannot exhaust the stack. */
const MAX_NESTING = 1024;
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?/y;
const KEYWORD = /[a-z]+/y;
const SIMPLE_ESCAPES: Record<string, string> = { '"': '"', "'": "'", '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

export function parseQemuJson(text: string): JsonValue {
  let pos = 0;
  const skipSpace = () => {
    while (pos < text.length && ' \t\r\n'.includes(text[pos]!)) pos++;
  };
  const eoi = () => new QemuJsonError('premature EOI');

  const parseString = (): string => {
    const quote = text[pos++]!;
    let out = '';
    for (;;) {
      if (pos >= text.length) throw eoi();
      const c = text[pos++]!;
      if (c === quote) return out;
      if (c.charCodeAt(0) < 0x20) throw new QemuJsonError('invalid character in string');
      if (c !== '\\') {
        out += c;
        continue;
      }
      if (pos >= text.length) throw eoi();
      const e = text[pos++]!;
      if (e === 'u') {
        const hex = text.slice(pos, pos + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw new QemuJsonError('invalid escape sequence in string');
        out += String.fromCharCode(parseInt(hex, 16));
        pos += 4;
      } else if (SIMPLE_ESCAPES[e] !== undefined) {
        out += SIMPLE_ESCAPES[e];
      } else {
        throw new QemuJsonError('invalid escape sequence in string');
      }
    }
  };

  const parseValue = (depth: number): JsonValue => {
    if (depth > MAX_NESTING) throw new QemuJsonError('too many nested data structures');
    skipSpace();
    if (pos >= text.length) throw eoi();
    const c = text[pos]!;
    if (c === '{') return parseObject(depth + 1);
    if (c === '[') return parseArray(depth + 1);
    if (c === '"' || c === "'") return parseString();
    NUMBER.lastIndex = pos;
    const num = NUMBER.exec(text);
    if (num) {
      pos += num[0].length;
      return Number(num[0]);
    }
    KEYWORD.lastIndex = pos;
    const word = KEYWORD.exec(text);
    if (word) {
      pos += word[0].length;
      if (word[0] === 'true') return true;
      if (word[0] === 'false') return false;
      if (word[0] === 'null') return null;
      throw new QemuJsonError(`invalid keyword '${word[0]}'`);
    }
    throw new QemuJsonError('expecting value');
  };

  const parseObject = (depth: number): { [key: string]: JsonValue } => {
    pos++; // {
    const obj: { [key: string]: JsonValue } = Object.create(null);
    skipSpace();
    if (pos >= text.length) throw eoi();
    if (text[pos] === '}') {
      pos++;
      return { ...obj };
    }
    for (;;) {
      skipSpace();
      if (pos >= text.length) throw eoi();
      if (text[pos] !== '"' && text[pos] !== "'") throw new QemuJsonError('key is not a string in object');
      const key = parseString();
      skipSpace();
      if (pos >= text.length) throw eoi();
      if (text[pos] !== ':') throw new QemuJsonError('missing : in object pair');
      pos++;
      const value = parseValue(depth);
      if (Object.prototype.hasOwnProperty.call(obj, key)) throw new QemuJsonError('duplicate key');
      obj[key] = value;
      skipSpace();
      if (pos >= text.length) throw eoi();
      if (text[pos] === '}') {
        pos++;
        return { ...obj };
      }
      if (text[pos] !== ',') throw new QemuJsonError('expected separator in dict');
      pos++;
    }
  };

  const parseArray = (depth: number): JsonValue[] => {
    pos++; // [
    const list: JsonValue[] = [];
    skipSpace();
    if (pos >= text.length) throw eoi();
    if (text[pos] === ']') {
      pos++;
      return list;
    }
    for (;;) {
      list.push(parseValue(depth));
      skipSpace();
      if (pos >= text.length) throw eoi();
      if (text[pos] === ']') {
        pos++;
        return list;
      }
      if (text[pos] !== ',') throw new QemuJsonError('expected separator in list');
      pos++;
    }
  };

  const value = parseValue(0);
  skipSpace();
  if (pos < text.length) throw new QemuJsonError('expecting value');
  return value;
}

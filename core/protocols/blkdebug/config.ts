// blkdebug's rules as the user writes them (QEMU block/blkdebug.c read_config): a config file of
// `[inject-error]` / `[set-state]` sections with `key = "value"` lines (util/qemu-config.c
// qemu_config_parse, whose line syntax this follows to the letter), and the same sections given
// as options (`inject-error: [{...}]` in json:, `inject-error.0.event=...` dotted, or a single
// `inject-error.event=...`). Both become one ordered list of rule specs: the file's sections
// first, then the options', inject-error before set-state (the order QEMU adds them in, which
// decides which rule wins; rules.ts).

import { invalidArgument } from '../../errors.ts';
import { isDebugEvent, isDebugIoType, type DebugEvent, type DebugIoType } from '../../block/debug-events.ts';
import { listItems, type OptionLeaf, type OptionsTree } from '../../block/options-tree.ts';

/** One [inject-error] section: fail requests with `errno` once `event` fired (in `state`). */
export interface InjectErrorSpec {
  event: DebugEvent;
  /** Only when blkdebug is in this state (0: any). */
  state: number;
  /** The one request type hit; undefined: reads, writes, write-zeroes, discards and flushes. */
  iotype: DebugIoType | undefined;
  /** errno to fail with (default EIO; 0 matches without failing). */
  errno: number;
  /** Only requests covering this 512-byte sector (-1: any request). */
  sector: number;
  /** Forget the rule once it failed a request. */
  once: boolean;
  /** QEMU: fail without first yielding to the event loop. Platter always fails at once. */
  immediately: boolean;
}

/** One [set-state] section: move to `newState` when `event` fires (in `state`). */
export interface SetStateSpec {
  event: DebugEvent;
  state: number;
  newState: number;
}

export interface BlkdebugRuleSpecs {
  injectError: InjectErrorSpec[];
  setState: SetStateSpec[];
}

type Group = 'inject-error' | 'set-state';

/** The keys each section takes, with QEMU's types (QemuOptsList inject_error_opts / set_state_opts). */
const SECTION_KEYS: Record<Group, Record<string, 'string' | 'number' | 'bool'>> = {
  'inject-error': { event: 'string', state: 'number', iotype: 'string', errno: 'number', sector: 'number', once: 'bool', immediately: 'bool' },
  'set-state': { event: 'string', state: 'number', new_state: 'number' },
};

/** EIO, blkdebug's default errno (Linux numbering, as QEMU's). */
const EIO = 5;
/** QEMU's line buffer (qemu_config_foreach `char line[1024]`): longer lines are read in pieces. */
const LINE_MAX = 1023;
/** sscanf field widths of qemu_config_foreach: group and key %63s, value %1023[^"]. */
const NAME_MAX = 63;
const VALUE_MAX = 1023;

/** Raw sections: a group name and its key/value strings, in the order written. */
interface RawSection {
  group: string;
  values: Map<string, string>;
}

const isSpace = (c: string | undefined) => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\v' || c === '\f';

/**
 * One `key = "value"` line as QEMU's `sscanf(line, " %63s = \"%1023[^\"]\"", ...)` (or `key = ""`)
 * reads it: optional blanks, a key of non-blanks, blanks, '=', blanks, '"', the value up to the
 * next '"'. A missing closing quote is accepted (sscanf stops matching there). Undefined when the
 * line does not match.
 */
function scanAssignment(line: string): [string, string] | undefined {
  let i = 0;
  while (isSpace(line[i])) i++;
  const keyStart = i;
  while (i < line.length && !isSpace(line[i]) && i - keyStart < NAME_MAX) i++;
  if (i === keyStart) return undefined;
  const key = line.slice(keyStart, i);
  while (isSpace(line[i])) i++;
  if (line[i] !== '=') return undefined;
  i++;
  while (isSpace(line[i])) i++;
  if (line[i] !== '"') return undefined;
  i++;
  const valueStart = i;
  while (i < line.length && line[i] !== '"' && i - valueStart < VALUE_MAX) i++;
  return [key, line.slice(valueStart, i)];
}

/** `[group]` or `[group "id"]` as qemu_config_foreach's two sscanf patterns read it. */
function scanGroup(line: string): string | undefined {
  const withId = /^\[([^\s]{1,63})\s*"[^"]{1,63}"\]/.exec(line);
  if (withId) return withId[1];
  const plain = /^\[([^\]]{1,63})\]/.exec(line);
  return plain ? plain[1] : undefined;
}

/** The sections of a config file's text, as qemu_config_parse reads them. */
export function parseConfigText(text: string): RawSection[] {
  const sections: RawSection[] = [];
  let current: RawSection | undefined;
  // fgets reads at most LINE_MAX bytes at a time: a longer line goes on as a line of its own.
  const lines: string[] = [];
  for (const l of text.split(/(?<=\n)/)) {
    for (let p = 0; p < l.length; p += LINE_MAX) lines.push(l.slice(p, p + LINE_MAX));
  }
  for (const line of lines) {
    if (line[0] === '\n' || line[0] === '#') continue; // empty line, comment
    if (line[0] === '[') {
      const group = scanGroup(line);
      if (group !== undefined) {
        current = { group, values: new Map() };
        sections.push(current);
        continue;
      }
    }
    const kv = scanAssignment(line);
    if (!kv) throw invalidArgument('parse error');
    if (!current) throw invalidArgument('no group defined');
    current.values.set(kv[0], kv[1]);
  }
  return sections;
}

/** A number as QEMU's qemu_strtou64 (base 0: decimal, 0x hex, 0 octal; the whole text). */
function parseNumber(key: string, value: string): number {
  const m = /^\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(value);
  if (!m) throw invalidArgument(`Parameter '${key}' expects a number`);
  const digits = m[2]!;
  const magnitude = /^0[xX]/.test(digits) ? BigInt(digits) : digits.length > 1 && digits.startsWith('0') ? BigInt(`0o${digits.slice(1)}`) : BigInt(digits);
  if (magnitude > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidArgument(`Value '${value}' is too large for parameter '${key}'`);
  return m[1] === '-' ? -Number(magnitude) : Number(magnitude);
}

/** A bool as QEMU's qapi_bool_parse. */
function parseBool(key: string, value: string): boolean {
  if (value === 'on' || value === 'yes' || value === 'true' || value === 'y') return true;
  if (value === 'off' || value === 'no' || value === 'false' || value === 'n') return false;
  throw invalidArgument(`Parameter '${key}' expects 'on' or 'off'`);
}

/** A leaf of the options tree as the string QEMU's QemuOpts sees (qemu_opts_from_qdict_entry). */
function leafText(v: OptionLeaf): string {
  return typeof v === 'boolean' ? (v ? 'on' : 'off') : String(v);
}

/** Check a section's keys and types (QEMU checks both when the section is read). */
function checkSection(group: Group, values: Map<string, string>, unknownKey: (key: string) => string): void {
  const keys = SECTION_KEYS[group];
  for (const [k, v] of values) {
    const type = keys[k];
    if (type === undefined) throw invalidArgument(unknownKey(k));
    if (type === 'number') parseNumber(k, v);
    else if (type === 'bool') parseBool(k, v);
  }
}

/** The sections of one group given as options: a list, an object of numbered sections, or the
 *  keys of a single section (QEMU's config_parse_qdict_section). */
function optionSections(group: Group, value: unknown): Map<string, string>[] {
  if (value === undefined) return [];
  const keys = SECTION_KEYS[group];
  const toSection = (item: unknown, index: number): Map<string, string> => {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) throw invalidArgument(`[${group}] section (index ${index}) does not consist of keys`);
    const out = new Map<string, string>();
    for (const [k, v] of Object.entries(item as OptionsTree)) {
      if (keys[k] === undefined || v === undefined || typeof v === 'object') throw invalidArgument(`[${group}] section doesn't support the option '${k}'`);
      out.set(k, leafText(v));
    }
    return out;
  };
  if (Array.isArray(value)) return value.map(toSection);
  if (typeof value !== 'object' || value === null) throw invalidArgument(`Parameter '${group}' expects a list of sections`);
  const entries = Object.entries(value as OptionsTree);
  const known = entries.filter(([k]) => keys[k] !== undefined);
  if (known.length === entries.length) return [toSection(value, 0)];
  const unknown = entries.find(([k]) => keys[k] === undefined)!;
  if (known.length > 0) throw invalidArgument(`Unknown option '${unknown[0]}' for [${group}]`);
  // Numbered sections 0, 1, ...: a key past the first missing index is left over.
  const items = listItems(value);
  if (!items) {
    let n = 0;
    while (n in (value as OptionsTree)) n++;
    const extra = entries.find(([k]) => !/^\d+$/.test(k) || Number(k) >= n)!;
    throw invalidArgument(`Unused option '${extra[0]}' for [${group}]`);
  }
  return items.map(toSection);
}

function injectSpec(values: Map<string, string>): InjectErrorSpec {
  const event = eventOf(values);
  const iotype = values.get('iotype');
  if (iotype !== undefined && !isDebugIoType(iotype)) throw invalidArgument(`invalid parameter value: ${iotype}`);
  const num = (k: string, d: number) => (values.has(k) ? parseNumber(k, values.get(k)!) : d);
  const bool = (k: string) => (values.has(k) ? parseBool(k, values.get(k)!) : false);
  return { event, state: num('state', 0), iotype, errno: num('errno', EIO), sector: num('sector', -1), once: bool('once'), immediately: bool('immediately') };
}

function setStateSpec(values: Map<string, string>): SetStateSpec {
  const event = eventOf(values);
  const num = (k: string, d: number) => (values.has(k) ? parseNumber(k, values.get(k)!) : d);
  return { event, state: num('state', 0), newState: num('new_state', 0) };
}

function eventOf(values: Map<string, string>): DebugEvent {
  const name = values.get('event');
  if (name === undefined) throw invalidArgument('Missing event name for rule');
  if (!isDebugEvent(name)) throw invalidArgument(`invalid parameter value: ${name}`);
  return name;
}

/**
 * The rule specs of a blkdebug node: from its config file's text (if any), then from its
 * `inject-error` and `set-state` options. Errors read as QEMU's ("parse error", "Missing event
 * name for rule", "Parameter 'errno' expects a number", ...).
 */
export function parseRuleSpecs(configText: string | undefined, options: OptionsTree): BlkdebugRuleSpecs {
  const sections: { group: Group; values: Map<string, string> }[] = [];
  if (configText !== undefined) {
    for (const s of parseConfigText(configText)) {
      if (s.group !== 'inject-error' && s.group !== 'set-state') throw invalidArgument(`There is no option group '${s.group}'`);
      checkSection(s.group, s.values, (k) => `Invalid parameter '${k}'`);
      sections.push({ group: s.group, values: s.values });
    }
  }
  for (const group of ['inject-error', 'set-state'] as const) {
    for (const values of optionSections(group, options[group])) {
      checkSection(group, values, (k) => `[${group}] section doesn't support the option '${k}'`);
      sections.push({ group, values });
    }
  }
  return {
    injectError: sections.filter((s) => s.group === 'inject-error').map((s) => injectSpec(s.values)),
    setState: sections.filter((s) => s.group === 'set-state').map((s) => setStateSpec(s.values)),
  };
}

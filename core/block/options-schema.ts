// Create/amend option schemas: the single source of truth for the CLI's `-o`, the API's input
// validation and the GUI's generated forms. Names, defaults and limits are the
// ones of qemu-block-drivers(7) and qemu-img; parse errors use qemu-img's words.

import { invalidArgument } from '../errors.ts';
import { splitKeyValueList } from './options-tree.ts';

export type OptionType = 'size' | 'number' | 'bool' | 'string' | 'enum' | 'secret-id' | 'path';

export interface OptionSpec {
  /** QEMU's option name: "cluster_size", "encrypt.format", "key-secret". */
  readonly name: string;
  readonly type: OptionType;
  /** One line of help, shown by `-o help` and in the GUI. */
  readonly help: string;
  readonly default?: string | number | boolean;
  /** Allowed values for 'enum'. */
  readonly values?: readonly string[];
  readonly min?: number;
  readonly max?: number;
  /** Must be a power of two (cluster sizes). */
  readonly powerOfTwo?: boolean;
  /** min/max/powerOfTwo describe the value for forms only: the driver checks them itself, in
   *  its own words and at its own moment (qemu-img checks qcow2's cluster_size and
   *  refcount_bits in the driver, after printing "Formatting"). */
  readonly rangeCheckedByDriver?: boolean;
  /** Folded under "Advanced" in the GUI. */
  readonly advanced?: boolean;
  /** QEMU takes the `-o` value as text and its driver checks it only once the "Formatting" line
   *  is out, naming the option by its QAPI name ("version" for qcow2's compat): parseOptions
   *  with `deferChecks` keeps such a value as text, checkDeferred checks it later. */
  readonly qapiName?: string;
}

export type OptionValue = string | number | boolean;
export type OptionValues = Record<string, OptionValue>;

/** The largest size QEMU accepts (INT64_MAX), and the largest Platter can address exactly. */
export const QEMU_MAX_SIZE = 2n ** 63n - 1n;

const SIZE_SUFFIX: Record<string, bigint> = {
  '': 1n,
  b: 1n,
  k: 1n << 10n,
  m: 1n << 20n,
  g: 1n << 30n,
  t: 1n << 40n,
  p: 1n << 50n,
  e: 1n << 60n,
};

/**
 * QEMU's qemu_strtosz (util/cutils.c do_strtosz, bytes by default): decimal digits with an
 * optional fraction ("1.5k"; a fraction needs a suffix unless it is zero: "1024.0"), or hex
 * without fraction or suffix ("0x400"), then an optional binary suffix B/K/M/G/T/P/E (either
 * case). The fraction times the unit is rounded half up. 'invalid' is QEMU's EINVAL, 'range' its
 * ERANGE (2^64 or more).
 */
export function qemuStrtosz(text: string): bigint | 'invalid' | 'range' {
  const hex = /^\s*0[xX]([0-9a-fA-F]+)$/.exec(text);
  if (hex) {
    const v = BigInt(`0x${hex[1]}`);
    return v >= 2n ** 64n ? 'range' : v;
  }
  const m = /^\s*(\d+)(?:\.(\d*))?([bkmgtpeBKMGTPE]?)$/.exec(text);
  if (!m) return 'invalid';
  const unit = SIZE_SUFFIX[m[3]!.toLowerCase()]!;
  const digits = m[2] ?? '';
  const frac = digits === '' ? 0n : BigInt(digits);
  if (unit === 1n && frac !== 0n) return 'invalid'; // a fraction of a byte
  const scale = 10n ** BigInt(digits.length);
  const value = BigInt(m[1]!) * unit + (2n * frac * unit + scale) / (2n * scale);
  return value >= 2n ** 64n ? 'range' : value;
}

/**
 * Parse a size the way qemu_strtosz does (qemuStrtosz). Returns undefined for malformed input
 * or a value past INT64_MAX or what Platter addresses exactly, so callers can word their own
 * error as qemu-img does.
 */
export function parseSizeText(text: string): number | undefined {
  const v = qemuStrtosz(text);
  if (typeof v !== 'bigint' || v > QEMU_MAX_SIZE || v > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return Number(v);
}

function parseOne(spec: OptionSpec, raw: string): OptionValue {
  switch (spec.type) {
    case 'size': {
      const v = parseSizeText(raw);
      if (v === undefined) {
        throw invalidArgument(`Parameter '${spec.name}' expects a non-negative number below 2^64\nOptional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.`);
      }
      checkRange(spec, v);
      return v;
    }
    case 'number': {
      // A driver that checks the range itself sees a negative number as given (QEMU parses it
      // with strtou64 and then refuses the huge value with the driver's own words).
      if (!(spec.rangeCheckedByDriver ? /^-?\d+$/ : /^\d+$/).test(raw)) throw invalidArgument(`Parameter '${spec.name}' expects a number`);
      const v = Number(raw);
      checkRange(spec, v);
      return v;
    }
    case 'bool':
      if (raw === 'on' || raw === 'true' || raw === 'yes') return true;
      if (raw === 'off' || raw === 'false' || raw === 'no') return false;
      throw invalidArgument(`Parameter '${spec.name}' expects 'on' or 'off'`);
    case 'enum':
      if (!spec.values!.includes(raw)) {
        throw invalidArgument(`Parameter '${spec.name}' does not accept value '${raw}' (expecting one of: ${spec.values!.join(', ')})`);
      }
      return raw;
    default:
      return raw;
  }
}

function checkRange(spec: OptionSpec, v: number): void {
  if (spec.rangeCheckedByDriver) return;
  if (spec.min !== undefined && v < spec.min) throw invalidArgument(`Parameter '${spec.name}' must be at least ${spec.min} (got ${v})`);
  if (spec.max !== undefined && v > spec.max) throw invalidArgument(`Parameter '${spec.name}' must be at most ${spec.max} (got ${v})`);
  if (spec.powerOfTwo && (v <= 0 || (v & (v - 1)) !== 0 || !Number.isInteger(Math.log2(v)))) {
    throw invalidArgument(`Parameter '${spec.name}' must be a power of two (got ${v})`);
  }
}

/**
 * Parse and validate option values against a schema. Input is either `-o` text ("a=1,b=on",
 * several -o joined with commas) or already-split values (from the API/GUI, strings or typed).
 * Unknown names are refused with qemu-img's "Invalid parameter" error.
 */
export function parseOptions(schema: readonly OptionSpec[], input: string | Record<string, OptionValue | undefined>, context = '', opts: { deferChecks?: boolean } = {}): OptionValues {
  const byName = new Map(schema.map((s) => [s.name, s]));
  const out: OptionValues = {};
  const entries: [string, OptionValue | undefined][] =
    typeof input === 'string' ? splitKeyValueList(input) : Object.entries(input).filter(([, v]) => v !== undefined);
  for (const [name, value] of entries) {
    const spec = byName.get(name);
    if (!spec) {
      throw invalidArgument(`Invalid parameter '${name}'${context ? `\n${context}` : ''}`);
    }
    if (value === undefined) {
      if (spec.type === 'bool') {
        out[name] = true;
        continue;
      }
      throw invalidArgument(`Parameter '${name}' requires a value`);
    }
    if (typeof value === 'string' && opts.deferChecks && spec.qapiName !== undefined) out[name] = value;
    else if (typeof value === 'string') out[name] = parseOne(spec, value);
    else if (typeof value === 'number' && (spec.type === 'size' || spec.type === 'number')) {
      if (!Number.isSafeInteger(value) || (value < 0 && !spec.rangeCheckedByDriver)) throw invalidArgument(`Parameter '${name}' expects a non-negative integer`);
      checkRange(spec, value);
      out[name] = value;
    } else if (typeof value === 'boolean' && spec.type === 'bool') out[name] = value;
    else out[name] = parseOne(spec, String(value));
  }
  return out;
}

/** The checks parseOptions deferred (OptionSpec.qapiName), in QEMU's words. */
export function checkDeferred(schema: readonly OptionSpec[], values: OptionValues): void {
  for (const spec of schema) {
    const v = values[spec.name];
    if (spec.qapiName === undefined || typeof v !== 'string') continue;
    if (spec.type === 'enum' && !spec.values!.includes(v)) throw invalidArgument(`Parameter '${spec.qapiName}' does not accept value '${v}'`);
  }
}

/** Values with the schema's defaults filled in where the user gave none. */
export function withDefaults(schema: readonly OptionSpec[], values: OptionValues): OptionValues {
  const out: OptionValues = {};
  for (const s of schema) if (s.default !== undefined) out[s.name] = s.default;
  return Object.assign(out, values);
}

/** `qemu-img create -f fmt -o help` text. */
export function describeOptions(formatName: string, schema: readonly OptionSpec[]): string {
  const lines = [`Supported options:`];
  for (const s of schema) {
    const type = s.type === 'size' ? 'size' : s.type === 'bool' ? 'bool (on/off)' : s.type === 'number' ? 'num' : 'str';
    const def = s.default !== undefined ? ` (default: ${s.default === true ? 'on' : s.default === false ? 'off' : s.default})` : '';
    lines.push(`  ${s.name}=<${type}>${' '.repeat(Math.max(1, 24 - s.name.length - type.length))}- ${s.help}${def}`);
  }
  return `Creation options for '${formatName}':\n` + lines.slice(1).join('\n') + '\n\nThe protocol level may support further options.\nSpecify the target filename to include those options.';
}

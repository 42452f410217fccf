// Create/amend option schemas: the single source of truth for the CLI's `-o`, the API's input
// validation and the GUI's generated forms. Names, defaults and limits are the
// ones of qemu-block-drivers(7) and qemu-img; parse errors use qemu-img's words.

import { invalidArgument } from '../errors.ts';
import { splitKeyValueList } from './options-tree.ts';
import { checkOptionValue, type OptionType, type OptionValue } from '../shared/options.ts';

// The size parser lives in core/shared/sizes.ts (the GUI uses the same one).
export { QEMU_MAX_SIZE, qemuStrtosz, parseSizeText } from '../shared/sizes.ts';

export type { OptionType, OptionValue } from '../shared/options.ts';

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

export type OptionValues = Record<string, OptionValue>;

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
    else {
      const r = checkOptionValue(spec, value);
      if (r.error !== undefined) throw invalidArgument(r.error);
      out[name] = r.value;
    }
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

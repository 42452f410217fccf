// The rules of one create/amend option value (`-o name=value`), in qemu-img's words: the CLI's
// `-o` parser (core/block/options-schema.ts) and the GUI's generated forms check values with these
// same functions, so a form refuses what qemu-img refuses and says it the same way.
// Dependency-free: the renderer imports it (scripts/check-layers.mjs).

import { parseSizeText, qemuStrtosz } from './sizes.ts';

export type OptionType = 'size' | 'number' | 'bool' | 'string' | 'enum' | 'secret-id' | 'path';
export type OptionValue = string | number | boolean;

/** What the checks read of an option's schema (OptionSpec and its JSON form both have it). */
export interface OptionRule {
  readonly name: string;
  readonly type: OptionType;
  readonly values?: readonly string[];
  readonly min?: number;
  readonly max?: number;
  readonly powerOfTwo?: boolean;
  /** min/max/powerOfTwo are the driver's to check (in its words, later); forms check them early. */
  readonly rangeCheckedByDriver?: boolean;
}

export type OptionCheck = { value: OptionValue; error?: undefined } | { error: string; value?: undefined };

/** `form`: check min/max/power of two even where the driver checks them itself (a form says so
 *  before the job starts; the CLI leaves them to the driver, as qemu-img does). */
export interface CheckMode {
  form?: boolean;
}

/** The range rules of a number or size, or undefined when `v` keeps them. */
export function rangeError(rule: OptionRule, v: number, mode: CheckMode = {}): string | undefined {
  if (rule.rangeCheckedByDriver && !mode.form) return undefined;
  if (rule.min !== undefined && v < rule.min) return `Parameter '${rule.name}' must be at least ${rule.min} (got ${v})`;
  if (rule.max !== undefined && v > rule.max) return `Parameter '${rule.name}' must be at most ${rule.max} (got ${v})`;
  if (rule.powerOfTwo && (v <= 0 || (v & (v - 1)) !== 0 || !Number.isInteger(Math.log2(v)))) return `Parameter '${rule.name}' must be a power of two (got ${v})`;
  return undefined;
}

/** One value given as text (`-o` text, a form's text field), checked and typed. */
export function checkOptionText(rule: OptionRule, raw: string, mode: CheckMode = {}): OptionCheck {
  switch (rule.type) {
    case 'size': {
      const v = parseSizeText(raw);
      if (v === undefined) {
        // QEMU's parse_option_size: ERANGE and EINVAL have their own words.
        if (qemuStrtosz(raw) === 'range') return { error: `Value '${raw}' is out of range for parameter '${rule.name}'` };
        return { error: `Parameter '${rule.name}' expects a non-negative number below 2^64\nOptional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.` };
      }
      const bad = rangeError(rule, v, mode);
      return bad ? { error: bad } : { value: v };
    }
    case 'number': {
      // A driver that checks the range itself sees a negative number as given (QEMU parses it
      // with strtou64 and then refuses the huge value with the driver's own words).
      if (!(rule.rangeCheckedByDriver && !mode.form ? /^-?\d+$/ : /^\d+$/).test(raw)) return { error: `Parameter '${rule.name}' expects a number` };
      const v = Number(raw);
      const bad = rangeError(rule, v, mode);
      return bad ? { error: bad } : { value: v };
    }
    case 'bool':
      if (raw === 'on' || raw === 'true' || raw === 'yes') return { value: true };
      if (raw === 'off' || raw === 'false' || raw === 'no') return { value: false };
      return { error: `Parameter '${rule.name}' expects 'on' or 'off'` };
    case 'enum':
      if (!rule.values!.includes(raw)) return { error: `Parameter '${rule.name}' does not accept value '${raw}' (expecting one of: ${rule.values!.join(', ')})` };
      return { value: raw };
    default:
      return { value: raw };
  }
}

/** One value already typed (an API caller's number or boolean), checked. */
export function checkOptionValue(rule: OptionRule, value: OptionValue, mode: CheckMode = {}): OptionCheck {
  if (typeof value === 'string') return checkOptionText(rule, value, mode);
  if (typeof value === 'number' && (rule.type === 'size' || rule.type === 'number')) {
    if (!Number.isSafeInteger(value) || (value < 0 && !rule.rangeCheckedByDriver)) return { error: `Parameter '${rule.name}' expects a non-negative integer` };
    const bad = rangeError(rule, value, mode);
    return bad ? { error: bad } : { value };
  }
  if (typeof value === 'boolean' && rule.type === 'bool') return { value };
  return checkOptionText(rule, String(value), mode);
}

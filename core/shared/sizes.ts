// Byte sizes as QEMU reads and prints them: the one parser (qemu_strtosz) and the one formatter
// (size_to_str) of the CLI, the service and the GUI. Dependency-free (no Node, no packages, no
// other core module), so the renderer imports it as it is (scripts/check-layers.mjs allows
// core/shared/ and nothing else of core at run time).

/** The largest size QEMU accepts for an image (INT64_MAX). */
export const QEMU_MAX_SIZE = 2n ** 63n - 1n;
const U64_LIMIT = 2n ** 64n;

/** qemu-img's cvtnum messages for a number named `what` ("image size", "granularity"): a
 *  malformed one (two error reports, one line each) and one past INT64_MAX. */
export function cvtnumMessages(what: string): { bad: readonly [string, string]; range: string } {
  return {
    bad: [`Invalid ${what} specified. You may use k, M, G, T, P or E suffixes for`, 'kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.'],
    range: `Invalid ${what} specified. Must be between 0 and ${QEMU_MAX_SIZE}.`,
  };
}

/** qemu-img's words for a bad image size (cvtnum, "image size"): two error reports. */
export const MSG_BAD_SIZE_LINES = cvtnumMessages('image size').bad;
export const MSG_BAD_SIZE = MSG_BAD_SIZE_LINES.join(' ');
export const MSG_SIZE_RANGE = cvtnumMessages('image size').range;

/** QEMU's suffix_mul: B, K, M, G, T, P, E in either case, binary units. */
function suffixMul(c: string | undefined): bigint {
  switch (c?.toUpperCase()) {
    case 'B':
      return 1n;
    case 'K':
      return 1n << 10n;
    case 'M':
      return 1n << 20n;
    case 'G':
      return 1n << 30n;
    case 'T':
      return 1n << 40n;
    case 'P':
      return 1n << 50n;
    case 'E':
      return 1n << 60n;
    default:
      return -1n;
  }
}

/** C's isspace in the C locale (strtoull skips these before the number). */
const SPACE = /^[ \t\n\v\f\r]*/;

/** strtoull(text.slice(at), base): [value, end] or undefined when no digits were read; value
 *  'range' on overflow (ERANGE). A leading '+' or '-' is taken as strtoull takes it. */
function strtoull(text: string, at: number, base: 10 | 16): { value: bigint | 'range'; end: number; negative: boolean } | undefined {
  let i = at + SPACE.exec(text.slice(at))![0].length;
  let negative = false;
  if (text[i] === '+' || text[i] === '-') negative = text[i++] === '-';
  const digit = base === 10 ? /[0-9]/ : /[0-9a-fA-F]/;
  if (base === 16 && text[i] === '0' && (text[i + 1] === 'x' || text[i + 1] === 'X') && digit.test(text[i + 2] ?? '')) i += 2;
  const start = i;
  while (i < text.length && digit.test(text[i]!)) i++;
  if (i === start) return undefined;
  const v = BigInt(base === 10 ? text.slice(start, i) : `0x${text.slice(start, i)}`);
  return { value: v >= U64_LIMIT ? 'range' : v, end: i, negative };
}

/**
 * QEMU 7.2's qemu_strtosz (util/cutils.c do_strtosz, bytes by default, whole text consumed):
 * decimal digits after optional blanks and '+', then a fraction ("1.5k"; read as a C double, so
 * "5.00000000000000000000001" is 5 and "1.99999999999999999999k" is 1024, as in QEMU; a fraction
 * needs a suffix unless it rounds to zero) or, after "0x", hex digits without fraction; then an
 * optional binary suffix B/K/M/G/T/P/E in either case. Nothing may follow: "10 GiB", "10GiB"
 * and "5 " are invalid. 'invalid' is QEMU's EINVAL, 'range' its ERANGE (2^64 or more).
 * `hexSuffix`: QEMU accepts a suffix on a hex number but warns that this is deprecated.
 */
export function qemuStrtoszDetailed(text: string): { value: bigint; hexSuffix: boolean } | 'invalid' | 'range' {
  const whole = strtoull(text, 0, 10);
  if (!whole) return 'invalid';
  let end = whole.end;
  if (whole.value === 'range') return text.length === end ? 'range' : 'invalid';
  if (whole.negative) return 'invalid'; // QEMU refuses any '-' in the integral part
  let val = whole.value;
  let valf = 0n; // the fraction as 64-bit fixed point
  let hex = false;
  if (val === 0n && (text[end] === 'x' || text[end] === 'X')) {
    const h = strtoull(text, 0, 16);
    if (!h) return 'invalid';
    if (h.value === 'range') return text.length === h.end ? 'range' : 'invalid';
    val = h.value;
    end = h.end;
    if (text[end] === '.') return 'invalid';
    hex = true;
  } else if (text[end] === '.') {
    // strtod from the '.': digits, and an exponent it would consume makes the input invalid.
    const m = /^\.(\d+)([eE][+-]?\d+)?/.exec(text.slice(end));
    if (!m) end++; // strtod found no number: skip the '.' ("1.k" works)
    else {
      if (m[2]) return 'invalid';
      end += m[0].length;
      const scaled = Number(`0.${m[1]}`) * 2 ** 64;
      // (uint64_t) of 2^64 (a fraction that rounds to 1.0) is 0 on the x86-64 builds QEMU runs on.
      valf = scaled >= 2 ** 64 ? 0n : BigInt(Math.floor(scaled));
    }
  }
  let mul = suffixMul(text[end]);
  let suffixed = false;
  if (mul > 0n) {
    end++;
    suffixed = true;
  } else mul = 1n;
  if (end !== text.length) return 'invalid';
  if (mul === 1n) {
    if (valf !== 0n) return 'invalid'; // a fraction of a byte
    return { value: val, hexSuffix: false };
  }
  const frac = valf * mul;
  const value = val * mul + (frac >> 64n) + ((frac & (U64_LIMIT - 1n)) >> 63n);
  if (value >= U64_LIMIT) return 'range';
  return { value, hexSuffix: hex && suffixed };
}

/** QEMU 7.2's warning for a suffix on a hex number (warn_report: "<program>: warning: ..."). */
export function hexSuffixWarning(text: string): string {
  return `Using a multiplier suffix on hex numbers is deprecated: ${text}`;
}

/** qemuStrtoszDetailed without the deprecation flag. */
export function qemuStrtosz(text: string): bigint | 'invalid' | 'range' {
  const r = qemuStrtoszDetailed(text);
  return typeof r === 'string' ? r : r.value;
}

/**
 * Parse a size the way qemu_strtosz does. Returns undefined for malformed input or a value past
 * INT64_MAX or past what Platter addresses exactly (2^53), so callers word their own error.
 */
export function parseSizeText(text: string): number | undefined {
  const v = qemuStrtosz(text);
  if (typeof v !== 'bigint' || v > QEMU_MAX_SIZE || v > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return Number(v);
}

/**
 * An image size as qemu-img create/measure/resize read it (cvtnum "image size"): the bytes, or
 * qemu-img's message for a malformed value or one past INT64_MAX. The CLI, the service and the
 * GUI's size fields all use this, so they accept and refuse the same text with the same words.
 */
export function checkImageSize(text: string): { bytes: bigint; warning?: string } | { error: string; invalid?: true } {
  const v = qemuStrtoszDetailed(text);
  if (v === 'invalid') return { error: MSG_BAD_SIZE, invalid: true };
  if (v === 'range' || v.value > QEMU_MAX_SIZE) return { error: MSG_SIZE_RANGE };
  return { bytes: v.value, ...(v.hexSuffix ? { warning: hexSuffixWarning(text) } : {}) };
}

const UNIT_PREFIX = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];

/** "0 B", "196 KiB", "1.5 GiB": qemu's size_to_str (binary units chosen so the number stays
 *  below 1000, three significant digits), as `qemu-img info` prints "disk size". */
export function sizeToStr(bytes: number): string {
  // qemu picks the unit from frexp(val / (1000/1024)): exponent e with 2^(e-1) <= v*1.024 < 2^e.
  let unit = 0;
  if (bytes > 0) {
    const e = Math.floor(Math.log2(bytes * 1.024)) + 1;
    unit = Math.max(0, Math.min(UNIT_PREFIX.length - 1, Math.floor((e - 1) / 10)));
  }
  const v = bytes / 2 ** (unit * 10);
  return `${formatG3(v)} ${UNIT_PREFIX[unit]}B`;
}

/** printf("%0.3g") for 0 <= v < 1000. glibc rounds the exact binary value, so an exact tie
 *  goes to the even digit (192.5 KiB prints "192", where toPrecision would say "193"). */
export function formatG3(v: number): string {
  if (v === 0) return '0';
  const scale = 10 ** (2 - Math.floor(Math.log10(v)));
  const x = v * scale;
  const floor = Math.floor(x);
  // v is bytes / 2^(10k): x is exact here, so a fraction of exactly one half is a true tie.
  const digits = x - floor === 0.5 ? (floor % 2 === 0 ? floor : floor + 1) : Math.round(x);
  const r = digits / scale;
  // 999.5 and up round to 1000, which %g writes in exponent form (qemu-img: "1e+03 KiB").
  return r >= 1000 ? '1e+03' : String(Number(r.toPrecision(3)));
}

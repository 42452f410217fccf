// Command-line option parsing the way qemu-img parses it (GNU getopt_long with argument
// permutation): short options clustered or with attached values ("-pU", "-fqcow2"), long options
// as "--name=value" or "--name value", "--" ending options, and the error words: qemu-img's own
// (its optstring starts with ':', so getopt stays quiet and qemu-img names the argument), or
// glibc getopt's (qemu-nbd).

import { invalidArgument, type BlockError } from '../errors.ts';
import { PROGRAM } from './program.ts';

/** qemu-img's error_exit: the message, then where to read the usage. */
export function usageError(message: string): BlockError {
  return invalidArgument(`${message}\nTry '${PROGRAM} --help' for more information`, {}, { code: 'Usage' });
}

export interface OptSpec {
  /** getopt short-option string: letters, ':' after those taking a value ("f:O:pq"). */
  short: string;
  /** Long options: name -> takes a value; a long option may map to a short letter. */
  long: Record<string, { arg: boolean; short?: string }>;
  /** Whose words a bad option gets: qemu-img's ("unrecognized option '-x'", "missing argument
   *  for option '-f'") or glibc getopt's (the default). */
  words?: 'qemu-img' | 'getopt';
}

export interface ParsedArgs {
  /** Options in the order given: [name, value]; short options by letter, long by name. */
  opts: [string, string | undefined][];
  positional: string[];
}

export function parseArgs(argv: readonly string[], spec: OptSpec): ParsedArgs {
  const takes = new Map<string, boolean>();
  for (let i = 0; i < spec.short.length; i++) {
    const c = spec.short[i]!;
    if (c === ':') continue;
    takes.set(c, spec.short[i + 1] === ':');
  }
  const opts: [string, string | undefined][] = [];
  const positional: string[] = [];
  const qemuImg = spec.words === 'qemu-img';
  /** An option getopt does not know (or an ambiguous prefix, or a value given to a flag). */
  const unknown = (element: string, getoptWords: string) => (qemuImg ? usageError(`unrecognized option '${element}'`) : invalidArgument(getoptWords));
  const missing = (element: string, getoptWords: string) => (qemuImg ? usageError(`missing argument for option '${element}'`) : invalidArgument(getoptWords));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      // getopt accepts an unambiguous prefix of a long option.
      let def = spec.long[name];
      let full = name;
      if (!def) {
        const matches = Object.keys(spec.long).filter((k) => k.startsWith(name));
        if (matches.length === 1) {
          full = matches[0]!;
          def = spec.long[full];
        } else if (matches.length > 1) throw unknown(a, `option '--${name}' is ambiguous`);
      }
      if (!def) throw unknown(a, `unrecognized option '${a}'`);
      const key = def.short ?? full;
      if (def.arg) {
        if (eq >= 0) opts.push([key, a.slice(eq + 1)]);
        else if (i + 1 < argv.length) opts.push([key, argv[++i]!]);
        else throw missing(a, `option '--${full}' requires an argument`);
      } else {
        if (eq >= 0) throw unknown(a, `option '--${full}' doesn't allow an argument`);
        opts.push([key, undefined]);
      }
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const c = a[j]!;
        const t = takes.get(c);
        if (t === undefined) throw unknown(a, `invalid option -- '${c}'`);
        if (!t) {
          opts.push([c, undefined]);
          continue;
        }
        if (j + 1 < a.length) opts.push([c, a.slice(j + 1)]);
        else if (i + 1 < argv.length) opts.push([c, argv[++i]!]);
        else throw missing(a, `option requires an argument -- '${c}'`);
        break;
      }
      continue;
    }
    positional.push(a);
  }
  return { opts, positional };
}

/** Last value of an option, or undefined. */
export function last(p: ParsedArgs, name: string): string | undefined {
  let v: string | undefined;
  for (const [k, val] of p.opts) if (k === name) v = val;
  return v;
}

export function has(p: ParsedArgs, name: string): boolean {
  return p.opts.some(([k]) => k === name);
}

export function all(p: ParsedArgs, name: string): string[] {
  return p.opts.filter(([k]) => k === name).map(([, v]) => v ?? '');
}

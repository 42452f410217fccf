// The subcommands of `platter`, one entry each with qemu-img 7.2's syntax line, option letters
// (qemu-img.c getopt strings) and output. Each parses its arguments, calls core/api, and prints
// what qemu-img prints (human text, or --output=json).

import { qemuJson } from '../util/qemu-json-print.ts';
import { invalidArgument, BlockError } from '../errors.ts';
import type { JobHandle, PlatterService, ImageRef } from '../api/service.ts';
import type { CheckReport, ImageInfo, MapEntry } from '../api/types.ts';
import { findFormat, formatDrivers } from '../drivers/registry.ts';
import { describeOptions } from '../block/options-schema.ts';
import { parseCacheMode, type CacheMode } from '../block/cache-mode.ts';
import { parseAioMode, type AioMode } from '../block/aio-mode.ts';
import { parseArgs, last, has, all, usageError, type ParsedArgs, type OptSpec } from './args.ts';
import { humanInfo } from '../jobs/info.ts';
import { humanCheck, EXIT_CHECK_UNSUPPORTED, NO_CHECK_MESSAGE } from '../jobs/check.ts';
import { humanMap, jsonMap } from '../jobs/map.ts';
import { humanMeasure } from '../jobs/measure.ts';
import { CompareError } from '../jobs/compare.ts';
import { formattingLine, createValues } from '../jobs/create.ts';
import { snapshotHeader, snapshotRow } from '../jobs/human.ts';
import { SHRINK_WARNING } from '../jobs/resize.ts';
import { dd as ddJob } from '../jobs/dd.ts';
import { bench as benchJob, benchHeader } from '../jobs/bench.ts';
import { createError, MSG_BAD_SIZE, MSG_BAD_SIZE_LINES, parseImageSize, secretStoreFrom } from '../jobs/common.ts';
import { parseSnapshotParam } from '../jobs/convert.ts';
import { NEED_ACTION, type BitmapAction } from '../jobs/bitmap.ts';
import { QEMU_MAX_SIZE } from '../block/options-schema.ts';
import { cvtnumMessages, hexSuffixWarning, qemuStrtoszDetailed } from '../shared/sizes.ts';
import type { CliIo } from './main.ts';
import { errorText, PROGRAM } from './program.ts';
import type { ProgressDisplay } from './progress.ts';

export interface CommandContext {
  io: CliIo;
  readonly service: PlatterService;
  warn(message: string): void;
  /** Wait for a job, printing -p progress when asked; cancels on SIGINT. */
  runJob<T>(h: JobHandle<T>, progress: boolean, display?: ProgressDisplay): Promise<T>;
}

export interface Command {
  syntax: string;
  /** Exit status for errors (compare uses 2). */
  errorStatus?: number;
  run(argv: string[], ctx: CommandContext): Promise<number>;
}

/** An error whose exit status is fixed (check on a format without checks: 63). */
class StatusError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

const COMMON_LONG = {
  help: { arg: false, short: 'h' },
  object: { arg: true },
  'image-opts': { arg: false },
  'force-share': { arg: false, short: 'U' },
} as const;

function spec(short: string, long: OptSpec['long'] = {}): OptSpec {
  return { short, long: { ...COMMON_LONG, ...long }, words: 'qemu-img' };
}

function outputFormat(p: ParsedArgs): 'human' | 'json' {
  const o = last(p, 'output') ?? 'human';
  if (o !== 'human' && o !== 'json') throw invalidArgument('--output must be used with human or json as argument.');
  return o;
}

/** The secrets/objects fields every input takes. */
function objects(p: ParsedArgs): { objects: string[] } {
  const list = all(p, 'object');
  // Validate now so a bad --object fails before anything is opened.
  if (list.length) secretStoreFrom(list).clear();
  return { objects: list };
}

/** An ImageRef from -f / --image-opts / -U and a filename. */
function imageRef(p: ParsedArgs, filename: string, formatLetter = 'f'): ImageRef {
  const imageOpts = has(p, 'image-opts');
  const format = last(p, formatLetter);
  if (imageOpts && format !== undefined) throw invalidArgument('--image-opts and --format are mutually exclusive');
  return { filename, ...(format !== undefined ? { format } : {}), ...(imageOpts ? { imageOpts: true } : {}), ...(has(p, 'U') ? { forceShare: true } : {}) };
}

/** -t cache / -T src_cache: a cache mode, refused in qemu-img's words (bdrv_parse_cache_mode). */
function cacheOption(p: ParsedArgs, letter: 't' | 'T', refusal = (text: string) => `${letter === 't' ? 'Invalid cache option' : 'Invalid source cache option'}: ${text}`): CacheMode | undefined {
  const text = last(p, letter);
  if (text === undefined) return undefined;
  const mode = parseCacheMode(text);
  if (mode === undefined) throw invalidArgument(refusal(text));
  return mode;
}

/** An ImageRef opened with the cache mode of -t or -T, when given. */
function cachedRef(ref: ImageRef, cache: CacheMode | undefined): ImageRef {
  return cache ? { ...ref, cache } : ref;
}

function oneFile(p: ParsedArgs): string {
  if (p.positional.length !== 1) throw usageError('Expecting one image file name');
  return p.positional[0]!;
}

/** -o may be given several times: qemu-img joins them with commas. */
function joinedOptions(p: ParsedArgs): string | undefined {
  const list = all(p, 'o');
  return list.length ? list.join(',') : undefined;
}

/** qemu-img's cvtnum: a size with an optional suffix, or its two-line error naming `what`. */
function cvtnum(what: string, text: string, warn: (message: string) => void): number {
  const v = qemuStrtoszDetailed(text);
  const words = cvtnumMessages(what);
  if (v === 'invalid') throw invalidArgument(words.bad.join(`\n${PROGRAM}: `));
  if (v === 'range' || v.value > QEMU_MAX_SIZE) throw invalidArgument(words.range);
  if (v.hexSuffix) warn(`warning: ${hexSuffixWarning(text)}`);
  return Number(v.value); // past 2^53 rounded: callers that need exact bytes refuse it
}

/** -r rate_limit: bytes per second (cvtnum; 0 is no limit). */
function rateLimitOption(p: ParsedArgs, ctx: CommandContext): number | undefined {
  const text = last(p, 'r');
  // Past 2^53 bytes per second is no limit in practice.
  return text === undefined ? undefined : Math.min(cvtnum('rate limit', text, ctx.warn), Number.MAX_SAFE_INTEGER);
}

/** qemu-img's is_valid_option_list: not empty, not starting with ',', no odd run of trailing commas. */
function checkOptionList(text: string): void {
  const trailing = text.length - text.replace(/,+$/, '').length;
  if (text === '' || text.startsWith(',') || trailing % 2 === 1) throw invalidArgument(`Invalid option list: ${text}`);
}

function wantsHelp(options: string | undefined): boolean {
  return options !== undefined && options.split(',').some((x) => x === 'help' || x === '?');
}

function optionsHelp(format: string): string {
  const d = findFormat(format);
  if (!d) throw invalidArgument(`Unknown file format '${format}'`);
  return describeOptions(d.name, d.createOptions) + '\n';
}

/** qemu-img's JSON text (its key order and escapes: qemu-json.ts). */
const json = qemuJson;

function helpFor(name: string, c: Command, ctx: CommandContext): number {
  ctx.io.stdout(`usage: platter ${c.syntax}\n(${name}: the options of 'qemu-img ${name}')\n`);
  return 0;
}

const info: Command = {
  syntax: 'info [--object objectdef] [--image-opts] [-f fmt] [--output=ofmt] [--backing-chain] [-U] filename',
  async run(argv, ctx) {
    const p = parseArgs(argv, spec(':f:hU', { format: { arg: true, short: 'f' }, output: { arg: true }, 'backing-chain': { arg: false } }));
    if (has(p, 'h')) return helpFor('info', info, ctx);
    const out = outputFormat(p);
    const r = await ctx.service.info({ image: imageRef(p, oneFile(p)), backingChain: has(p, 'backing-chain'), ...objects(p) });
    // qemu-img 7.2 has no "children" (a vmdk's extent files): the GUI shows them, the CLI does not.
    const withoutChildren = ({ children: _c, ...rest }: ImageInfo): ImageInfo => rest;
    if (out === 'json') ctx.io.stdout(json(Array.isArray(r) ? r.map(withoutChildren) : withoutChildren(r)));
    else ctx.io.stdout((Array.isArray(r) ? r : [r]).map((i: ImageInfo) => humanInfo(i)).join('\n'));
    return 0;
  },
};

const create: Command = {
  syntax: 'create [--object objectdef] [-q] [-f fmt] [-b backing_file [-F backing_fmt]] [-u] [-o options] filename [size]',
  async run(argv, ctx) {
    const p = parseArgs(argv, spec(':F:b:f:ho:qu', { format: { arg: true, short: 'f' } }));
    if (has(p, 'h')) return helpFor('create', create, ctx);
    const format = last(p, 'f') ?? 'raw';
    const options = joinedOptions(p);
    if (wantsHelp(options)) {
      ctx.io.stdout(optionsHelp(format));
      return 0;
    }
    if (p.positional.length < 1) throw usageError('Expecting image file name');
    if (p.positional.length > 2) throw usageError(`Unexpected argument: ${p.positional[2]}`);
    const filename = p.positional[0]!;
    let size: number | undefined;
    try {
      size = p.positional[1] !== undefined ? parseImageSize(p.positional[1], { warn: ctx.warn }) : undefined;
    } catch (e) {
      // qemu-img's cvtnum reports this one in two error lines.
      if (e instanceof BlockError && e.code === 'BadSize') throw new StatusError(MSG_BAD_SIZE_LINES.join(`\n${PROGRAM}: `), 1);
      throw e;
    }
    const backingFile = last(p, 'b');
    const backingFormat = last(p, 'F');
    const obj = objects(p);
    // The "Formatting" line names the options as given (validated first, as qemu-img does).
    let given: ReturnType<typeof createValues>;
    try {
      given = createValues({ filename, format, ...(options !== undefined ? { options } : {}), ...(backingFile !== undefined ? { backingFile } : {}), ...(backingFormat !== undefined ? { backingFormat } : {}), ...(size !== undefined ? { size } : {}) });
    } catch (e) {
      // As bdrv_img_create's errors: "<filename>: <message>".
      throw createError(filename, e);
    }
    const shown = { ...given };
    delete shown['backing_file'];
    delete shown['backing_fmt'];
    const ordered = { ...(given['backing_file'] !== undefined ? { backing_file: given['backing_file'] } : {}), ...(given['backing_fmt'] !== undefined ? { backing_fmt: given['backing_fmt'] } : {}), ...shown };
    const announce = (sz: number) => {
      if (!has(p, 'q')) ctx.io.stdout(formattingLine({ filename, format, size: sz, given: ordered }) + '\n');
    };
    const h = ctx.service.create({
      filename,
      format,
      ...(size !== undefined ? { size } : {}),
      ...(options !== undefined ? { options } : {}),
      ...(backingFile !== undefined ? { backingFile } : {}),
      ...(backingFormat !== undefined ? { backingFormat } : {}),
      unsafe: has(p, 'u'),
      ...obj,
    });
    // Announced once the options, backing file and size are checked (QEMU's bdrv_img_create).
    const off = h.onProgress((e) => {
      if (e.phase === 'formatting') announce(e.total);
    });
    try {
      await ctx.runJob(h, false);
    } finally {
      off();
    }
    return 0;
  },
};

function checkJson(c: CheckReport): Record<string, unknown> {
  const { messages: _m, exitCode: _e, repaired: _r, recheckMessages: _rm, failed: _f, ...rest } = c;
  return rest;
}

const check: Command = {
  syntax: 'check [--object objectdef] [--image-opts] [-q] [-f fmt] [--output=ofmt] [-r [leaks | all]] [-T src_cache] [-U] filename',
  async run(argv, ctx) {
    const p = parseArgs(argv, spec(':hf:r:T:qU', { format: { arg: true, short: 'f' }, output: { arg: true }, repair: { arg: true, short: 'r' } }));
    if (has(p, 'h')) return helpFor('check', check, ctx);
    const out = outputFormat(p);
    const r = last(p, 'r');
    if (r !== undefined && r !== 'leaks' && r !== 'all') throw usageError(`Unknown option value for -r (expecting 'leaks' or 'all'): ${r}`);
    const image = cachedRef(imageRef(p, oneFile(p)), cacheOption(p, 'T'));
    // A repair opens the image for writing, which force-share refuses (QEMU's words).
    if (r !== undefined && has(p, 'U')) throw new BlockError('InvalidArgument', `Could not open '${image.filename}': force-share=on can only be used with read-only images`, {}, { code: 'Worded' });
    let report: CheckReport;
    try {
      report = await ctx.runJob(ctx.service.check({ image, ...(r ? { repair: r } : {}), ...objects(p) }), false);
    } catch (e) {
      if (e instanceof BlockError && e.code === 'NoCheck') throw new StatusError(NO_CHECK_MESSAGE, EXIT_CHECK_UNSUPPORTED);
      if (e instanceof BlockError && e.code !== 'OpenFailed') throw new StatusError(`Check failed: ${e.message}`, 1);
      throw e;
    }
    // Both passes' findings (repair, then the check of the repaired image) go to stderr first:
    // qemu-img's stdout is block-buffered when piped, so its summary comes out at exit.
    const findings = (list: readonly string[], reports: readonly number[] = []) => list.forEach((m, i) => ctx.io.stderr(reports.includes(i) ? errorText(m) : `${m}\n`));
    findings(report.messages, report.errorReports);
    findings(report.recheckMessages ?? [], report.recheckErrorReports);
    if (report.failed) throw new StatusError(`Check failed: ${report.failed}`, 1);
    if (has(p, 'q')) return report.exitCode;
    if (out === 'json') ctx.io.stdout(json(checkJson(report)));
    else ctx.io.stdout(humanCheck(report));
    return report.exitCode;
  },
};

const compare: Command = {
  syntax: 'compare [--object objectdef] [--image-opts] [-f fmt] [-F fmt] [-T src_cache] [-p] [-q] [-s] [-U] filename1 filename2',
  errorStatus: 2,
  async run(argv, ctx) {
    const p = parseArgs(argv, spec(':hf:F:T:pqsU'));
    if (has(p, 'h')) return helpFor('compare', compare, ctx);
    if (p.positional.length !== 2) throw usageError('Expecting two image file names');
    const cache = cacheOption(p, 'T');
    const a = cachedRef(imageRef(p, p.positional[0]!), cache);
    const b = cachedRef(imageRef(p, p.positional[1]!, 'F'), cache);
    if (!b.format && a.format && !has(p, 'F')) b.format = a.format; // -F defaults to -f
    let r;
    try {
      // img_compare: a 2% step, and no extra 100% at the end.
      r = await ctx.runJob(ctx.service.compare({ a, b, strict: has(p, 's'), ...objects(p) }), has(p, 'p'), { minStep: 2, repeatFinal: false });
    } catch (e) {
      if (!(e instanceof CompareError)) throw e;
      ctx.io.stderr(errorText(e.message));
      if (e.warning && !has(p, 'q')) ctx.io.stdout(`${e.warning}\n`);
      return e.status;
    }
    if (!has(p, 'q')) {
      if (r.warning) ctx.io.stdout(`${r.warning}\n`);
      ctx.io.stdout(`${r.message}\n`);
    }
    return r.identical ? 0 : 1;
  },
};

const convert: Command = {
  syntax:
    'convert [--object objectdef] [--image-opts] [--target-image-opts] [--target-is-zero] [-U] [-C] [-c] [-p] [-q] [-n] [-f fmt] [-t cache] [-T src_cache] [-O output_fmt] [-B backing_file [-F backing_fmt]] [-o options] [-l snapshot_param] [-S sparse_size] [-r rate_limit] [-m num_coroutines] [-W] filename [filename2 [...]] output_filename',
  async run(argv, ctx) {
    const p = parseArgs(
      argv,
      spec(':hf:O:B:CcF:o:l:S:pt:T:qnm:WUr:', {
        'target-image-opts': { arg: false },
        'target-is-zero': { arg: false },
        salvage: { arg: false },
        bitmaps: { arg: false },
        'skip-broken-bitmaps': { arg: false },
      }),
    );
    if (has(p, 'h')) return helpFor('convert', convert, ctx);
    const outFmt = last(p, 'O');
    const options = joinedOptions(p);
    if (wantsHelp(options)) {
      ctx.io.stdout(optionsHelp(outFmt ?? 'raw'));
      return 0;
    }
    const rateLimit = rateLimitOption(p, ctx); // checked while qemu-img reads its options
    // qemu-img's checks after its options, in its order.
    if (has(p, 'skip-broken-bitmaps') && !has(p, 'bitmaps')) throw invalidArgument('Use of --skip-broken-bitmaps requires --bitmaps');
    if (has(p, 'C') && has(p, 'c')) throw invalidArgument('Cannot enable copy offloading when -c is used');
    if (has(p, 'C') && has(p, 'S')) throw invalidArgument('Cannot enable copy offloading when -S is used');
    if (has(p, 'salvage') && has(p, 'C')) throw invalidArgument('Cannot use copy offloading in salvaging mode');
    if (p.positional.length < 2) throw invalidArgument('Must specify image file name');
    const files = p.positional;
    const target = files[files.length - 1]!;
    const sourceCache = cacheOption(p, 'T');
    const sources = files.slice(0, -1).map((f) => cachedRef(imageRef(p, f), sourceCache));
    const targetImageOpts = has(p, 'target-image-opts');
    if (targetImageOpts && !has(p, 'n')) throw invalidArgument('--target-image-opts requires use of -n flag');
    if (targetImageOpts && outFmt !== undefined) throw invalidArgument('--target-image-opts and -O are mutually exclusive');
    const m = last(p, 'm');
    let parallel: number | undefined;
    if (m !== undefined) {
      parallel = /^\d+$/.test(m) ? Number(m) : NaN;
      if (!(parallel >= 1 && parallel <= 16)) throw invalidArgument('Invalid number of coroutines. Allowed number of coroutines is between 1 and 16');
    }
    const S = last(p, 'S');
    let sparseSize: number | undefined;
    if (S !== undefined) {
      try {
        sparseSize = parseImageSize(S);
      } catch {
        sparseSize = -1;
      }
      if (sparseSize < 0 || sparseSize % 512 !== 0 || sparseSize > 16 << 20) {
        throw invalidArgument('Invalid buffer size for sparse output specified. Valid sizes are multiples of 512 up to 16777216. Select 0 to disable sparse detection (fully allocates output).');
      }
    }
    const backingFile = last(p, 'B');
    const backingFormat = last(p, 'F');
    const snapshot = last(p, 'l');
    const cache = cacheOption(p, 't');
    const h = ctx.service.convert({
      source: sources[0]!,
      ...(sources.length > 1 ? { moreSources: sources.slice(1) } : {}),
      target: { filename: target, ...(outFmt !== undefined ? { format: outFmt } : {}), ...(options !== undefined ? { options } : {}), ...(targetImageOpts ? { imageOpts: true } : {}) },
      noCreate: has(p, 'n'),
      targetIsZero: has(p, 'target-is-zero'),
      ...(sparseSize !== undefined ? { sparseSize } : {}),
      compressed: has(p, 'c'),
      outOfOrder: has(p, 'W'),
      ...(parallel !== undefined ? { parallel } : {}),
      ...(rateLimit ? { rateLimit } : {}),
      ...(snapshot !== undefined ? { snapshot } : {}),
      ...(backingFile !== undefined ? { backingFile } : {}),
      ...(backingFormat !== undefined ? { backingFormat } : {}),
      ...(cache !== undefined ? { cache } : {}),
      ...(has(p, 'bitmaps') ? { bitmaps: true } : {}),
      ...(has(p, 'skip-broken-bitmaps') ? { skipBrokenBitmaps: true } : {}),
      ...(has(p, 'salvage') ? { salvage: true } : {}),
      ...objects(p),
    });
    await ctx.runJob(h, has(p, 'p') && !has(p, 'q'));
    return 0;
  },
};

const map: Command = {
  syntax: 'map [--object objectdef] [--image-opts] [-f fmt] [--start-offset=offset] [--max-length=len] [--output=ofmt] [-U] filename',
  async run(argv, ctx) {
    const p = parseArgs(argv, spec(':f:hU', { format: { arg: true, short: 'f' }, output: { arg: true }, 'start-offset': { arg: true }, 'max-length': { arg: true } }));
    if (has(p, 'h')) return helpFor('map', map, ctx);
    const out = outputFormat(p);
    const so = last(p, 'start-offset');
    const ml = last(p, 'max-length');
    // qemu-img's cvtnum: its two-line words for a value that is not a size (a negative one too).
    const num = (v: string, what: string) => cvtnum(what, v, ctx.warn);
    const entries: MapEntry[] = await ctx.service.map({
      image: imageRef(p, oneFile(p)),
      ...(so !== undefined ? { start: num(so, 'start offset') } : {}),
      ...(ml !== undefined ? { length: num(ml, 'max length') } : {}),
      ...objects(p),
    });
    if (out === 'json') ctx.io.stdout(jsonMap(entries));
    else humanMap(entries, (text) => ctx.io.stdout(text));
    return 0;
  },
};

const measure: Command = {
  syntax: 'measure [--output=ofmt] [-O output_fmt] [-o options] [--size N | [--object objectdef] [--image-opts] [-f fmt] [-l snapshot_param] filename]',
  async run(argv, ctx) {
    const p = parseArgs(argv, spec(':hf:O:o:l:U', { output: { arg: true }, size: { arg: true } }));
    if (has(p, 'h')) return helpFor('measure', measure, ctx);
    // Checked as img_measure's option loop checks them: in the order given.
    let out: 'human' | 'json' = 'human';
    let size: number | undefined;
    for (const [k, v] of p.opts) {
      if (k === 'o') checkOptionList(v ?? '');
      else if (k === 'l' && v!.startsWith('snapshot.')) {
        try {
          parseSnapshotParam(v!);
        } catch (e) {
          ctx.io.stderr(errorText((e as Error).message));
          throw invalidArgument(`Failed in parsing snapshot param '${v}'`);
        }
      } else if (k === 'output') out = outputFormat({ opts: [[k, v]], positional: [] });
      else if (k === 'size') size = cvtnum('image size', v!, ctx.warn);
    }
    const options = joinedOptions(p);
    const outFmt = last(p, 'O') ?? 'raw';
    if (wantsHelp(options)) {
      ctx.io.stdout(optionsHelp(outFmt));
      return 0;
    }
    if (p.positional.length > 1) throw invalidArgument('At most one filename argument is allowed.');
    const filename = p.positional[0];
    if (filename === undefined && (has(p, 'image-opts') || has(p, 'f') || has(p, 'l'))) throw invalidArgument('--image-opts, -f, and -l require a filename argument.');
    if (filename !== undefined && size !== undefined) throw invalidArgument('--size N cannot be used together with a filename.');
    if (filename === undefined && size === undefined) throw invalidArgument('Either --size N or one filename must be specified.');
    const snapshot = last(p, 'l');
    const r = await ctx.service.measure({
      format: outFmt,
      ...(size !== undefined ? { size } : { source: imageRef(p, filename!) }),
      ...(snapshot !== undefined ? { snapshot } : {}),
      ...(options !== undefined ? { options } : {}),
      ...objects(p),
    });
    ctx.io.stdout(out === 'json' ? json(r) : humanMeasure(r));
    return 0;
  },
};

const resize: Command = {
  syntax: 'resize [--object objectdef] [--image-opts] [-f fmt] [--preallocation=prealloc] [-q] [--shrink] filename [+ | -]size',
  async run(argv, ctx) {
    // The size is the last argument, taken out before option parsing so "-5G" is not an option.
    if (argv.length < 2) throw usageError('Not enough arguments');
    const sizeText = argv[argv.length - 1]!;
    const p = parseArgs(argv.slice(0, -1), spec(':f:hq', { preallocation: { arg: true }, shrink: { arg: false } }));
    if (has(p, 'h')) return helpFor('resize', resize, ctx);
    const prealloc = last(p, 'preallocation');
    if (prealloc !== undefined && !['off', 'metadata', 'falloc', 'full'].includes(prealloc)) throw invalidArgument(`Invalid preallocation mode '${prealloc}'`);
    if (p.positional.length !== 1) throw usageError('Expecting image file name and size');
    const image = imageRef(p, p.positional[0]!);
    try {
      await ctx.service.resize({ image, size: sizeText, shrink: has(p, 'shrink'), ...(prealloc ? { preallocation: prealloc as 'off' } : {}), ...objects(p) });
    } catch (e) {
      if (e instanceof BlockError && e.code === 'ShrinkNeedsFlag') {
        ctx.io.stderr(errorText(e.message));
        ctx.io.stderr(errorText(SHRINK_WARNING));
        return 1;
      }
      throw e;
    }
    if (!has(p, 'q')) ctx.io.stdout('Image resized.\n');
    return 0;
  },
};

const snapshot: Command = {
  syntax: 'snapshot [--object objectdef] [--image-opts] [-U] [-q] [-l | -a snapshot | -c snapshot | -d snapshot] filename',
  async run(argv, ctx) {
    const p = parseArgs(argv, spec(':la:c:d:hqU'));
    if (has(p, 'h')) return helpFor('snapshot', snapshot, ctx);
    const actions = p.opts.filter(([k]) => k === 'l' || k === 'a' || k === 'c' || k === 'd');
    if (actions.length > 1) throw usageError("Cannot mix '-l', '-a', '-c', '-d'");
    // No action: qemu-img opens the image and does nothing more (an open error still shows).
    const [action, name] = actions[0] ?? ['', undefined];
    const image = imageRef(p, oneFile(p));
    const obj = objects(p);
    if (action === '') {
      await ctx.service.snapshotList({ image, ...obj });
      return 0;
    }
    if (action === 'l') {
      const list = await ctx.service.snapshotList({ image, ...obj });
      if (list.length > 0) ctx.io.stdout(['Snapshot list:', snapshotHeader(), ...list.map(snapshotRow)].join('\n') + '\n');
      return 0;
    }
    if (has(p, 'U')) throw invalidArgument('--force-share/-U is only allowed with -l');
    const input = { image, name: name!, ...obj };
    if (action === 'c') await ctx.service.snapshotCreate(input);
    else if (action === 'a') await ctx.service.snapshotApply(input);
    else await ctx.service.snapshotDelete(input);
    return 0;
  },
};

const commit: Command = {
  syntax: 'commit [--object objectdef] [--image-opts] [-q] [-f fmt] [-t cache] [-b base] [-r rate_limit] [-d] [-p] filename',
  async run(argv, ctx) {
    const p = parseArgs(argv, spec(':f:ht:b:dpqr:'));
    if (has(p, 'h')) return helpFor('commit', commit, ctx);
    const base = last(p, 'b');
    const rateLimit = rateLimitOption(p, ctx);
    await ctx.runJob(ctx.service.commit({ image: cachedRef(imageRef(p, oneFile(p)), cacheOption(p, 't')), ...(base !== undefined ? { base } : {}), drop: has(p, 'd'), ...(rateLimit ? { rateLimit } : {}), ...objects(p) }), has(p, 'p') && !has(p, 'q'));
    if (!has(p, 'q')) ctx.io.stdout('Image committed.\n');
    return 0;
  },
};

const rebase: Command = {
  syntax: 'rebase [--object objectdef] [--image-opts] [-U] [-q] [-f fmt] [-t cache] [-T src_cache] [-p] [-u] -b backing_file [-F backing_fmt] filename',
  async run(argv, ctx) {
    const p = parseArgs(argv, spec(':hf:F:b:upt:T:qU'));
    if (has(p, 'h')) return helpFor('rebase', rebase, ctx);
    const b = last(p, 'b');
    const unsafe = has(p, 'u');
    if (b === undefined && !unsafe) throw usageError('Must specify backing file (-b) or use unsafe mode (-u)');
    const F = last(p, 'F');
    const image = cachedRef(imageRef(p, oneFile(p)), cacheOption(p, 't'));
    const backingCache = cacheOption(p, 'T');
    await ctx.runJob(ctx.service.rebase({ image, backingFile: b ?? '', ...(F !== undefined ? { backingFormat: F } : {}), unsafe, ...(backingCache ? { backingCache } : {}), ...objects(p) }), has(p, 'p') && !has(p, 'q'), { minStep: 2 });
    return 0;
  },
};

const amend: Command = {
  syntax: 'amend [--object objectdef] [--image-opts] [-p] [-q] [-f fmt] [-t cache] [--force] -o options filename',
  async run(argv, ctx) {
    const p = parseArgs(argv, spec(':ho:f:t:pq', { force: { arg: false } }));
    if (has(p, 'h')) return helpFor('amend', amend, ctx);
    const options = joinedOptions(p);
    if (options === undefined) throw usageError('Must specify options (-o)');
    if (wantsHelp(options)) {
      const f = last(p, 'f');
      if (!f) throw invalidArgument('Option help requires a format be specified');
      const d = findFormat(f);
      if (!d) throw invalidArgument(`Unknown file format '${f}'`);
      ctx.io.stdout(describeOptions(d.name, d.amendOptions ?? []) + '\n');
      return 0;
    }
    await ctx.runJob(ctx.service.amend({ image: cachedRef(imageRef(p, oneFile(p)), cacheOption(p, 't')), options, force: has(p, 'force'), ...objects(p) }), has(p, 'p') && !has(p, 'q'), { printZero: true });
    return 0;
  },
};

const bitmap: Command = {
  syntax: 'bitmap (--merge SOURCE | --add | --remove | --clear | --enable | --disable)... [-b source_file [-F source_fmt]] [-g granularity] [--object objectdef] [--image-opts | -f fmt] filename bitmap',
  async run(argv, ctx) {
    const p = parseArgs(
      argv,
      spec(':b:f:F:g:h', {
        add: { arg: false },
        remove: { arg: false },
        clear: { arg: false },
        enable: { arg: false },
        disable: { arg: false },
        merge: { arg: true },
        granularity: { arg: true, short: 'g' },
        'source-file': { arg: true, short: 'b' },
        'source-format': { arg: true, short: 'F' },
      }),
    );
    if (has(p, 'h')) return helpFor('bitmap', bitmap, ctx);
    // img_bitmap's checks, in its order (-g is read as it comes).
    const actions: BitmapAction[] = [];
    let granularity = 0;
    for (const [k, v] of p.opts) {
      if (k === 'g') granularity = cvtnum('granularity', v!, ctx.warn);
      else if (k === 'merge') actions.push({ op: 'merge', source: v! });
      else if (k === 'add' || k === 'remove' || k === 'clear' || k === 'enable' || k === 'disable') actions.push({ op: k });
    }
    if (actions.length === 0) throw invalidArgument(NEED_ACTION);
    if (granularity && !actions.some((a) => a.op === 'add')) throw invalidArgument('granularity only supported with --add');
    const srcFile = last(p, 'b');
    const srcFmt = last(p, 'F');
    if (srcFmt !== undefined && srcFile === undefined) throw invalidArgument('-F only supported with -b');
    if (srcFile !== undefined && !actions.some((a) => a.op === 'merge')) throw invalidArgument('Merge bitmap source file only supported with --merge');
    if (p.positional.length !== 2) throw invalidArgument('Expecting filename and bitmap name');
    const [filename, name] = p.positional as [string, string];
    await ctx.runJob(
      ctx.service.bitmap({
        image: imageRef(p, filename),
        bitmap: name,
        actions,
        ...(granularity ? { granularity } : {}),
        ...(srcFile !== undefined ? { sourceImage: { filename: srcFile, ...(srcFmt !== undefined ? { format: srcFmt } : {}) } } : {}),
        ...objects(p),
      }),
      false,
    );
    return 0;
  },
};

const dd: Command = {
  syntax: 'dd [--image-opts] [-U] [-f fmt] [-O output_fmt] [bs=block_size] [count=blocks] [skip=blocks] if=input of=output',
  async run(argv, ctx) {
    const p = parseArgs(argv, spec(':hf:O:U'));
    if (has(p, 'h')) return helpFor('dd', dd, ctx);
    const ops: Record<string, string> = {};
    for (const a of p.positional) {
      const eq = a.indexOf('=');
      const k = eq < 0 ? a : a.slice(0, eq);
      if (eq < 0 || !['bs', 'count', 'skip', 'if', 'of'].includes(k)) throw invalidArgument(`unrecognized operand ${k}`);
      ops[k] = a.slice(eq + 1);
    }
    /** bs, count and skip as qemu-img reads them: cvtnum, and bs within 1 .. INT_MAX. */
    const num = (k: string) => {
      const v = ops[k];
      if (v === undefined) return undefined;
      const n = cvtnum(k, v, ctx.warn);
      if (k === 'bs' && (n < 1 || n > 0x7fffffff)) throw invalidArgument('Invalid bs specified. Must be between 1 and 2147483647.');
      return n;
    };
    if (ops['if'] === undefined || ops['of'] === undefined) throw invalidArgument('Must specify both input and output files');
    const outFmt = last(p, 'O');
    const env = { secrets: secretStoreFrom(), warn: ctx.warn };
    const bs = num('bs');
    const count = num('count');
    const skip = num('skip');
    await ddJob({ input: imageRef(p, ops['if']), output: ops['of'], ...(outFmt ? { outputFormat: outFmt } : {}), ...(bs !== undefined ? { blockSize: bs } : {}), ...(count !== undefined ? { count } : {}), ...(skip !== undefined ? { skip } : {}) }, env);
    return 0;
  },
};

const bench: Command = {
  syntax: 'bench [-c count] [-d depth] [-f fmt] [--flush-interval=flush_interval] [-i aio] [-n] [--no-drain] [-o offset] [--pattern=pattern] [-q] [-s buffer_size] [-S step_size] [-t cache] [-w] [-U] filename',
  async run(argv, ctx) {
    const p = parseArgs(argv, spec(':hc:d:f:ni:o:qs:S:t:wU', { 'flush-interval': { arg: true }, pattern: { arg: true }, 'no-drain': { arg: false } }));
    if (has(p, 'h')) return helpFor('bench', bench, ctx);
    const int = (k: string, what: string, min = 1) => {
      const v = last(p, k);
      if (v === undefined) return undefined;
      if (!/^\d+$/.test(v) || Number(v) < min) throw invalidArgument(`Invalid ${what} specified`);
      return Number(v);
    };
    const size = (k: string, what: string) => {
      const v = last(p, k);
      if (v === undefined) return undefined;
      try {
        return parseImageSize(v);
      } catch {
        throw invalidArgument(`Invalid ${what} specified`);
      }
    };
    const patternText = last(p, 'pattern');
    let pattern: number | undefined;
    if (patternText !== undefined) {
      pattern = /^\d+$/.test(patternText) ? Number(patternText) : NaN;
      if (!(pattern >= 0 && pattern <= 255)) throw invalidArgument('Invalid pattern byte specified');
    }
    // -n is -i native (BDRV_O_NATIVE_AIO); -i threads does not take it back, as in qemu-img.
    const aioTexts = all(p, 'i');
    for (const a of aioTexts) if (parseAioMode(a) === undefined) throw invalidArgument(`Invalid aio option: ${a}`);
    const aio: AioMode | undefined = has(p, 'n') || aioTexts.includes('native') ? 'native' : aioTexts.includes('io_uring') ? 'io_uring' : undefined;
    const o = {
      image: { ...cachedRef(imageRef(p, oneFile(p)), cacheOption(p, 't', () => 'Invalid cache mode')), ...(aio ? { aio } : {}) },
      ...(int('c', 'request count') !== undefined ? { count: int('c', 'request count')! } : {}),
      ...(int('d', 'queue depth') !== undefined ? { depth: int('d', 'queue depth')! } : {}),
      ...(size('s', 'buffer size') !== undefined ? { size: size('s', 'buffer size')! } : {}),
      ...(size('S', 'step size') !== undefined ? { step: size('S', 'step size')! } : {}),
      ...(size('o', 'offset') !== undefined ? { offset: size('o', 'offset')! } : {}),
      ...(int('flush-interval', 'flush interval') !== undefined ? { flushInterval: int('flush-interval', 'flush interval')! } : {}),
      write: has(p, 'w'),
      ...(pattern !== undefined ? { pattern } : {}),
    };
    if (o.write && has(p, 'U')) throw invalidArgument('--force-share/-U is not allowed with -w');
    const secs = await benchJob(o, { secrets: secretStoreFrom(), warn: ctx.warn }, {}, () => {
      if (!has(p, 'q')) ctx.io.stdout(benchHeader(o) + '\n');
    });
    if (!has(p, 'q')) ctx.io.stdout(`Run completed in ${secs.toFixed(3)} seconds.\n`);
    return 0;
  },
};

const formats: Command = {
  syntax: 'formats  (Platter only: list the registered format drivers)',
  async run(argv, ctx) {
    void argv;
    ctx.io.stdout(`Supported formats: ${formatDrivers().map((d) => d.name).sort().join(' ')}\n`);
    return 0;
  },
};

export const NBD_SYNTAX =
  'nbd [-r] [-f fmt] [-x name] [-D description] [-k socket | -p port -b addr] [-e N | --shared=N] [-t] [--fork] [--pid-file=file] [-A] [-B bitmap] [--object objectdef] [--image-opts] [--cache=mode] [--aio=mode] [--discard=mode] [--detect-zeroes=mode] [--tls-creds=id] filename';

/** `platter nbd` (qemu-nbd's options), loaded when it runs: its server brings node:net, node:tls
 *  and node:child_process, which no other command needs at start. */
const nbd: Command = {
  syntax: NBD_SYNTAX,
  run: async (argv, ctx) => (await import('./nbd-command.ts')).nbdCommand.run(argv, ctx),
};

export const COMMANDS: Record<string, Command> = { amend, bench, bitmap, check, commit, compare, convert, create, dd, info, map, measure, snapshot, rebase, resize, formats, nbd };

export { StatusError };

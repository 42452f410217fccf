// The create job (qemu-img create; qemu-img.c img_create): validate the size and -o options
// against the format's schema, then let core/block's createImage write the new image. Also words
// qemu-img's "Formatting 'x', fmt=... size=..." line.

import { sizeText } from '../util/checked.ts';
import { rmSync } from 'node:fs';
import { createImage, createSchema } from '../drivers/create.ts';
import { findFormat } from '../drivers/registry.ts';
import { parseOptions, type OptionValues } from '../block/options-schema.ts';
import { invalidArgument, unsupported, throwIfAborted } from '../errors.ts';
import { renamePath, stageTarget } from './staging.ts';
import { createError, type JobControl, type JobEnv } from './common.ts';

export interface CreateOptions {
  filename: string;
  format: string;
  /** Bytes; may be absent with a backing file. */
  size?: number;
  options?: string | OptionValues;
  backingFile?: string;
  backingFormat?: string;
  /** -u: do not open the backing file (size must be given). */
  unsafe?: boolean;
}

export interface CreateOutcome {
  filename: string;
  format: string;
  size: number;
  /** The options the user gave, as parsed (for the "Formatting" line). */
  given: OptionValues;
  /** Every option in effect (defaults included). */
  options: OptionValues;
}

/** Parse the -o text/values (plus -b/-F) against the format's create schema. */
export function createValues(o: CreateOptions): OptionValues {
  const driver = findFormat(o.format);
  if (!driver) throw unsupported(`Unknown file format '${o.format}'`);
  // As qemu-img: values its driver checks only after the "Formatting" line stay text here.
  const schema = createSchema(driver, o.filename);
  const given = parseOptions(schema, typeof o.options === 'string' || o.options === undefined ? (o.options ?? '') : o.options, '', { deferChecks: true });
  if (o.backingFile !== undefined) {
    if (!schema.some((s) => s.name === 'backing_file')) throw unsupported(`Backing file not supported for file format '${o.format}'`);
    given['backing_file'] = o.backingFile;
  }
  if (o.backingFormat !== undefined) {
    if (!driver.createOptions.some((s) => s.name === 'backing_fmt')) throw unsupported(`Backing file format not supported for file format '${o.format}'`);
    given['backing_fmt'] = o.backingFormat;
  }
  if (given['size'] !== undefined) {
    if (o.size !== undefined) throw invalidArgument('The image size must be specified only once');
    o.size = Number(given['size']);
    delete given['size'];
  }
  // bdrv_img_create's checks of the backing file name.
  const backing = given['backing_file'];
  if (typeof backing === 'string') {
    if (backing === o.filename) throw invalidArgument('Error: Trying to create an image with the same filename as the backing file');
    if (backing === '') throw invalidArgument('Expected backing file name, got empty string');
  }
  return given;
}

/** An option value as qemu_opts_print shows it: booleans on/off, and in strings every comma
 *  doubled (escaped_print), as the option syntax writes a literal comma. */
function showValue(v: string | number | boolean): string {
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  return typeof v === 'string' ? v.replaceAll(',', ',,') : String(v);
}

/**
 * "Formatting 'x', fmt=raw size=1048576 ..." (sizes in bytes, booleans on/off). With the
 * driver's QEMU option list (FormatDriver.formattingOptions), every option given and every QEMU
 * default, in QEMU's order (qemu_opts_print); otherwise the size and the options given.
 */
export function formattingLine(out: { filename: string; format: string; size: number; given: OptionValues }): string {
  const parts = [`fmt=${out.format}`];
  const list = findFormat(out.format)?.formattingOptions;
  if (list) {
    for (const [name, qemuDefault] of list) {
      const v = name === 'size' ? sizeText(out.size) : (out.given[name] ?? qemuDefault);
      if (v !== undefined) parts.push(`${name}=${showValue(v)}`);
    }
    // Options of Platter's own that QEMU does not know come last.
    for (const [k, v] of Object.entries(out.given)) if (!list.some(([name]) => name === k)) parts.push(`${k}=${showValue(v)}`);
  } else {
    parts.push(`size=${sizeText(out.size)}`);
    for (const [k, v] of Object.entries(out.given)) parts.push(`${k}=${showValue(v)}`);
  }
  return `Formatting '${out.filename}', ${parts.join(' ')}`;
}

export async function create(o: CreateOptions, env: JobEnv, ctl: JobControl = {}): Promise<CreateOutcome> {
  throwIfAborted(ctl.signal);
  let given: OptionValues;
  try {
    given = createValues(o);
  } catch (e) {
    throw createError(o.filename, e);
  }
  ctl.onProgress?.({ done: 0, total: 1, phase: 'creating' });
  // Written under a staging name and renamed when complete (staging.ts).
  const staged = stageTarget(o.filename);
  const options = await createImage({
    format: o.format,
    filename: staged?.path ?? o.filename,
    ...(staged ? { finalName: o.filename } : {}),
    ...(o.size !== undefined ? { size: o.size } : {}),
    options: { ...given },
    secrets: env.secrets,
    warn: env.warn,
    unsafeBacking: o.unsafe ?? false,
    // Checked and about to write: where qemu-img prints "Formatting ..." (the total is the size).
    onValidated: (size) => ctl.onProgress?.({ done: 0, total: size, phase: 'formatting' }),
    ...(ctl.signal ? { signal: ctl.signal } : {}),
  }).catch((e) => {
    staged?.discard();
    // As QEMU's luks create, a failure removes the file the user named even if it existed.
    if (staged && findFormat(o.format)?.deleteFileOnCreateFailure) rmSync(o.filename, { force: true });
    throw createError(o.filename, staged ? renamePath(e, staged.path, o.filename) : e);
  });
  try {
    staged?.commit(true);
  } catch (e) {
    staged?.discard();
    throw createError(o.filename, e);
  }
  let size = o.size;
  if (size === undefined) {
    // Inherited from the backing file: read it back from the new image.
    const { openImage } = await import('../drivers/open.ts');
    const n = await openImage(o.filename, { format: o.format, readOnly: true, noBacking: true, secrets: env.secrets, warn: env.warn });
    size = n.size;
    await n.close();
  }
  ctl.onProgress?.({ done: 1, total: 1, phase: 'creating' });
  return { filename: o.filename, format: o.format, size, given, options };
}

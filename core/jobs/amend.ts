// The amend job (qemu-img amend; qemu-img.c img_amend): change format options of an existing
// image through the driver's amend capability, with options validated against its amend schema
// (options that exist only at creation get qemu-img's words).

import { parseOptions } from '../block/options-schema.ts';
import type { OptionValues } from '../block/options-schema.ts';
import { invalidArgument, unsupported } from '../errors.ts';
import { sharedWorkerPool } from '../workers/pool.ts';
import { withImage, type ImageSpec, type JobControl, type JobEnv } from './common.ts';

export interface AmendOptions {
  image: ImageSpec;
  options: string | OptionValues;
  force?: boolean;
}

export async function amend(o: AmendOptions, env: JobEnv, ctl: JobControl = {}): Promise<void> {
  await withImage(o.image, env, { readOnly: false }, async (node) => {
    if (node.driver.kind !== 'format' || !node.canAmend) throw unsupported(`Format driver '${node.format}' does not support option amendment`);
    const schema = node.driver.amendOptions ?? node.driver.createOptions;
    let values: OptionValues;
    try {
      values = typeof o.options === 'string' ? parseOptions(schema, o.options) : parseOptions(schema, o.options);
    } catch (e) {
      // Options the format takes only at creation: say so, as qemu-img does.
      const m = /^Invalid parameter '([^']+)'/.exec((e as Error).message);
      if (m && node.driver.createOptions.some((s) => s.name === m[1])) {
        throw invalidArgument(`Invalid parameter '${m[1]}'\nThis option is only supported for image creation`);
      }
      throw e;
    }
    // Progress is the driver's status reports only (qemu-img amend: its status callback; the
    // CLI prints 0% before and 100% after, as qemu-img does).
    const onProgress = (done: number, total: number) => ctl.onProgress?.({ done, total, phase: 'amending' });
    await node.amend(values, { secrets: env.secrets, workers: sharedWorkerPool(), warn: env.warn, force: o.force ?? false, ...(ctl.signal ? { signal: ctl.signal } : {}), onProgress });
    await node.flush();
  });
}

// Job results and check findings in words, as qemu-img says them where users know its wording.

import type { CheckReport, CommitResult, CompareResult, ConvertResult, CreateResult, RebaseResult } from '../../core/api/types.ts';
import type { JobView } from '../stores/jobs.ts';
import { basename, formatBytes } from '../util/format.ts';
import { viewsResultWords } from './views/ConvertExtras.tsx';

/** qemu-img check's summary lines for a report. */
export function checkWords(r: CheckReport): string[] {
  const out: string[] = [];
  const corruptions = r.corruptions ?? 0;
  const leaks = r.leaks ?? 0;
  if (r.repaired && (r.repaired.corruptions || r.repaired.leaks)) {
    out.push(`The following inconsistencies were found and repaired: ${r.repaired.leaks} leaked clusters, ${r.repaired.corruptions} corruptions.`);
  }
  if (r['check-errors']) out.push(`${r['check-errors']} internal errors have occurred during the check.`);
  if (corruptions) out.push(`${corruptions} errors were found on the image. Data may be corrupted, or further writes to the image may corrupt it.`);
  if (leaks) out.push(`${leaks} leaked clusters were found on the image. This means waste of disk space, but no harm to data.`);
  if (!corruptions && !leaks && !r['check-errors']) out.push('No errors were found on the image.');
  if (r['total-clusters'] !== undefined && r['allocated-clusters'] !== undefined) {
    const pct = r['total-clusters'] ? ((100 * r['allocated-clusters']) / r['total-clusters']).toFixed(2) : '0.00';
    out.push(`${r['allocated-clusters']}/${r['total-clusters']} = ${pct}% allocated, ${r['fragmented-clusters'] ?? 0} fragmented, ${r['compressed-clusters'] ?? 0} compressed clusters`);
  }
  if (r['image-end-offset'] !== undefined) out.push(`Image end offset: ${r['image-end-offset']}`);
  return out;
}

export function resultWords(job: JobView): string {
  if (job.state === 'running') return '';
  if (job.state === 'cancelled') return 'Cancelled.';
  if (job.state === 'failed') return job.error ? `Failed: ${job.error.message}${job.error.hint ? ` (${job.error.hint.trim()})` : ''}` : 'Failed.';
  const r = job.result as Record<string, unknown> | null | undefined;
  switch (job.method) {
    case 'create': {
      const c = r as unknown as CreateResult | undefined;
      return c ? `Created ${basename(c.filename)} (${c.format}, ${formatBytes(c.size)}).` : 'Created.';
    }
    case 'convert': {
      const c = r as unknown as ConvertResult | undefined;
      return c ? `Converted: ${formatBytes(c.bytesCopied)} copied, ${formatBytes(c.bytesSkipped)} skipped as holes or zeros.` : 'Converted.';
    }
    case 'check': {
      const c = r as unknown as CheckReport | undefined;
      return c ? checkWords(c)[0] ?? 'Checked.' : 'Checked.';
    }
    case 'compare': {
      const c = r as unknown as CompareResult | undefined;
      return c?.message ?? (c?.identical ? 'Images are identical.' : 'Images differ.');
    }
    case 'commit': {
      const c = r as unknown as CommitResult | undefined;
      return c ? `Image committed: ${formatBytes(c.bytesCopied)} written into ${basename(c.base)}.` : 'Image committed.';
    }
    case 'rebase': {
      const c = r as unknown as RebaseResult | undefined;
      return c ? (c.backingFile ? `Backing file is now ${basename(c.backingFile)}.` : 'The image no longer has a backing file.') : 'Rebased.';
    }
    case 'amend':
      return 'Options changed.';
    case 'bitmap':
      return 'Bitmap changed.';
    default:
      return viewsResultWords(job) ?? 'Done.';
  }
}

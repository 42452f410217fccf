// The check job (qemu-img check; qemu-img.c img_check / collect_image_check): run the driver's
// consistency check (and repair with -r), shape the result as qemu-img --output=json does (each
// counter present only when non-zero) and compute qemu-img's exit status.

import type { CheckResult, RepairMode } from '../block/types.ts';
import type { CheckReport } from '../api/types.ts';
import { openSpec, type ImageSpec, type JobControl, type JobEnv } from './common.ts';

export interface CheckOptions {
  image: ImageSpec;
  repair?: RepairMode;
}

/** qemu-img's words for a format without a check; the CLI exits 63 on it. */
import { CHECK_ERROR_REPORT } from '../block/types.ts';
export { NO_CHECK_MESSAGE } from '../block/types.ts';
/** qemu-img check's exit status for "this format cannot be checked" (ENOTSUP). */
export const EXIT_CHECK_UNSUPPORTED = 63;

/** A driver's findings without the error-report mark (CHECK_ERROR_REPORT), and where it was. */
function splitReports(list: readonly string[]): { messages: string[]; reports: number[] } {
  const reports: number[] = [];
  const messages = list.map((m, i) => {
    if (!m.startsWith(CHECK_ERROR_REPORT)) return m;
    reports.push(i);
    return m.slice(CHECK_ERROR_REPORT.length);
  });
  return { messages, reports };
}

export function toReport(filename: string, format: string, r: CheckResult): CheckReport {
  const { messages, reports } = splitReports(r.messages);
  const out: CheckReport = { filename, format, 'check-errors': r.checkErrors, messages, ...(reports.length ? { errorReports: reports } : {}), exitCode: 0 };
  const opt = (key: keyof CheckReport, v: number | undefined) => {
    if (v !== undefined && v !== 0) (out as unknown as Record<string, number>)[key] = v;
  };
  opt('image-end-offset', r.imageEndOffset);
  opt('corruptions', r.corruptions);
  opt('leaks', r.leaks);
  opt('corruptions-fixed', r.corruptionsFixed);
  opt('leaks-fixed', r.leaksFixed);
  opt('total-clusters', r.totalClusters);
  opt('allocated-clusters', r.allocatedClusters);
  opt('fragmented-clusters', r.fragmentedClusters);
  opt('compressed-clusters', r.compressedClusters);
  out.exitCode = r.checkErrors ? 1 : r.corruptions ? 2 : r.leaks ? 3 : 0;
  if (r.failed) out.failed = r.failed;
  return out;
}

export async function check(o: CheckOptions, env: JobEnv, ctl: JobControl = {}): Promise<CheckReport> {
  const readOnly = o.repair === undefined;
  const node = await openSpec(o.image, env, { readOnly, forCheck: true });
  try {
    ctl.onProgress?.({ done: 0, total: 1, phase: 'checking' });
    let r = await node.check(o.repair);
    let repaired: CheckReport['repaired'];
    let first: CheckReport | undefined;
    if (o.repair && (r.corruptionsFixed || r.leaksFixed)) {
      // qemu-img reports what it fixed, then checks again and shows that result.
      repaired = { corruptions: r.corruptionsFixed, leaks: r.leaksFixed };
      first = toReport(node.filename, node.format, r);
      const again = await node.check(undefined);
      r = { ...again, corruptionsFixed: r.corruptionsFixed, leaksFixed: r.leaksFixed };
    }
    ctl.onProgress?.({ done: 1, total: 1, phase: 'checking' });
    const report = toReport(node.filename, node.format, r);
    if (repaired) {
      report.repaired = repaired;
      report.recheckMessages = report.messages;
      if (report.errorReports) report.recheckErrorReports = report.errorReports;
      report.messages = first!.messages;
      if (first!.errorReports) report.errorReports = first!.errorReports;
      else delete report.errorReports;
    }
    return report;
  } finally {
    await node.close();
  }
}

/** What a repair fixed, as qemu-img prints it before checking again ('' when nothing was). */
export function humanRepaired(c: CheckReport): string {
  if (!c.repaired) return '';
  return ['The following inconsistencies were found and repaired:', '', `    ${c.repaired.leaks} leaked clusters`, `    ${c.repaired.corruptions} corruptions`, '', 'Double checking the fixed image now...'].join('\n') + '\n';
}

/** The human text of a check (qemu-img.c dump_human_image_check). */
export function humanCheck(c: CheckReport): string {
  const lines: string[] = [];
  const repairedText = humanRepaired(c);
  if (repairedText) lines.push(repairedText.slice(0, -1));
  const corruptions = c.corruptions ?? 0;
  const leaks = c.leaks ?? 0;
  if (corruptions === 0 && leaks === 0 && c['check-errors'] === 0) lines.push('No errors were found on the image.');
  else {
    if (corruptions) lines.push('', `${corruptions} errors were found on the image.`, 'Data may be corrupted, or further writes to the image may corrupt it.');
    if (leaks) lines.push('', `${leaks} leaked clusters were found on the image.`, 'This means waste of disk space, but no harm to data.');
    if (c['check-errors']) lines.push('', `${c['check-errors']} internal errors have occurred during the check.`);
  }
  const total = c['total-clusters'] ?? 0;
  const alloc = c['allocated-clusters'] ?? 0;
  if (total && alloc) {
    const pct = (n: number, d: number) => ((n * 100) / d).toFixed(2);
    lines.push(`${alloc}/${total} = ${pct(alloc, total)}% allocated, ${pct(c['fragmented-clusters'] ?? 0, alloc)}% fragmented, ${pct(c['compressed-clusters'] ?? 0, alloc)}% compressed clusters`);
  }
  if (c['image-end-offset']) lines.push(`Image end offset: ${c['image-end-offset']}`);
  return lines.join('\n') + '\n';
}

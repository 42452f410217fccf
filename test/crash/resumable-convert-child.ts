// Child process of resumable-convert-killed-resumes.test.ts: a resumable convert (core/jobs/
// resumable-convert.ts) that prints its progress and, once half is done, stops in place (blocks
// its thread) so the test's SIGKILL lands at about 50%. Arguments: SOURCE TARGET FORMAT.
import { resumableConvert } from '../../core/jobs/resumable-convert.ts';
import { defaultEnv } from '../../core/jobs/common.ts';

const [source, target, format] = process.argv.slice(2) as [string, string, string];
let stopped = false;
await resumableConvert({ source: { filename: source, format: 'raw' }, target: { filename: target, format }, journalIntervalMs: 10 }, defaultEnv(), {
  onProgress(p) {
    if (stopped || p.total === 0) return;
    const pct = Math.floor((p.done * 100) / p.total);
    if (pct >= 50) {
      stopped = true;
      // Let the journal writer of the finished requests run first, then freeze until killed.
      setTimeout(() => {
        process.stdout.write(`HALF ${p.done} ${p.total}\n`);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
      }, 20);
    }
  },
});
process.stdout.write('FINISHED\n');

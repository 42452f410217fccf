// npm run fuzz -- [--format F|all|F1,F2] [--cases N] [--seed S] [--jobs J] [--save DIR]
// Structure-aware fuzzing of Platter's format drivers (test/fuzz/). Prints one line per format
// and every failure; exits 1 if any case crashed, hung or ran over the memory cap.
import { runFuzz } from '../test/fuzz/run.ts';
import { fuzzFormats } from '../test/fuzz/seeds.ts';
import { findFormat } from '../core/drivers/registry.ts';

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : def;
};
const format = opt('format', 'all');
const cases = Number(opt('cases', '2000'));
const seed = Number(opt('seed', '1'));
const save = opt('save', '');
const jobs = Number(opt('jobs', '1'));
const formats = format === 'all' ? fuzzFormats().filter((f) => findFormat(f)) : format.split(',');
let failed = 0;
for (const f of formats) {
  if (!findFormat(f)) {
    console.log(`${f}: no driver registered, skipped`);
    continue;
  }
  const r = await runFuzz({ format: f, cases, seed, jobs, progressEvery: cases >= 20_000 ? 10_000 : 0, ...(save ? { saveFailuresTo: save } : {}), log: (l) => console.log(l) });
  failed += r.failures.length;
  console.log(`${f}: ${r.cases} cases, ${r.ok} opened and read, ${r.errors} refused with a typed error ${JSON.stringify(r.errorKinds)}, ${r.failures.length} failures, ${r.seconds.toFixed(1)} s`);
}
process.exitCode = failed ? 1 : 0;

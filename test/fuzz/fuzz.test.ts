// Fixed-seed fuzzing of every registered format driver (the CI budget; `npm run fuzz` runs
// longer campaigns). A failure is a crash, a hang over 10 s or memory over 1 GiB on a mutated
// image; refusing the image with a typed BlockError is the expected outcome for most cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFuzz } from './run.ts';
import { fuzzFormats } from './seeds.ts';
import { SKIP_NO_QEMU } from '../helpers/qemu.ts';

/** Cases per format in the default run; PLATTER_FUZZ_CASES overrides (the long mode uses more). */
const CASES = Number(process.env.PLATTER_FUZZ_CASES ?? (process.env.PLATTER_TEST_LONG ? 10_000 : 2000));
const SEED = 20261126;

for (const format of fuzzFormats()) {
  const skip = SKIP_NO_QEMU;
  test(`${CASES} mutated ${format} images: no crash, no hang, no runaway memory`, { skip, timeout: 30 * 60_000 }, async () => {
    const r = await runFuzz({ format, cases: CASES, seed: SEED, jobs: 2 });
    const detail = r.failures.slice(0, 5).map((f) => `case ${f.caseId} (${f.seedImage}: ${f.mutation.join(', ')}): ${f.reason}`).join('\n');
    assert.equal(r.failures.length, 0, `${r.failures.length} failing cases, first ones:\n${detail}`);
    assert.equal(r.cases, CASES);
  });
}

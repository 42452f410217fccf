// Conformance in CI: a fixed subset of QEMU 7.2's own qemu-iotests (iotests-ci.txt, chosen to
// cover every writable format and the CLI's subcommands in a few minutes) passes with the shipped
// CLI standing in for qemu-img, through the shared runner (../shared/iotests/run.sh; QEMU's
// qemu-io and qemu-nbd are the real ones). The whole list runs with `npm run iotests`; its
// figures are in docs/conformance.md. Skips, saying so, where the shared folder is absent.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { buildCli } from '../../scripts/build-cli.mjs';
import { REPO_ROOT, run, tempDir, SKIP_NO_QEMU } from '../helpers/qemu.ts';

const RUNNER = join(REPO_ROOT, '../shared/iotests/run.sh');
const LIST = join(REPO_ROOT, 'test/conformance/iotests-ci.txt');
const skip = SKIP_NO_QEMU || (existsSync(RUNNER) ? false : `the qemu-iotests runner is not at ${RUNNER}`);

test('qemu-iotests (CI subset) pass with platter as qemu-img: iotests-ci.txt, 0 failed', { skip, timeout: 40 * 60_000 }, async () => {
  const t = tempDir('platter-iotests-cli-');
  try {
    await buildCli({ outDir: t.dir });
    const r = run('bash', [RUNNER, `node ${join(t.dir, 'platter.cjs')}`, LIST], { timeoutMs: 40 * 60_000 });
    const out = r.stdout + r.stderr;
    const summary = /iotests: (\d+) passed, (\d+) failed/.exec(out);
    assert.ok(summary, `the runner printed no summary:\n${out}`);
    assert.equal(Number(summary[2]), 0, out);
    assert.ok(Number(summary[1]) > 0, out);
  } finally {
    t.cleanup();
  }
});

#!/usr/bin/env node
// The project's test command: type-check, the layer rule, then every test file under test/ with
// node's own test runner (through tsx). `npm test -- unit` runs one folder; more names narrow further.
// Environment: PLATTER_TEST_LONG=1 runs the long variants (crash loops, fuzz budgets).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const filters = process.argv.slice(2);

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

// The tests start hundreds of Node processes (the CLI, fuzz cases, the browser-mode server) and
// make no TLS connections: with NODE_EXTRA_CA_CERTS set (some sandboxes set it for their registry
// proxy) each start would parse the whole certificate bundle first (about 0.1 s of CPU).
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS;

function run(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, env });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

if (filters.length === 0) {
  run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--noEmit']);
  run(process.execPath, [join(root, 'scripts/check-layers.mjs')]);
}
const files = walk(join(root, 'test')).filter((f) => {
  const rel = relative(join(root, 'test'), f);
  return filters.length === 0 || filters.some((x) => rel.includes(x));
});
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const concurrency = process.env.PLATTER_TEST_CONCURRENCY ?? '2';
run(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files.map((f) => relative(root, f))]);

#!/usr/bin/env node
// Builds the `platter` command line as shipped (`npm run build` puts it in dist/cli; `npm run
// bench` measures it), with esbuild:
//   platter.cjs        the command: sets V8 flags, runs the CLI from a V8 code cache (cli-launcher.ts)
//   platter-cli.cjs    the CLI and all of core, one CommonJS file (koffi stays a native dependency)
//   schemas.cjs        the API's zod schemas, which the CLI never loads (it builds its inputs itself)
//   worker-entry.mjs   the worker pool's entry (pool.ts finds it beside the bundle)
// CommonJS, because Node 20 offers a code cache only for scripts compiled through node:vm.
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The API's schema module is a file of its own, required only when something validates. */
const schemasApart = {
  name: 'schemas-apart',
  setup(b) {
    b.onResolve({ filter: /\/schemas\.ts$/ }, (args) => (args.importer.endsWith('implementation.ts') ? { path: './schemas.cjs', external: true } : undefined));
  },
};

/** Build the CLI into `outDir`; returns the path of the command (run it with node). */
export async function buildCli({ outDir = join(ROOT, 'dist', 'cli'), minify = false } = {}) {
  mkdirSync(outDir, { recursive: true });
  const common = { bundle: true, platform: 'node', target: 'node20', external: ['koffi', 'cpu-features', '*.node'], minify, logLevel: 'warning' };
  const cjs = {
    ...common,
    format: 'cjs',
    banner: { js: "const __bundleUrl = require('node:url').pathToFileURL(__filename).href;" },
    define: { 'import.meta.url': '__bundleUrl' },
  };
  await build({ ...cjs, entryPoints: [join(ROOT, 'scripts/cli-launcher.ts')], outfile: join(outDir, 'platter.cjs') });
  await build({ ...cjs, entryPoints: [join(ROOT, 'scripts/cli-entry.ts')], outfile: join(outDir, 'platter-cli.cjs'), plugins: [schemasApart] });
  await build({ ...cjs, entryPoints: [join(ROOT, 'core/api/schemas.ts')], outfile: join(outDir, 'schemas.cjs') });
  await build({
    ...common,
    format: 'esm',
    entryPoints: [join(ROOT, 'core/workers/worker-main.ts')],
    outfile: join(outDir, 'worker-entry.mjs'),
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  return join(outDir, 'platter.cjs');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const t0 = Date.now();
  const cmd = await buildCli({ minify: process.argv.includes('--minify') });
  console.log(`built the CLI (${cmd}) in ${Date.now() - t0} ms`);
}

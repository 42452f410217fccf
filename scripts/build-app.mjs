#!/usr/bin/env node
// Builds the desktop app with esbuild (`npm run build`):
//   dist/electron/main.cjs      Electron main process (core bundled in; koffi stays a native dep)
//   dist/electron/preload.cjs   the sandboxed preload (requires only 'electron')
//   dist/electron/elevated-worker.cjs  the elevated drive helper (electron/elevate.ts)
//   dist/electron/worker-entry.mjs  the worker pool's entry, compiled twin of core/workers/worker-entry.mjs
//   dist/renderer/{index.html,app.js,app.css}  the React renderer
// `buildApp({ only: 'renderer' })` is what the e2e tests call: the browser mode serves only that.
import { build } from 'esbuild';
import { mkdirSync, writeFileSync, copyFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const DIST = join(ROOT, 'dist');

/** The renderer's HTML shell. The CSP is also sent as a header by both hosts (electron/csp.ts);
 *  the meta copy protects the page if it is ever opened some other way. */
function indexHtml() {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self' ws://127.0.0.1:*; object-src 'none'; base-uri 'none'; form-action 'none'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Platter</title>
<link rel="icon" href="icon.png">
<link rel="stylesheet" href="app.css">
</head>
<body>
<div id="root"></div>
<script src="app.js"></script>
</body>
</html>
`;
}

async function buildRenderer({ minify, outDir }) {
  const out = join(outDir, 'renderer');
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: { app: join(ROOT, 'renderer/main.tsx') },
    outdir: out,
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: ['chrome120'],
    jsx: 'automatic',
    minify,
    sourcemap: minify ? false : 'linked',
    legalComments: 'linked',
    define: { 'process.env.NODE_ENV': minify ? '"production"' : '"development"' },
    loader: { '.png': 'file', '.svg': 'file' },
    logLevel: 'warning',
  });
  writeFileSync(join(out, 'index.html'), indexHtml());
  const icon = join(ROOT, 'assets/icon.png');
  if (existsSync(icon)) copyFileSync(icon, join(out, 'icon.png'));
}

async function buildElectron({ minify, outDir }) {
  const out = join(outDir, 'electron');
  mkdirSync(out, { recursive: true });
  // CommonJS has no import.meta.url: give the bundle one that points at the bundle itself, so
  // core's `new URL('./worker-entry.mjs', import.meta.url)` finds dist/electron/worker-entry.mjs.
  const common = {
    bundle: true,
    platform: 'node',
    target: ['node20'],
    minify,
    sourcemap: minify ? false : 'linked',
    external: ['electron', 'koffi', 'cpu-features', '*.node'],
    logLevel: 'warning',
  };
  await build({
    ...common,
    entryPoints: { main: join(ROOT, 'electron/main.ts'), preload: join(ROOT, 'electron/preload.ts'), 'elevated-worker': join(ROOT, 'core/cli/elevated-worker.ts') },
    outdir: out,
    outExtension: { '.js': '.cjs' },
    format: 'cjs',
    banner: { js: "const __bundleUrl = require('node:url').pathToFileURL(__filename).href;" },
    define: { 'import.meta.url': '__bundleUrl' },
  });
  await build({
    ...common,
    entryPoints: { 'worker-entry': join(ROOT, 'core/workers/worker-main.ts') },
    outdir: out,
    outExtension: { '.js': '.mjs' },
    format: 'esm',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
}

/** Build what is asked: 'renderer', 'electron' or everything, into `outDir` (default dist/). */
export async function buildApp({ only, minify = false, outDir = DIST } = {}) {
  if (only !== 'electron') await buildRenderer({ minify, outDir });
  if (only !== 'renderer') await buildElectron({ minify, outDir });
  return { renderer: join(outDir, 'renderer'), electron: join(outDir, 'electron') };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const only = args.includes('--renderer') ? 'renderer' : args.includes('--electron') ? 'electron' : undefined;
  const t0 = Date.now();
  await buildApp({ only, minify: args.includes('--minify') });
  console.log(`built ${only ?? 'renderer + electron'} into dist/ in ${Date.now() - t0} ms`);
}

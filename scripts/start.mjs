#!/usr/bin/env node
// `npm start`: build the app (esbuild), then launch Electron. Where node_modules/electron has no
// binary (its download is blocked or was skipped), say so in one line, with how to get it, and
// start browser mode instead, printing the URL with its access token.
// Arguments after `--` go to browser mode (e.g. `npm start -- --library ~/images --port 8123`).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildApp, ROOT } from './build-app.mjs';

/** The Electron executable that `npm install electron` downloads, if it is there. */
function electronBinary() {
  const pkg = join(ROOT, 'node_modules/electron');
  const pathFile = join(pkg, 'path.txt');
  if (!existsSync(pathFile)) return undefined;
  const bin = join(pkg, 'dist', readFileSync(pathFile, 'utf8').trim());
  return existsSync(bin) ? bin : undefined;
}

function run(cmd, args) {
  const child = spawn(cmd, args, { stdio: 'inherit', cwd: ROOT });
  const forward = (sig) => child.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

const args = process.argv.slice(2);
const bin = electronBinary();
await buildApp({ only: bin ? undefined : 'renderer', minify: true });
if (bin) {
  run(bin, [ROOT]);
} else {
  console.log(
    'Electron\'s binary is not installed (node_modules/electron/dist is missing; its download was blocked or skipped): get it with `node node_modules/electron/install.js` (npx electron install) on a machine with network access; starting browser mode instead.',
  );
  run(process.execPath, ['--import', 'tsx', join(ROOT, 'electron/serve.ts'), ...args]);
}

// The Electron shell as shipped (scripts/build-app.mjs -> dist/electron): main and preload bundle
// to CommonJS; the sandboxed preload needs nothing but 'electron'; main keeps only electron and the
// native koffi outside the bundle; the window is built locked down; and the worker pool's compiled
// entry, found next to main.cjs through the bundle's import.meta.url, answers tasks. (The Electron
// binary itself is not installed here, so the window is not opened.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { spawnSync } from 'node:child_process';
import { builtinModules } from 'node:module';
import { buildApp } from '../../scripts/build-app.mjs';
import { tempDir } from '../helpers/qemu.ts';

const requires = (code: string) => [...new Set([...code.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]!))].filter((r) => !r.startsWith('node:') && !builtinModules.includes(r)).sort();
/** ssh2's optional native speed-ups: it loads them inside try/catch and runs its pure-JS ciphers
 *  without them (scripts/build-app.mjs leaves them outside the bundle). */
const SSH2_OPTIONAL_NATIVE = ['./crypto/build/Release/sshcrypto.node', 'cpu-features'];

test('the Electron bundles load their own worker entry and keep the window sandboxed with one IPC channel', { timeout: 60_000 }, async () => {
  const tmp = tempDir('platter-bundle-');
  try {
    const { electron } = await buildApp({ only: 'electron', outDir: tmp.dir });
    const main = readFileSync(join(electron, 'main.cjs'), 'utf8');
    const preload = readFileSync(join(electron, 'preload.cjs'), 'utf8');
    for (const f of ['main.cjs', 'preload.cjs']) assert.equal(spawnSync(process.execPath, ['--check', join(electron, f)]).status, 0, `${f} does not parse`);

    assert.deepEqual(requires(preload), ['electron']);
    assert.deepEqual(requires(main), [...SSH2_OPTIONAL_NATIVE, 'electron'].sort());
    // koffi stays outside the bundle, a native dependency loaded at run time (core/host/ffi.ts:
    // its addon directly, else its entry module).
    assert.match(main, /\("koffi"\)/);
    assert.match(main, /@koromix\/koffi-/);
    assert.doesNotMatch(main, /Cannot find the native Koffi module/, "koffi's own loader was bundled");
    assert.match(preload, /exposeInMainWorld\("platter"/);
    assert.match(main, /contextIsolation: true/);
    assert.match(main, /sandbox: true/);
    assert.match(main, /nodeIntegration: false/);
    assert.match(main, /webSecurity: true/);
    assert.doesNotMatch(main, /nodeIntegration: true|webSecurity: false|allowRunningInsecureContent: true/);
    assert.match(main, /"platter:call"/);
    assert.match(main, /setPermissionRequestHandler/);
    assert.match(main, /setWindowOpenHandler/);

    const reply = await new Promise<{ id: number; ok: boolean; error?: { message: string } }>((resolve, reject) => {
      const w = new Worker(join(electron, 'worker-entry.mjs'));
      w.once('message', (m) => {
        void w.terminate();
        resolve(m);
      });
      w.once('error', reject);
      w.postMessage({ id: 7, task: 'no-such-task', input: {} });
    });
    assert.equal(reply.id, 7);
    assert.equal(reply.ok, false);
    assert.match(reply.error!.message, /unknown worker task 'no-such-task'/);
  } finally {
    tmp.cleanup();
  }
});

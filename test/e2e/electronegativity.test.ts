// Electronegativity (Doyensec's Electron security scanner) over the shipped app: the Electron
// sources and the built renderer page. The release-notes check needs the network and is left out;
// every other check runs. Passing means no finding of HIGH or CRITICAL severity.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildApp } from '../../scripts/build-app.mjs';
import { REPO_ROOT, run, tempDir } from '../helpers/qemu.ts';

/** The one check that fetches Electron's release list from the network. */
const NETWORK_CHECK = 'AvailableSecurityFixesGlobalCheck';

test('electronegativity finds nothing of high or critical severity in the app', { timeout: 300_000 }, async () => {
  const tmp = tempDir('platter-eneg-');
  try {
    const app = join(tmp.dir, 'app');
    mkdirSync(app);
    cpSync(join(REPO_ROOT, 'electron'), join(app, 'electron'), { recursive: true });
    cpSync(join(REPO_ROOT, 'package.json'), join(app, 'package.json'));
    await buildApp({ only: 'renderer', outDir: join(app, 'dist') });
    const csv = join(tmp.dir, 'findings.csv');
    const bin = join(REPO_ROOT, 'node_modules/.bin/electronegativity');
    const r = run(bin, ['-i', app, '-x', NETWORK_CHECK, '-o', csv, '-r'], { timeoutMs: 240_000 });
    assert.equal(r.status, 0, `electronegativity exited ${r.status}: ${r.stderr}`);
    const rows = readFileSync(csv, 'utf8').trim().split('\n').slice(1);
    const severe = rows.filter((l) => /^[A-Z_]+,"(HIGH|CRITICAL)"/.test(l));
    assert.deepEqual(severe, [], `high-severity findings:\n${severe.join('\n')}`);
    // The scan really looked at the app: it reports on main.ts's BrowserWindow.
    assert.ok(rows.some((l) => l.includes('main.ts')), `the scan saw no electron/main.ts:\n${rows.join('\n')}`);
  } finally {
    tmp.cleanup();
  }
});

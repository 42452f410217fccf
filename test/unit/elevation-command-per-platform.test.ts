// The command the desktop app runs to start its drive helper with administrator rights
// (electron/elevate.ts elevationCommand), per platform: pkexec on Linux, osascript's
// administrator dialog on macOS, the UAC prompt through PowerShell on Windows; and how a refused
// or failed elevation is worded. The macOS shell line is run here for real through /bin/sh (it is
// what `do shell script` runs) to prove the quoting hands every argument over unchanged;
// PowerShell cannot run here, so its encoded scripts are decoded and read.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { elevationCommand, elevationFailure, type HelperCommand } from '../../electron/elevate.ts';

const NASTY = `it's "$HOME" \`id\` \\ ; & | %PATH% ‘x’ *`;

test('linux: pkexec runs /usr/bin/env with the environment, then the helper, without a shell', () => {
  const helper: HelperCommand = { exe: '/opt/Platter/platter', args: ['/opt/Platter/resources/app.asar.unpacked/dist/electron/elevated-worker.cjs', '--channel', `/tmp/platter-elevate-${NASTY}`], env: { ELECTRON_RUN_AS_NODE: '1' } };
  const c = elevationCommand('linux', helper, 'ignored by pkexec');
  assert.equal(c.file, '/usr/bin/pkexec');
  assert.deepEqual(c.args, ['--disable-internal-agent', '/usr/bin/env', 'ELECTRON_RUN_AS_NODE=1', helper.exe, ...helper.args]);
});

/** The AppleScript string literal's text (the inverse of appleScriptString). */
function appleScriptText(literal: string): string {
  assert.ok(literal.startsWith('"') && literal.endsWith('"'));
  return literal.slice(1, -1).replace(/\\(["\\])/g, '$1');
}

test('darwin: osascript do shell script with administrator privileges; the shell line keeps every argument', () => {
  const args = ['-e', 'console.log(JSON.stringify({ argv: process.argv.slice(1), env: process.env.PLATTER_T }))', NASTY, '', '--channel', '/private/var/folders/x y/T/platter-elevate-AbC'];
  const c = elevationCommand('darwin', { exe: process.execPath, args, env: { PLATTER_T: `v ${NASTY}` } }, 'Platter needs "administrator" rights');
  assert.equal(c.file, '/usr/bin/osascript');
  assert.equal(c.args.length, 2);
  assert.equal(c.args[0], '-e');
  const m = /^do shell script ("(?:[^"\\]|\\.)*") with prompt ("(?:[^"\\]|\\.)*") with administrator privileges$/.exec(c.args[1]!);
  assert.ok(m, c.args[1]);
  assert.equal(appleScriptText(m[2]!), 'Platter needs "administrator" rights');
  // `do shell script` hands its text to /bin/sh -c: run it so.
  const r = spawnSync('/bin/sh', ['-c', appleScriptText(m[1]!)], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { argv: args.slice(2), env: `v ${NASTY}` });
});

test('win32: Start-Process -Verb RunAs -Wait -PassThru of an encoded script that sets the environment and runs the helper', () => {
  const helper: HelperCommand = { exe: 'C:\\Program Files\\Platter\\Platter.exe', args: ["C:\\Program Files\\Platter\\resources\\app.asar.unpacked\\dist\\electron\\elevated-worker.cjs", '--channel', "C:\\Users\\o'brien\\AppData\\Local\\Temp\\platter-elevate-AbC"], env: { ELECTRON_RUN_AS_NODE: '1' } };
  const c = elevationCommand('win32', helper, 'unused: UAC shows the program');
  assert.equal(c.file, 'powershell.exe');
  assert.deepEqual(c.args.slice(0, 3), ['-NoProfile', '-NonInteractive', '-EncodedCommand']);
  const outer = Buffer.from(c.args[3]!, 'base64').toString('utf16le');
  const m = /^\$ErrorActionPreference = 'Stop'; \$p = Start-Process -FilePath 'powershell\.exe' -ArgumentList @\('-NoProfile','-NonInteractive','-WindowStyle','Hidden','-EncodedCommand','([A-Za-z0-9+/=]+)'\) -Verb RunAs -WindowStyle Hidden -Wait -PassThru; exit \$p\.ExitCode$/.exec(outer);
  assert.ok(m, outer);
  const inner = Buffer.from(m[1]!, 'base64').toString('utf16le');
  assert.equal(inner, "$env:ELECTRON_RUN_AS_NODE = '1'; & 'C:\\Program Files\\Platter\\Platter.exe' 'C:\\Program Files\\Platter\\resources\\app.asar.unpacked\\dist\\electron\\elevated-worker.cjs' '--channel' 'C:\\Users\\o''brien\\AppData\\Local\\Temp\\platter-elevate-AbC'; exit $LASTEXITCODE");
  // Typographic quotes end a PowerShell string too: they are doubled like '.
  const q = Buffer.from(/'([A-Za-z0-9+/=]+)'\)/.exec(Buffer.from(elevationCommand('win32', { exe: 'a‘b’c', args: [] }, '').args[3]!, 'base64').toString('utf16le'))![1]!, 'base64').toString('utf16le');
  assert.equal(q, "& 'a‘‘b’’c'; exit $LASTEXITCODE");
});

test('an environment name that is not one, and an OS without a way to elevate, are refused', () => {
  assert.throws(() => elevationCommand('linux', { exe: '/x', args: [], env: { 'A=B': '1' } }, ''), /Not an environment variable name/);
  assert.throws(() => elevationCommand('freebsd', { exe: '/x', args: [] }, ''), /cannot ask for administrator rights on freebsd/);
});

test('refused or failed elevations are worded per platform', () => {
  const f = (p: NodeJS.Platform, e: Partial<Parameters<typeof elevationFailure>[1]>) => elevationFailure(p, { code: null, signal: null, stderr: '', ...e });
  assert.match(f('linux', { code: 126 }).message, /^The authorization was dismissed: the drive job did not run$/);
  assert.match(f('linux', { code: 127, stderr: 'Error executing command as another user: No authentication agent found.\n' }).message, /No polkit authentication agent is running/);
  assert.match(f('linux', { code: 127, stderr: 'Error executing command as another user: Not authorized\n' }).message, /^Administrator rights were not granted/);
  assert.match(f('linux', { spawnError: 'spawn /usr/bin/pkexec ENOENT' }).message, /pkexec, from polkit, is needed/);
  assert.match(f('darwin', { code: 1, stderr: '0:250: execution error: User canceled. (-128)\n' }).message, /^The authorization was cancelled/);
  assert.match(f('win32', { code: 1, stderr: 'Start-Process : This command cannot be run due to the error: The operation was canceled by the user.\n' }).message, /UAC prompt was declined or failed: Start-Process : .*canceled by the user/);
  assert.match(f('linux', { code: 2, stderr: 'Elevated helper: no token file\n' }).message, /ended without connecting \(exit status 2: Elevated helper: no token file\)/);
  for (const p of ['linux', 'darwin', 'win32'] as const) assert.equal(f(p, { code: 126 }).kind, 'Permission');
});

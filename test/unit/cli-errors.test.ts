// The platter CLI's error shape: one "platter: <message>" line on stderr, a non-zero exit status,
// qemu-img's words for bad sizes and options, no JS stack trace, and nothing changed on disk.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, REPO_ROOT } from '../helpers/qemu.ts';
import { platterInProcess } from '../interop/harness.ts';

function spawnPlatter(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/platter.mjs'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

const STACK = /\n\s+at .+:\d+:\d+/;

test('the real process: a missing image gives one stderr line and an unknown option qemu-img\'s two (the usage hint), exit 1, no stack trace', async () => {
  const t = tempDir();
  try {
    const [missing, unknown] = await Promise.all([spawnPlatter(['info', t.path('nope.qcow2')]), spawnPlatter(['info', '--bogus', 'x'])]);
    assert.equal(missing.status, 1);
    // As qemu-img 7.2: its prefix over the file protocol's own "Could not open 'x': ...".
    assert.equal(missing.stderr, `platter: Could not open '${t.path('nope.qcow2')}': Could not open '${t.path('nope.qcow2')}': No such file or directory\n`);
    assert.equal(missing.stdout, '');
    assert.equal(unknown.status, 1);
    assert.equal(unknown.stderr, "platter: unrecognized option '--bogus'\nTry 'platter --help' for more information\n");
    for (const r of [missing, unknown]) assert.doesNotMatch(r.stderr, STACK);
  } finally {
    t.cleanup();
  }
});

test('bad create sizes are refused with qemu-img create words and create no file', async () => {
  const t = tempDir();
  try {
    const f = t.path('x.raw');
    // Two error reports, as qemu-img's cvtnum prints them.
    const suffixWords = /^platter: Invalid image size specified\. You may use k, M, G, T, P or E suffixes for\nplatter: kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes\.\n$/;
    const rangeWords = /^platter: Invalid image size specified\. Must be between 0 and 9223372036854775807\.\n$/;
    const cases: [string, RegExp][] = [
      ['-1', suffixWords],
      ['1X', suffixWords],
      ['1.5', suffixWords],
      ['9223372036854775808', rangeWords],
      ['18446744073709551616', rangeWords],
    ];
    for (const [size, re] of cases) {
      const r = await platterInProcess(['create', '-f', 'raw', f, '--', size]);
      assert.equal(r.status, 1, size);
      assert.match(r.stderr, re, size);
      assert.equal(existsSync(f), false, `${size} created a file`);
    }
  } finally {
    t.cleanup();
  }
});

test('a directory, an unknown command, an unknown format and missing arguments are refused in qemu-img\'s words', async () => {
  const t = tempDir();
  try {
    const dir = t.path('d');
    mkdirSync(dir);
    const cases: [string[], RegExp][] = [
      [['info', dir], /^platter: Could not open '.*\/d': /],
      [['frobnicate'], /^platter: Command not found: frobnicate\n$/],
      // qemu-img names the image before bdrv_img_create's errors.
      [['create', '-f', 'nosuchfmt', t.path('y.img'), '1M'], /^platter: .*\/y\.img: Unknown file format 'nosuchfmt'\n$/],
      [['info'], /^platter: Expecting one image file name\nTry 'platter --help' for more information\n$/],
      [['info', '--output=xml', dir], /^platter: --output must be used with human or json as argument\.\n$/],
      [['create', '-f', 'raw', '-o', 'nosuch=1', t.path('y.img'), '1M'], /^platter: .*\/y\.img: Invalid parameter 'nosuch'\n$/],
      [['check', '-r', 'some', dir], /^platter: Unknown option value for -r \(expecting 'leaks' or 'all'\): some\nTry 'platter --help' for more information\n$/],
      [['info', '-f'], /^platter: missing argument for option '-f'\nTry 'platter --help' for more information\n$/],
    ];
    for (const [args, re] of cases) {
      const r = await platterInProcess(args);
      assert.notEqual(r.status, 0, args.join(' '));
      assert.match(r.stderr, re, args.join(' '));
      assert.doesNotMatch(r.stderr, STACK);
    }
    assert.deepEqual(readdirSync(t.dir), ['d'], 'an error left files behind');
  } finally {
    t.cleanup();
  }
});

test('a zero-length file opens as an empty raw image; writing commands on it change nothing on error', async () => {
  const t = tempDir();
  try {
    const f = t.path('zero.img');
    writeFileSync(f, '');
    const info = await platterInProcess(['info', '--output=json', f]);
    assert.equal(info.status, 0, info.stderr);
    assert.equal(JSON.parse(info.stdout)['virtual-size'], 0);
    const shrink = await platterInProcess(['resize', '-f', 'raw', f, '-1']);
    assert.equal(shrink.status, 1);
    assert.match(shrink.stderr, /^platter: New image size must be positive\n$/);
    assert.equal(readFileSync(f).length, 0);
  } finally {
    t.cleanup();
  }
});

// The command line as shipped (scripts/build-cli.mjs -> platter.cjs + platter-cli.cjs): it prints
// what the CLI run from source prints, with the same exit codes; its V8 code cache is written by
// a first run of each subcommand into the user's cache directory, used by later runs, and
// replaced when the bundle changes; PLATTER_CODE_CACHE=off runs without one. A convert through it
// (the form `npm run bench` measures) gives an image qemu-img finds identical to the source.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, realpathSync, symlinkSync, utimesSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { buildCli } from '../../scripts/build-cli.mjs';
import { tempDir, run, platter, qemuImg, qemuIo, REPO_ROOT, SKIP_NO_QEMU } from '../helpers/qemu.ts';

const t = tempDir('platter-cli-bundle-');
test.after(() => t.cleanup());

let cli: string | undefined;
async function builtCli(): Promise<string> {
  if (!cli) {
    const dir = t.path('cli');
    cli = await buildCli({ outDir: dir });
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(dir, 'node_modules'));
  }
  return cli;
}

function runCli(cmd: string, args: string[], cache: string, mode = 'debug') {
  return run(process.execPath, [cmd, ...args], { env: { ...process.env, XDG_CACHE_HOME: cache, PLATTER_CODE_CACHE: mode } });
}

const cacheFiles = (cache: string): string[] => {
  const dir = join(cache, 'platter', 'v8-code-cache');
  return existsSync(dir) ? readdirSync(dir).sort() : [];
};

test('the shipped CLI prints what the CLI from source prints, and writes then uses a code cache per subcommand', { skip: SKIP_NO_QEMU }, async () => {
  const cmd = await builtCli();
  const image = t.path('a.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', image, '64M');
  qemuIo('-f', 'qcow2', '-c', 'write -q -P 0x5a 1M 3M', image);
  const cache = t.path('cache1');
  const expected = platter(['info', image]);
  assert.equal(expected.status, 0, expected.stderr);

  const first = runCli(cmd, ['info', image], cache);
  assert.equal(first.status, 0, first.stderr);
  assert.equal(first.stdout, expected.stdout);
  assert.match(first.stderr, /code cache: none yet/);
  assert.match(first.stderr, /code cache: written .*cli-info-/);

  const second = runCli(cmd, ['info', image], cache);
  assert.equal(second.stdout, expected.stdout);
  assert.match(second.stderr, /code cache: used/);
  assert.doesNotMatch(second.stderr, /written/, 'a cache that was used is not rewritten');

  const map = runCli(cmd, ['map', '--output=json', image], cache);
  assert.equal(map.stdout, platter(['map', '--output=json', image]).stdout);
  assert.match(map.stderr, /code cache: none yet/, 'each subcommand has its own cache');
  assert.deepEqual(cacheFiles(cache).map((f) => f.split('-')[1]), ['info', 'map']);
});

test('the shipped CLI keeps the exit codes and error text of the CLI from source', async () => {
  const cmd = await builtCli();
  const cache = t.path('cache2');
  const missing = t.path('missing.qcow2');
  const expected = platter(['info', missing]);
  const got = runCli(cmd, ['info', missing], cache, 'off');
  assert.notEqual(expected.status, 0);
  assert.equal(got.status, expected.status);
  assert.equal(got.stderr, expected.stderr);
  assert.deepEqual(cacheFiles(cache), [], 'PLATTER_CODE_CACHE=off writes no cache');
});

test("a changed bundle makes the shipped CLI replace the old bundle's caches", async () => {
  const cmd = await builtCli();
  const cache = t.path('cache3');
  assert.equal(runCli(cmd, ['formats'], cache).status, 0);
  const before = cacheFiles(cache);
  assert.equal(before.length, 1);
  // A rebuild shows as a new modification time of the bundle.
  const bundle = join(t.path('cli'), 'platter-cli.cjs');
  utimesSync(bundle, new Date(), new Date(Date.now() + 5000));
  const again = runCli(cmd, ['formats'], cache);
  assert.match(again.stderr, /code cache: none yet/);
  const after = cacheFiles(cache);
  assert.equal(after.length, 1);
  assert.notEqual(after[0], before[0]);
});

test('a convert through the shipped CLI gives an image qemu-img compare finds identical (qemu-img compare)', { skip: SKIP_NO_QEMU }, async () => {
  const cmd = await builtCli();
  const src = t.path('src.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', src, '32M');
  qemuIo('-f', 'qcow2', '-c', 'write -q -P 0x11 0 5M', '-c', 'write -q -P 0x22 20M 3M', src);
  const out = t.path('out.qcow2');
  const r = runCli(cmd, ['convert', '-f', 'qcow2', '-O', 'qcow2', src, out], t.path('cache4'), 'on');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(run('qemu-img', ['compare', src, out]).status, 0);
  assert.equal(run('qemu-img', ['check', out]).status, 0);
});

test("the shipped CLI finds ssh2's native crypto binding through node_modules (where npm built it)", async (tc) => {
  const binding = join(REPO_ROOT, 'node_modules/ssh2/lib/protocol/crypto/build/Release/sshcrypto.node');
  if (!existsSync(binding)) return tc.skip('npm did not build ssh2\'s binding here (ssh2 then uses node:crypto)');
  const dir = join(await builtCli(), '..');
  const text = readFileSync(join(dir, 'platter-cli.cjs'), 'utf8');
  const names = [...text.matchAll(/require\("([^"]*sshcrypto\.node)"\)/g)].map((m) => m[1]!);
  assert.deepEqual(names, ['ssh2/lib/protocol/crypto/build/Release/sshcrypto.node']);
  // Resolved from the bundle's folder, as the bundle's require resolves it.
  assert.equal(createRequire(join(dir, 'platter-cli.cjs')).resolve(names[0]!), realpathSync(binding));
});

#!/usr/bin/env node
// Builds the `platter` command line as shipped (`npm run build` puts it in dist/cli; `npm run
// bench` measures it), with esbuild:
//   platter.cjs        the command: sets V8 flags, runs the CLI from a V8 code cache (cli-launcher.ts)
//   platter-cli.cjs    the CLI and all of core, one CommonJS file (koffi stays a native dependency)
//   worker-entry.cjs   the worker pool's entry (pool.ts finds it beside the bundle; CommonJS, so a
//                      worker starts without Node's ES module loader)
// CommonJS, because Node 20 offers a code cache only for scripts compiled through node:vm.
import { build } from 'esbuild';
import { mkdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The CLI never validates with the API's zod schemas (it builds its inputs itself, and loading zod
 * is a noticeable part of a start), yet the router it runs on names them: in the CLI bundle the
 * schema module is a stub with the same exports, each a placeholder that refuses to parse.
 */
const schemasStubbed = {
  name: 'schemas-stubbed',
  setup(b) {
    b.onLoad({ filter: /core\/api\/schemas\.ts$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      const names = [...text.matchAll(/^export const (\w+)/gm)].map((m) => m[1]);
      const stub = "const refuse = { safeParse() { throw new Error('the CLI bundle has no input schemas (create the service with validate: false)'); } };\n";
      return { contents: stub + names.map((n) => `export const ${n} = refuse;`).join('\n'), loader: 'js' };
    });
  },
};

/**
 * ssh2 loads its native crypto binding (AES-GCM and ChaCha20-Poly1305 in C, about twice as fast as
 * node:crypto's per-packet ciphers) by a path relative to its own file, which from the bundle
 * points nowhere: the require names the package's file instead, resolved through node_modules
 * beside the bundle as koffi is. Where it is missing (not built, another Node ABI), ssh2 falls
 * back to node:crypto by itself.
 */
const sshCryptoByPackage = {
  name: 'ssh2-crypto-by-package',
  setup(b) {
    b.onResolve({ filter: /sshcrypto\.node$/ }, () => ({ path: 'ssh2/lib/protocol/crypto/build/Release/sshcrypto.node', external: true }));
  },
};

/** Build the CLI into `outDir`; returns the path of the command (run it with node). */
/** Minified by default, as shipped: half the bytes to read, hash and parse at every start (about
 *  6 ms of a 75 ms convert start); `--no-minify` keeps names for reading stack traces. */
export async function buildCli({ outDir = join(ROOT, 'dist', 'cli'), minify = true } = {}) {
  mkdirSync(outDir, { recursive: true });
  const common = { bundle: true, platform: 'node', target: 'node20', external: ['koffi', 'cpu-features', '*.node'], minify, logLevel: 'warning' };
  const cjs = {
    ...common,
    format: 'cjs',
    // ASCII only (non-ASCII escaped, esbuild's default made explicit): the launcher reads the
    // bundle as latin1, five times faster than decoding UTF-8, and gets the same string.
    charset: 'ascii',
    banner: { js: "const __bundleUrl = require('node:url').pathToFileURL(__filename).href;" },
    define: { 'import.meta.url': '__bundleUrl' },
  };
  await build({ ...cjs, entryPoints: [join(ROOT, 'scripts/cli-launcher.ts')], outfile: join(outDir, 'platter.cjs') });
  await build({ ...cjs, entryPoints: [join(ROOT, 'scripts/cli-entry.ts')], outfile: join(outDir, 'platter-cli.cjs'), plugins: [schemasStubbed, sshCryptoByPackage] });
  await build({ ...cjs, entryPoints: [join(ROOT, 'core/workers/worker-main.ts')], outfile: join(outDir, 'worker-entry.cjs') });
  if (readFileSync(join(outDir, 'platter-cli.cjs')).some((b) => b > 0x7f)) throw new Error('platter-cli.cjs has non-ASCII bytes: the launcher reads it as latin1');
  return join(outDir, 'platter.cjs');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const t0 = Date.now();
  const cmd = await buildCli({ minify: !process.argv.includes('--no-minify') });
  console.log(`built the CLI (${cmd}) in ${Date.now() - t0} ms`);
}

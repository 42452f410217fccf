#!/usr/bin/env node
// Entry point of the `platter` command line: loads the TypeScript sources through tsx, so the CLI
// runs straight from a checkout with no build step, then hands over to core/cli.
import { availableParallelism } from 'node:os';

// fs, zlib and crypto share libuv's pool (4 threads by default): size it for several requests in
// flight per core before anything uses it (PERFORMANCE-NOTES.md).
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(8, availableParallelism() * 4));
const { register } = await import('tsx/esm/api');
register();
const { main } = await import('../core/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));

#!/usr/bin/env node
// Entry point of the `platter` command line: loads the TypeScript sources through tsx, so the CLI
// runs straight from a checkout with no build step, then hands over to core/cli.
//
// libuv's thread pool keeps its default size (4 threads). Setting UV_THREADPOOL_SIZE here would do
// nothing: Node's ES module loader has already started the pool to read this file. And sizing it
// does not pay for Platter: zlib and the ciphers run in Platter's worker threads, not in the pool,
// and a 1.25 GiB convert on 2 cores took the same time with 2, 3, 4 or 8 pool threads (within the
// noise; 8 was slowest).
const { register } = await import('tsx/esm/api');
register();
const { main } = await import('../core/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));

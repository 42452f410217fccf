#!/usr/bin/env node
// Entry point of the `platter` command line: loads the TypeScript sources through tsx, so the CLI
// runs straight from a checkout with no build step, then hands over to core/cli.
//
// libuv's thread pool keeps its default size (4 threads) here: setting UV_THREADPOOL_SIZE in this
// file would do nothing, since Node's ES module loader has already started the pool to read it.
// The shipped CLI (scripts/cli-launcher.ts) is CommonJS and sizes the pool to the cores before
// the pool starts.
const { register } = await import('tsx/esm/api');
register();
// Registered after tsx, so it sees core/api/schemas.ts first: the CLI loads no zod.
(await import('node:module')).register('./cli-without-schemas.mjs', import.meta.url);
const { main } = await import('../core/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
// A native call given up on (a gluster server that never answers) would keep the process alive.
const abandoned = await import('../core/util/abandoned-calls.ts');
if (abandoned.abandonedNativeCalls() > 0) abandoned.exitSkippingHandlers(process.exitCode);

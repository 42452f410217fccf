#!/usr/bin/env node
// Entry point of the `platter` command line: loads the TypeScript sources through tsx, so the CLI
// runs straight from a checkout with no build step, then hands over to core/cli.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../core/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));

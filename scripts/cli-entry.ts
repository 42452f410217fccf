// Entry of the bundled command line (scripts/build-cli.mjs): CommonJS has no top-level await.
import { main } from '../core/cli/main.ts';

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});

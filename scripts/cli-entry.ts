// Entry of the bundled command line (scripts/build-cli.mjs): CommonJS has no top-level await.
import { main } from '../core/cli/main.ts';
import { abandonedNativeCalls, exitSkippingHandlers } from '../core/util/abandoned-calls.ts';

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  // A native call given up on (a gluster server that never answers) would keep the process alive.
  if (abandonedNativeCalls() > 0) exitSkippingHandlers(code);
});

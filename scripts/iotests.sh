#!/usr/bin/env bash
# npm run iotests [-- LIST]: QEMU 7.2's own qemu-iotests with Platter's shipped CLI standing in for
# qemu-img (qemu-io and qemu-nbd stay QEMU's), through the shared runner ../shared/iotests/run.sh
# (it fetches the QEMU source package into a cache on first use). LIST: lines "FORMAT TEST"
# (default: every pair that passes with the real qemu-img, ../shared/iotests/expected-pass.txt).
# The figures per format are kept in docs/conformance.md. IOTESTS_LOGDIR=DIR keeps the diffs.
set -euo pipefail
cd "$(dirname "$0")/.."
runner=../shared/iotests/run.sh
if [ ! -f "$runner" ]; then
  echo "iotests: $runner not found (the shared folder is absent): nothing to run"
  exit 0
fi
node scripts/build-cli.mjs >/dev/null
exec bash "$runner" "node $PWD/dist/cli/platter.cjs" "$@"

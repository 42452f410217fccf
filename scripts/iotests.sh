#!/usr/bin/env bash
# npm run iotests [-- LIST]: QEMU 7.2's own qemu-iotests with Platter's shipped CLI standing in for
# qemu-img (qemu-io and qemu-nbd stay QEMU's), through the shared runner ../shared/iotests/run.sh
# (it fetches the QEMU source package into a cache on first use). LIST: lines "FORMAT TEST"
# (default: every pair that passes with the real qemu-img, ../shared/iotests/expected-pass.txt).
# Prints the runner's output, then the passes per format (the table in docs/conformance.md).
# IOTESTS_LOGDIR=DIR keeps the diffs of failing tests.
set -euo pipefail
cd "$(dirname "$0")/.."
runner=../shared/iotests/run.sh
list=${1:-../shared/iotests/expected-pass.txt}
if [ ! -f "$runner" ]; then
  echo "iotests: $runner not found (the shared folder is absent): nothing to run"
  exit 0
fi
node scripts/build-cli.mjs >/dev/null
out=$(mktemp); trap 'rm -f "$out"' EXIT
status=0
bash "$runner" "node $PWD/dist/cli/platter.cjs" "$list" | tee "$out" || status=$?
echo "passes per format (of the pairs that pass with qemu-img 7.2 here):"
grep -v '^#' "$list" | awk 'NF==2' | while read -r fmt t; do
  if grep -qx "FAIL $fmt $t" "$out"; then echo "$fmt fail"; else echo "$fmt pass"; fi
done | sort | uniq -c | awk '{n[$2]+=$1; if ($3=="pass") p[$2]+=$1} END {for (f in n) printf "  %-6s %3d of %3d\n", f, p[f], n[f]}' | sort
exit $status

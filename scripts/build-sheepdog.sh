#!/usr/bin/env bash
# Builds (once) the sheepdog daemon `sheep` and CLI `dog` from the vendored source
# (../shared/vendor/sheepdog relative to the repo root) into a cache directory keyed by the
# tarball's hash, so repeated test runs and CI reuse one build. Prints the directory on stdout.
# Usage: scripts/build-sheepdog.sh  [VENDOR_DIR]
# Exit 2: vendored source absent; exit 1: build failed (log in the cache dir).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
vendor=${1:-${PLATTER_SHEEPDOG_VENDOR:-$root/../shared/vendor/sheepdog}}
if [ ! -x "$vendor/build.sh" ] && [ ! -f "$vendor/build.sh" ]; then
  echo "sheepdog source not found at $vendor" >&2
  exit 2
fi
tarball=$(ls "$vendor"/sheepdog-*.tar.gz 2>/dev/null | head -1)
if [ -z "$tarball" ]; then
  echo "sheepdog tarball not found in $vendor" >&2
  exit 2
fi
hash=$( (sha256sum "$tarball"; sha256sum "$vendor/build.sh") | sha256sum | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/platter/sheepdog-$hash
if [ -x "$cache/sheep" ] && [ -x "$cache/dog" ]; then
  echo "$cache"
  exit 0
fi
mkdir -p "$(dirname "$cache")"
# One builder at a time: concurrent test files wait for the first build instead of racing it.
exec 9>"$cache.lock"
flock 9
if [ -x "$cache/sheep" ] && [ -x "$cache/dog" ]; then
  echo "$cache"
  exit 0
fi
tmp="$cache.tmp.$$"
rm -rf "$tmp"
if ! bash "$vendor/build.sh" "$tmp" >"$cache.log" 2>&1; then
  rm -rf "$tmp"
  echo "sheepdog build failed (log: $cache.log)" >&2
  exit 1
fi
rm -rf "$cache"
mv "$tmp" "$cache"
echo "$cache"

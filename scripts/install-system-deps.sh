#!/usr/bin/env bash
# Installs the system packages Platter's tests use as oracles and peers (Debian/Ubuntu, as root or
# with sudo): QEMU's tools, cryptsetup, nbdkit, and Chromium for the end-to-end tests.
# Idempotent: skips apt-get when everything is already there.
set -euo pipefail
need=()
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
command -v cryptsetup >/dev/null 2>&1 || need+=(cryptsetup-bin)
command -v nbdkit >/dev/null 2>&1 || need+=(nbdkit)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v file >/dev/null 2>&1 || need+=(file)
if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "system packages: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"

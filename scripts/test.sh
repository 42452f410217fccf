#!/usr/bin/env bash
# The one command that installs everything and passes every test on a fresh machine:
#   bash scripts/test.sh
# System peers (QEMU's tools and block modules, cryptsetup, nbdkit, libnbd, sshd, tgt, libiscsi, dosfstools,
# mtools, bximage, cloop-utils, certtool, chromium: scripts/install-system-deps.sh) via apt-get, npm packages via
# `npm ci` (the Electron binary is never downloaded: no test needs it), then `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
export ELECTRON_SKIP_BINARY_DOWNLOAD=1
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm test

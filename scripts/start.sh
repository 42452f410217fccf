#!/usr/bin/env bash
# The one command that installs and runs Platter on a fresh machine:
#   bash scripts/start.sh
# Installs npm packages (and, where it can, the Electron binary), builds, and launches the desktop
# app; where Electron cannot run it starts browser mode and prints the URL to open.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ]; then
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
fi
exec npm start -- "$@"

#!/usr/bin/env bash
# Installs automerge-repo 2.x for the `compare` binary's node peer into
# benches/compare/node/node_modules, exactly as package-lock.json pins it.
# Needs node >= 20 and npm. Run: bash benches/compare/setup.sh
set -euo pipefail
cd "$(dirname "$0")/node"
node --version >/dev/null
npm ci --no-audit --no-fund
echo "automerge-repo peer installed in $(pwd)/node_modules"

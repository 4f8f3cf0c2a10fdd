#!/usr/bin/env bash
# Installs automerge-repo 2.x for the `compare` binary's node peer into
# benches/compare/node/node_modules, exactly as package-lock.json pins it.
# Needs node >= 20 and npm. Run: bash benches/compare/setup.sh
# package.json pins cbor-extract to 2.2.2 (an override): the registry has its platform
# binaries only at 2.2.2, and with 2.2.3 npm wrote a lock file its own `npm ci` refused.
set -euo pipefail
cd "$(dirname "$0")/node"
node --version >/dev/null
npm ci --no-audit --no-fund
echo "automerge-repo peer installed in $(pwd)/node_modules"

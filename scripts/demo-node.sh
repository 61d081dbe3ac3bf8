#!/usr/bin/env bash
# Runs the Node quick start (examples/node-quickstart): builds ./node from
# source if it is not built yet (npm ci, npm run build: needs cargo), npm
# install (which links titan-pm from ./node), then compiles it with
# TypeScript's standard decorators and with experimentalDecorators, and runs
# the host each time.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
if ! ls node/native/*.node node/dist/index.js >/dev/null 2>&1; then
    (cd node && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && node scripts/build.js)
fi
cd examples/node-quickstart
npm install --no-audit --no-fund --loglevel=error
echo "=== node quick start (standard decorators)"
npx tsc
node dist/main.js
echo "=== node quick start (experimentalDecorators)"
npx tsc -p tsconfig.experimental.json
node dist-experimental/main.js

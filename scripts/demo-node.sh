#!/usr/bin/env bash
# Runs the Node quick start (examples/node-quickstart): npm install (which
# builds titan-pm from ./node), then compiles it with TypeScript's standard
# decorators and with experimentalDecorators, and runs the host each time.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cd examples/node-quickstart
npm install --no-audit --no-fund --loglevel=error
echo "=== node quick start (standard decorators)"
npx tsc
node dist/main.js
echo "=== node quick start (experimentalDecorators)"
npx tsc -p tsconfig.experimental.json
node dist-experimental/main.js

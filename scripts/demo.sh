#!/usr/bin/env bash
# Builds everything and runs the demo: a Rust host driving the Rust calculator
# worker (results, health and metrics), then the Python and Node quick starts
# where those packages are present.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --workspace
"$CARGO_TARGET_DIR/release/demo"
[ -x scripts/demo-python.sh ] && scripts/demo-python.sh
[ -x scripts/demo-node.sh ] && scripts/demo-node.sh
exit 0

#!/usr/bin/env bash
# Sets up the Node package on a fresh machine and runs its tests: npm ci in
# node/, builds the native addon (napi build, release; or, with
# TITAN_NODE_ADDON=path, takes that prebuilt addon: scripts/test.sh passes the
# release addon scripts/build-npm.sh built once) and compiles the TypeScript, compiles the test workers under both decorator modes, builds the
# workspace (the Rust example worker the cross-language tests spawn) and, when
# the Python package is in the checkout, installs it into .venv if needed.
# Runs node:test; its summary is the last lines. Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR=never
command -v cargo >/dev/null || . "$HOME/.cargo/env"

step() { echo "--- $*"; }
die() { echo "test-node: $*" >&2; exit 1; }

command -v node >/dev/null || die "node is missing (Node 20 or newer is needed)"
[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] || die "Node 20 or newer is needed (found $(node --version))"

step "npm ci in node/"
(cd node && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) || die "npm ci failed"
if [ -n "${TITAN_NODE_ADDON:-}" ]; then
    step "taking the addon $TITAN_NODE_ADDON and compiling the TypeScript"
    [ -f node/native/binding.js ] || die "node/native/binding.js is missing (scripts/build-npm.sh writes it)"
    cp "$TITAN_NODE_ADDON" node/native/ || die "cannot copy $TITAN_NODE_ADDON"
    (cd node && npx tsc -p tsconfig.json) || die "tsc failed"
else
    step "building the addon and compiling the TypeScript"
    (cd node && node scripts/build.js) || die "the build failed"
fi
step "compiling the test workers (standard and experimental decorators)"
for mode in standard experimental; do
    (cd node && npx tsc -p "test/fixtures/tsconfig.$mode.json") || die "the $mode fixtures do not compile"
done
step "building the workspace"
# --all-targets, as scripts/test.sh builds it: the same features, so nothing compiles twice.
cargo build --workspace --all-targets --quiet || die "cargo build failed"
if [ -d python ]; then
    venv="$PWD/.venv"
    if ! "$venv/bin/python" -c "import titan_pm" 2>/dev/null; then
        step "installing ./python into $venv (for the cross-language tests)"
        [ -x "$venv/bin/python" ] || python3 -m venv "$venv" || die "cannot create $venv"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check ./python || die "cannot install ./python"
    fi
    export TITAN_TEST_PYTHON="$venv/bin/python"
fi

step "rust host -> node worker (child process)"
status=0
TITAN_TEST_NODE_WORKER="$PWD/node/test/build/standard/calculator.js" \
    cargo test --quiet -p titan-pm-tests --test node_worker -- --ignored || status=1
if [ -n "${TITAN_TEST_PYTHON:-}" ]; then
    step "python, node and rust workers dialling in from another network namespace"
    TITAN_TEST_NODE_WORKER="$PWD/node/test/build/standard/calculator.js" \
        cargo test --quiet -p titan-pm-tests --test remote_workers \
        python_node_and_rust_workers_from_another_namespace_share_a_pool -- --exact --nocapture || status=1
fi

step "node --test"
cd node && node --test --test-force-exit --test-reporter=tap --test-concurrency=1 test/*.test.js || status=1
exit $status

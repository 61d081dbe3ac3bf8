#!/usr/bin/env bash
# Sets up the Python package on a fresh machine and runs its tests: creates
# .venv with `python3 -m venv` if missing, installs maturin, pytest and
# pytest-timeout (and pydantic, for the value rule tests) into it, builds and installs ./python (sharing
# CARGO_TARGET_DIR; or, with TITAN_PYTHON_WHEEL=path, installs that wheel: scripts/test.sh
# passes the release wheel it built once), builds the workspace (the Rust example worker the
# cross-language tests spawn), runs the Rust tests that drive a .py worker,
# then pytest, whose summary is the last line. Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR=never
venv="$PWD/.venv"
python="$venv/bin/python"

step() { echo "--- $*"; }

if [ ! -x "$python" ]; then
    step "creating $venv"
    python3 -m venv "$venv" || exit 1
fi
step "installing maturin, pytest, pytest-timeout, pydantic (for the value rule tests)"
"$python" -m pip install -q --disable-pip-version-check maturin pytest pytest-timeout pydantic || exit 1
if [ -n "${TITAN_PYTHON_WHEEL:-}" ]; then
    step "installing $(basename "$TITAN_PYTHON_WHEEL")"
    "$python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$TITAN_PYTHON_WHEEL" || exit 1
else
    step "building and installing ./python"
    "$python" -m pip install -q --disable-pip-version-check ./python || exit 1
fi
step "building the workspace"
# --all-targets, as scripts/test.sh builds it: the same features, so nothing compiles twice.
cargo build --workspace --all-targets --quiet || exit 1

status=0
step "rust host -> python worker"
TITAN_TEST_PYTHON="$python" cargo test --quiet -p titan-pm-tests --test python_worker -- --ignored || status=1
step "pytest"
"$python" -m pytest -p no:cacheprovider python/tests || status=1
exit $status

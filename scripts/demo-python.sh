#!/usr/bin/env bash
# Runs the Python quick start (examples/python-quickstart): sets up .venv with
# the package if needed, then runs the asyncio host and the blocking host.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
python="$PWD/.venv/bin/python"
[ -x "$python" ] || python3 -m venv .venv
"$python" -c "import titan_pm" 2>/dev/null || "$python" -m pip install -q --disable-pip-version-check ./python
echo "=== python quick start (asyncio host)"
"$python" examples/python-quickstart/main.py
echo "=== python quick start (blocking host)"
"$python" examples/python-quickstart/sync_main.py

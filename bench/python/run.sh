#!/usr/bin/env bash
# Runs the Python benchmark with the repository's .venv (set up by scripts/test-python.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
python="$PWD/.venv/bin/python"
[ -x "$python" ] || { python3 -m venv .venv; }
"$python" -c "import titan_pm" 2>/dev/null || "$python" -m pip install -q ./python
exec "$python" bench/python/bench.py

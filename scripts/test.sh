#!/usr/bin/env bash
# Runs every test of the repository: the schema check, the Rust workspace, and
# the Python and Node packages. Installs what it needs; exits non-zero if any
# test fails, and ends with each runner's own summary lines.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR=never
# One build from scratch: incremental caches only cost disk here.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
logs=$(mktemp -d)
status=0
times=""

run() { # run NAME CMD... : runs one suite, keeps its log, remembers a failure
  local name=$1; shift
  echo "=== $name"
  local t0=$SECONDS
  "$@" 2>&1 | tee "$logs/$name.log"
  local rc=${PIPESTATUS[0]}
  times+="$name $((SECONDS - t0))s, "
  [ "$rc" = 0 ] || { echo "=== $name failed (exit $rc)"; status=1; }
}

# Debian packages the tests use: tmux (the `titan-pm monit` test drives the terminal view through
# it) and postgresql (the Postgres workflow journal's tests start a private server from it).
apt_install() { # apt_install PACKAGE CHECK...: installs PACKAGE unless CHECK succeeds (as root, with apt)
  local package=$1; shift
  "$@" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get install -y -qq "$package" >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq "$package" >/dev/null; }) \
      || echo "test.sh: could not install $package; the tests that need it will say so"
  else
    echo "test.sh: $package is missing (apt-get install $package); the tests that need it will say so"
  fi
}
apt_install tmux command -v tmux
apt_install postgresql compgen -G "/usr/lib/postgresql/*/bin/initdb"
run schema scripts/check-schema.sh
run rust-build cargo build --workspace --all-targets
run rust cargo test --workspace --quiet --no-fail-fast
# The release artifacts, built once (one release build of the core, shared by the wheel and
# the addon): the Python and Node suites below test them, and the install suite installs them.
run build-wheels scripts/build-wheels.sh dist/python
run build-npm scripts/build-npm.sh dist/npm
wheel=$(ls dist/python/titan_pm-*.whl 2>/dev/null | head -1)
addon=$(ls "$CARGO_TARGET_DIR"/titan-npm/*.node 2>/dev/null | head -1)
run python env TITAN_PYTHON_WHEEL="$wheel" scripts/test-python.sh
run node env TITAN_NODE_ADDON="$addon" scripts/test-node.sh
# The README's Python and TypeScript blocks run (its Rust blocks are the crate tests/readme, built above).
run readme .venv/bin/python tests/readme/check.py --python .venv/bin/python
# The release artifacts (wheel, sdist, npm tarballs) installed as a user would, the quick starts, the typing check.
run install env TITAN_INSTALL_REUSE=1 scripts/test-install.sh

echo
echo "=== summary"
echo "time per suite: ${times%, }; disk used by $CARGO_TARGET_DIR: $(du -sh "$CARGO_TARGET_DIR" 2>/dev/null | cut -f1)"
grep -h "^test result:" "$logs/rust.log" 2>/dev/null | awk '{p+=$4; f+=$6} END {printf "cargo: %d passed, %d failed\n", p, f}'
[ -f "$logs/python.log" ] && grep -E "^=+ .*(passed|failed|error).* =+$" "$logs/python.log" | tail -1
[ -f "$logs/node.log" ] && grep -E "^# (tests|pass|fail) " "$logs/node.log" | tail -3
[ -f "$logs/readme.log" ] && grep -E "^readme: [0-9]+ passed, [0-9]+ failed$" "$logs/readme.log" | tail -1
[ -f "$logs/install.log" ] && grep -E "^install: [0-9]+ passed, [0-9]+ failed$" "$logs/install.log" | tail -1
exit $status

#!/usr/bin/env bash
# Installs titan-pm as a user would and runs the quick starts from what got
# installed: builds the release artifacts (scripts/build-wheels.sh,
# scripts/build-npm.sh) into dist/, then
#   - the wheel into a fresh venv, offline (--no-index) with no Rust toolchain
#     on PATH, checks its `titan-pm` command runs, and runs
#     examples/python-quickstart (asyncio and blocking hosts);
#   - the sdist into another fresh venv: it builds from source with cargo;
#   - the typing check (tests/typing: mypy and pyright on a user script that
#     must pass and on one with typos that must fail), mypy installed into that
#     venv, pyright from npm into a temporary folder;
#   - the packed npm tarballs (main + platform) into a fresh project, offline,
#     with no cargo on PATH, checks node_modules/.bin/titan-pm runs, then
#     compiles examples/node-quickstart against the installed types and runs it.
# Prints each check as "ok NAME" / "FAIL NAME", the measured install times and
# sizes, and ends with "install: N passed, N failed". Exits non-zero on any failure.
# TITAN_INSTALL_REUSE=1 skips the builds and uses what dist/ holds.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR=never
command -v cargo >/dev/null || . "$HOME/.cargo/env"
dist="$repo/dist"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
# A user's PATH: no cargo, rustc or zig (the installs must not compile anything).
user_path=$(echo "$PATH" | tr ':' '\n' | grep -v -e '\.cargo/bin' -e "$repo/.venv" | paste -sd: -)

step() { echo "--- $*"; }
ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1${2:+: $2}"; failed=$((failed + 1)); }
check() { # check NAME CMD...: runs CMD, counts it
    local name=$1; shift
    if "$@"; then ok "$name"; else fail "$name"; fi
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
under() { awk -v t="$1" -v max="$2" 'BEGIN { exit !(t < max) }'; }
summary() { echo "install: $passed passed, $failed failed"; [ "$failed" = 0 ]; exit $?; }

if [ "${TITAN_INSTALL_REUSE:-}" != 1 ]; then
    step "building the wheel and the sdist"
    check build-wheels bash scripts/build-wheels.sh "$dist/python"
    step "building the npm packages"
    check build-npm bash scripts/build-npm.sh "$dist/npm"
fi

# --- Python
wheel=$(ls "$dist"/python/titan_pm-*.whl 2>/dev/null | head -1)
if [ -n "$wheel" ]; then
    step "pip install $(basename "$wheel") into a fresh venv (offline, no cargo on PATH)"
    python3 -m venv "$work/venv"
    py="$work/venv/bin/python"
    t0=$(now)
    if PATH="$user_path" "$py" -m pip install -q --disable-pip-version-check --no-index --only-binary :all: "$wheel"; then
        t=$(secs "$t0" "$(now)")
        echo "wheel install: $t s"
        if under "$t" 60; then ok pip-install; else fail pip-install "took $t s"; fi
    else
        fail pip-install
    fi
    quickstart() { # runs one host of the quick start from a copy, checks its output
        local out
        out=$(cd "$work" && PATH="$user_path" timeout 120 "$py" "$work/python-quickstart/$1" 2>&1)
        local rc=$?
        echo "$out"
        [ "$rc" = 0 ] && grep -q "add(5, 3) = 8" <<<"$out"
    }
    cli_command() { # the wheel's titan-pm script runs the CLI (no manager: a clear error, exit 1)
        local out
        PATH="$user_path" "$work/venv/bin/titan-pm" --version | grep -q '^titan-pm ' || return 1
        out=$(PATH="$user_path" "$work/venv/bin/titan-pm" --socket "$work/none.sock" ls 2>&1)
        [ $? = 1 ] && grep -q "no manager is serving" <<<"$out"
    }
    check python-cli-command cli_command
    cp -r examples/python-quickstart "$work/python-quickstart"
    check python-quickstart-asyncio quickstart main.py
    check python-quickstart-blocking quickstart sync_main.py

    if [ -d tests/typing ]; then
        step "typing check (mypy and pyright on tests/typing against the installed wheel)"
        mkdir -p "$work/pyright" && echo '{ "name": "pyright-tool", "private": true }' > "$work/pyright/package.json"
        if "$py" -m pip install -q --disable-pip-version-check "mypy>=1.10" \
            && (cd "$work/pyright" && npm install --no-audit --no-fund --loglevel=error "pyright@1" >/dev/null); then
            check typing env PYRIGHT="$work/pyright/node_modules/.bin/pyright" bash tests/typing/run.sh "$py"
        else
            fail typing "cannot install mypy and pyright"
        fi
    fi
else
    fail pip-install "no wheel in $dist/python"
fi

# --- The sdist builds from source (cargo; the build backend, maturin, comes from PyPI)
sdist=$(ls "$dist"/python/titan_pm-*.tar.gz 2>/dev/null | head -1)
if [ -n "$sdist" ]; then
    step "pip install $(basename "$sdist") into a fresh venv (builds with cargo)"
    python3 -m venv "$work/sdist-venv"
    # The same target and linker as the release builds, so cargo reuses their compiled
    # dependencies (the crates of the sdist itself still compile from its sources).
    venv="$repo/.venv"
    . scripts/zig-linker.sh && export MATURIN_PEP517_ARGS="--target $triple"
    t0=$(now)
    if "$work/sdist-venv/bin/python" -m pip install -q --disable-pip-version-check "$sdist" \
        && (cd "$work" && "$work/sdist-venv/bin/python" -c "from titan_pm import _native; assert _native.roundtrip({'a': [1, 2.5, b'x']}) == {'a': [1, 2.5, b'x']}"); then
        echo "sdist build and install: $(secs "$t0" "$(now)") s"
        ok sdist-builds
    else
        fail sdist-builds
    fi
else
    fail sdist-builds "no sdist in $dist/python"
fi

# --- Node
main_tgz=$(ls "$dist"/npm/titan-pm-[0-9]*.tgz 2>/dev/null | head -1)
platform_tgz=$(ls "$dist"/npm/titan-pm-linux-*.tgz 2>/dev/null | head -1)
if [ -n "$main_tgz" ] && [ -n "$platform_tgz" ]; then
    step "npm install of $(basename "$main_tgz") and $(basename "$platform_tgz") into a fresh project (offline, no cargo on PATH)"
    app="$work/node-app"
    mkdir -p "$app"
    echo '{ "name": "node-app", "private": true }' > "$app/package.json"
    t0=$(now)
    if (cd "$app" && PATH="$user_path" npm install --offline --no-audit --no-fund --loglevel=error "$main_tgz" "$platform_tgz"); then
        t=$(secs "$t0" "$(now)")
        echo "npm install: $t s"
        if under "$t" 60; then ok npm-install; else fail npm-install "took $t s"; fi
        echo "node_modules: $(du -sh "$app/node_modules" | cut -f1) ($(find "$app/node_modules" -type f | wc -l) files)"
        stray=$(find "$app/node_modules" \( -name '*.rs' -o -name 'Cargo.toml' -o -name target -o -name '*.ts' -not -name '*.d.ts' \) | head -3)
        if [ -z "$stray" ]; then ok npm-contents; else fail npm-contents "ships $stray"; fi
        scripts=$(node -e 'const p=require(process.argv[1]); console.log(Object.keys(p.scripts||{}).filter(s=>/^(pre|post)?install$|^prepare$/.test(s)).join(" "))' "$app/node_modules/titan-pm/package.json")
        if [ -z "$scripts" ]; then ok npm-no-install-script; else fail npm-no-install-script "has $scripts"; fi
        npm_cli_command() { # npm linked the package's titan-pm bin, and it runs the CLI
            local out
            PATH="$user_path" "$app/node_modules/.bin/titan-pm" --version | grep -q '^titan-pm ' || return 1
            out=$(PATH="$user_path" "$app/node_modules/.bin/titan-pm" --socket "$work/none.sock" ls 2>&1)
            [ $? = 1 ] && grep -q "no manager is serving" <<<"$out"
        }
        check npm-cli-command npm_cli_command
        cp -r examples/node-quickstart/src examples/node-quickstart/tsconfig.json "$app/"
        node_quickstart() {
            (cd "$app" && node "$repo/node/node_modules/typescript/bin/tsc" -p tsconfig.json --typeRoots "$repo/node/node_modules/@types") || return 1
            local out
            out=$(cd "$app" && PATH="$user_path" timeout 120 node dist/main.js 2>&1)
            local rc=$?
            echo "$out"
            [ "$rc" = 0 ] && grep -q "add(5, 3) = 8" <<<"$out" && grep -q "in a child process: divide(10, 3) = 3.3" <<<"$out"
        }
        check node-quickstart node_quickstart
    else
        fail npm-install
    fi
else
    fail npm-install "no tarballs in $dist/npm"
fi

summary

#!/usr/bin/env bash
# Builds the Python release artifacts into dist/python (or the folder given as
# $1): an abi3 wheel (CPython 3.9+) tagged manylinux_2_28, and an sdist.
#
# The wheel is linked with zig (PyPI's `ziglang`, scripts/zig-linker.sh)
# against glibc 2.28, so it installs without compiling on any x86_64/aarch64
# Linux with glibc 2.28 or newer (Debian 10+, Ubuntu 18.10+, RHEL 8+); maturin
# checks the symbols for the tag, and `auditwheel show` must agree with it or
# this script fails. The sdist holds the Python
# package and the Rust sources (core/, cli/, bindings/python/) with a workspace of
# their own: `pip install titan_pm-*.tar.gz` builds it with cargo.
#
# Installs maturin, ziglang and auditwheel into .venv (created if missing).
# Shares CARGO_TARGET_DIR: the build goes to $CARGO_TARGET_DIR/<triple>/release
# with the same linker setting as scripts/build-npm.sh, so the two share the
# compiled dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR=never
command -v cargo >/dev/null || . "$HOME/.cargo/env"
out="$(mkdir -p "${1:-dist/python}" && cd "${1:-dist/python}" && pwd)"
venv="$PWD/.venv"
tag=manylinux_2_28

step() { echo "--- $*"; }
die() { echo "build-wheels: $*" >&2; exit 1; }

[ -x "$venv/bin/python" ] || python3 -m venv "$venv" || die "cannot create $venv"
step "installing maturin, ziglang, auditwheel into $venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.9,<2" "ziglang==0.17.1" "auditwheel>=6,<7" \
    || die "cannot install the build tools"
export PATH="$venv/bin:$PATH"
. scripts/zig-linker.sh || die "cannot set up the zig linker"

rm -f "$out"/titan_pm-*.whl "$out"/titan_pm-*.tar.gz
step "building the $tag abi3 wheel ($triple, linked by zig against glibc $GLIBC)"
(cd python && maturin build --release --target "$triple" --compatibility "$tag" --out "$out") || die "the wheel build failed"
step "building the sdist"
(cd python && maturin sdist --out "$out") || die "the sdist build failed"

wheel=$(ls "$out"/titan_pm-*.whl)
step "auditwheel show $(basename "$wheel")"
report=$(auditwheel show "$wheel" | tr '\n' ' ' | tr -s ' ') || die "auditwheel show failed"
echo "$report"
arch=$(uname -m)
[[ "$(basename "$wheel")" == *"-abi3-${tag}_${arch}.whl" ]] || die "the wheel is not tagged abi3 ${tag}_${arch}: $(basename "$wheel")"
[[ "$report" == *"consistent with the following platform tag: \"${tag}_${arch}\""* ]] \
    || die "auditwheel does not agree with the ${tag}_${arch} tag"
sdist=$(ls "$out"/titan_pm-*.tar.gz)
listing=$(tar tzf "$sdist") || die "cannot list $sdist"
for f in pyproject.toml Cargo.toml Cargo.lock core/Cargo.toml cli/Cargo.toml bindings/python/Cargo.toml titan_pm/py.typed titan_pm/_cli.py; do
    grep -qx "titan_pm-[^/]*/$f" <<<"$listing" || die "the sdist lacks $f"
done
ls -l "$out"

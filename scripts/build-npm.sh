#!/usr/bin/env bash
# Builds the npm release tarballs into dist/npm (or the folder given as $1):
#   titan-pm-<version>.tgz                   JS, .d.ts and the napi loader only
#   titan-pm-linux-x64-gnu-<version>.tgz     the prebuilt addon (node/npm/linux-x64-gnu)
# The main package names the platform packages in optionalDependencies (the
# napi-rs layout, added by node/scripts/pack.js), so `npm install titan-pm`
# fetches the one matching the machine and compiles nothing.
#
# The addon is built with `napi build --release --target <triple>` and linked
# with zig against glibc 2.28 (scripts/zig-linker.sh, the same linker setting
# as scripts/build-wheels.sh, so the two share the compiled dependencies in
# $CARGO_TARGET_DIR/<triple>/release); this script fails if it needs a newer
# glibc symbol. Installs maturin and ziglang into .venv if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR=never
command -v cargo >/dev/null || . "$HOME/.cargo/env"
out="$(mkdir -p "${1:-dist/npm}" && cd "${1:-dist/npm}" && pwd)"
venv="$PWD/.venv"

step() { echo "--- $*"; }
die() { echo "build-npm: $*" >&2; exit 1; }

. scripts/zig-linker.sh || die "cannot set up the zig linker"
pkgdir="$PWD/node/npm/$platform"
[ -f "$pkgdir/package.json" ] || die "node/npm/$platform/package.json is missing"
node_file="titan-pm.$platform.node"

step "npm ci in node/"
(cd node && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) || die "npm ci failed"

step "napi build --release --target $triple (zig, glibc $GLIBC)"
# Into a folder of its own: the checkout's own build (node/native, scripts/build.js) stays as it is.
built="$CARGO_TARGET_DIR/titan-npm"
rm -rf "$built" && mkdir -p "$built"
(cd node && npx napi build --platform --release --target "$triple" --manifest-path ../bindings/node/Cargo.toml \
    --package-json-path package.json --output-dir "$built" --js binding.js --dts binding.d.ts) || die "napi build failed"
[ -f "$built/$node_file" ] || die "napi build did not write $node_file"
if command -v objdump >/dev/null; then
    newest=$(objdump -T "$built/$node_file" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
    [ "$(printf '%s\n%s\n' "$newest" "$GLIBC" | sort -V | tail -1)" = "$GLIBC" ] \
        || die "the addon needs glibc $newest, newer than $GLIBC"
    echo "the addon needs glibc $newest or newer"
fi
cp "$built/$node_file" "$pkgdir/$node_file"
mkdir -p node/native && cp "$built/binding.js" "$built/binding.d.ts" node/native/   # the loader the main package ships

step "compiling the TypeScript"
(cd node && npx tsc -p tsconfig.json) || die "tsc failed"

step "packing the main and platform packages"
rm -f "$out"/titan-pm-*.tgz
node node/scripts/pack.js "$out" || die "packing failed"

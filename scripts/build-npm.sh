#!/usr/bin/env bash
# Builds the npm release tarballs into dist/npm (or the folder given as $1):
#   titan-pm-<version>.tgz                   JS, .d.ts and the napi loader only
#   titan-pm-linux-x64-gnu-<version>.tgz     the prebuilt addon (node/npm/linux-x64-gnu)
# The main package names the platform packages in optionalDependencies (the
# napi-rs layout, added by node/scripts/pack.js), so `npm install titan-pm`
# fetches the one matching the machine and compiles nothing.
#
# The addon is built with `napi build --release --target <triple>` and linked
# with zig (PyPI's `ziglang`, through `maturin zig cc`, the same toolchain as
# scripts/build-wheels.sh) against glibc 2.28; this script fails if it needs a
# newer glibc symbol. Installs maturin and ziglang into .venv if missing.
# Shares CARGO_TARGET_DIR (and the <triple>/release deps with the wheel build).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR=never
command -v cargo >/dev/null || . "$HOME/.cargo/env"
out="$(mkdir -p "${1:-dist/npm}" && cd "${1:-dist/npm}" && pwd)"
venv="$PWD/.venv"
glibc=2.28

step() { echo "--- $*"; }
die() { echo "build-npm: $*" >&2; exit 1; }

case "$(uname -sm)" in
    "Linux x86_64") triple=x86_64-unknown-linux-gnu; platform=linux-x64-gnu ;;
    "Linux aarch64") triple=aarch64-unknown-linux-gnu; platform=linux-arm64-gnu ;;
    *) die "no prebuilt package for $(uname -sm) yet (build from source: see node/README.md)" ;;
esac
pkgdir="$PWD/node/npm/$platform"
[ -f "$pkgdir/package.json" ] || die "node/npm/$platform/package.json is missing"
node_file="titan-pm.$platform.node"

[ -x "$venv/bin/python" ] || python3 -m venv "$venv" || die "cannot create $venv"
if ! "$venv/bin/python" -c "import ziglang" 2>/dev/null || [ ! -x "$venv/bin/maturin" ]; then
    step "installing maturin, ziglang into $venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.9,<2" "ziglang==0.17.1" \
        || die "cannot install maturin and ziglang"
fi

step "npm ci in node/"
(cd node && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) || die "npm ci failed"

# The linker: zig cc aimed at glibc $glibc (what maturin --zig does for the wheel).
wrappers="$CARGO_TARGET_DIR/titan-zig"
mkdir -p "$wrappers"
linker="$wrappers/cc-$triple-$glibc"
cat > "$linker" <<EOF
#!/bin/sh
export CARGO_ZIGBUILD_ZIG_COMMAND="$venv/bin/python" CARGO_ZIGBUILD_ZIG_COMMAND_ARGS="-m ziglang"
exec "$venv/bin/maturin" zig cc -- -g -fno-sanitize=all -target ${triple%%-unknown-*}-linux-gnu.$glibc "\$@"
EOF
chmod +x "$linker"
triple_env=$(echo "$triple" | tr 'a-z-' 'A-Z_')
export "CARGO_TARGET_${triple_env}_LINKER=$linker"

step "napi build --release --target $triple (zig, glibc $glibc)"
rm -f node/native/*.node
(cd node && npx napi build --platform --release --target "$triple" --manifest-path ../bindings/node/Cargo.toml \
    --package-json-path package.json --output-dir native --js binding.js --dts binding.d.ts) || die "napi build failed"
[ -f "node/native/$node_file" ] || die "napi build did not write native/$node_file"
if command -v objdump >/dev/null; then
    newest=$(objdump -T "node/native/$node_file" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
    [ "$(printf '%s\n%s\n' "$newest" "$glibc" | sort -V | tail -1)" = "$glibc" ] \
        || die "the addon needs glibc $newest, newer than $glibc"
    echo "the addon needs glibc $newest or newer"
fi
cp "node/native/$node_file" "$pkgdir/$node_file"

step "compiling the TypeScript"
(cd node && npx tsc -p tsconfig.json) || die "tsc failed"

step "packing the main and platform packages"
rm -f "$out"/titan-pm-*.tgz
node node/scripts/pack.js "$out" || die "packing failed"

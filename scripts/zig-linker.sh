# Sourced by scripts/build-wheels.sh and scripts/build-npm.sh: links the
# release builds with zig (PyPI's `ziglang`, driven by `maturin zig cc`)
# against glibc $GLIBC (2.28), so the Python wheel and the npm addon run on any
# Linux of their architecture with that glibc or newer. Both builds use this
# same linker setting, so cargo shares the compiled dependencies between them
# in $CARGO_TARGET_DIR/<triple>/release.
#
# Needs: $venv (a Python venv; maturin and ziglang are installed into it if
# missing) and CARGO_TARGET_DIR. Sets: triple, platform (napi-rs's name),
# GLIBC, and exports CARGO_TARGET_<TRIPLE>_LINKER.

GLIBC=2.28
case "$(uname -sm)" in
    "Linux x86_64") triple=x86_64-unknown-linux-gnu; platform=linux-x64-gnu ;;
    "Linux aarch64") triple=aarch64-unknown-linux-gnu; platform=linux-arm64-gnu ;;
    *) echo "zig-linker: no release build for $(uname -sm) yet (build from source instead)" >&2; return 1 ;;
esac

[ -x "$venv/bin/python" ] || python3 -m venv "$venv" || return 1
if ! "$venv/bin/python" -c "import ziglang" 2>/dev/null || [ ! -x "$venv/bin/maturin" ]; then
    echo "--- installing maturin, ziglang into $venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.9,<2" "ziglang==0.17.1" || return 1
fi

_zig_dir="$CARGO_TARGET_DIR/titan-zig"
mkdir -p "$_zig_dir"
_zig_linker="$_zig_dir/cc-$triple-$GLIBC"
# Rewritten only when it changes: cargo fingerprints the linker's path, not its text.
cat > "$_zig_linker.new" <<EOF
#!/bin/sh
# zig cc aimed at glibc $GLIBC (scripts/zig-linker.sh)
export CARGO_ZIGBUILD_ZIG_COMMAND="$venv/bin/python" CARGO_ZIGBUILD_ZIG_COMMAND_ARGS="-m ziglang"
exec "$venv/bin/maturin" zig cc -- -g -fno-sanitize=all -target ${triple%%-unknown-*}-linux-gnu.$GLIBC "\$@"
EOF
if cmp -s "$_zig_linker.new" "$_zig_linker"; then rm "$_zig_linker.new"; else mv "$_zig_linker.new" "$_zig_linker"; fi
chmod +x "$_zig_linker"
export "CARGO_TARGET_$(echo "$triple" | tr 'a-z-' 'A-Z_')_LINKER=$_zig_linker"

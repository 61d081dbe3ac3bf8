#!/usr/bin/env bash
# Regenerates core/src/generated from schema/titan.capnp and fails if the
# committed code differs. Needs the capnp compiler (Debian: capnproto).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v capnp >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get install -y -qq capnproto >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq capnproto >/dev/null; })
  else
    echo "check-schema: the capnp compiler is missing (apt-get install capnproto)" >&2
    exit 1
  fi
fi
cargo run -q -p schema-gen
if ! git diff --quiet -- core/src/generated; then
  echo "check-schema: core/src/generated is stale; run 'cargo run -p schema-gen' and commit the result" >&2
  git --no-pager diff --stat -- core/src/generated >&2
  exit 1
fi
echo "check-schema: generated code matches schema/titan.capnp"

#!/usr/bin/env bash
# The Python typing check: runs mypy --strict, with the interpreter given as $1
# (titan-pm and mypy installed in it; default .venv/bin/python), on
#   user_ok.py     a typed host script: must pass;
#   user_typos.py  the same mistakes a user makes: mypy must report an error on
#                  every line marked "# error: ..." and on no other line.
# Runs from this folder, so mypy checks against the installed package (its
# py.typed and stubs), as a user's project would. With PYRIGHT set to a pyright
# executable, checks both files with pyright (standard mode) the same way.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${1:-$here/../../.venv/bin/python}"
[[ "$py" = /* ]] || py="$PWD/$py"
cd "$here"
status=0
mypy() { "$py" -m mypy --strict --follow-imports=silent --no-incremental --cache-dir=/dev/null "$@"; }

if out=$(mypy user_ok.py 2>&1); then
    echo "typing: user_ok.py passes mypy --strict"
else
    echo "$out"; echo "typing: user_ok.py fails mypy --strict"; status=1
fi

out=$(mypy user_typos.py 2>&1)
expected=$(grep -n "  # error: " user_typos.py | cut -d: -f1 | sort -n | uniq)
reported=$(grep -E "^user_typos\.py:[0-9]+: error" <<<"$out" | cut -d: -f2 | sort -n | uniq)
if [ "$expected" = "$reported" ]; then
    echo "typing: mypy reports each of the $(wc -l <<<"$expected") mistakes in user_typos.py, and nothing else"
else
    echo "$out"
    echo "typing: expected errors on lines $(echo $expected), mypy reported lines $(echo $reported)"
    status=1
fi
if [ -n "${PYRIGHT:-}" ]; then
    config=$(mktemp -d)
    printf '{"venvPath": "%s", "venv": "%s", "extraPaths": ["%s"], "typeCheckingMode": "standard"}' \
        "$(dirname "$(dirname "$(dirname "$py")")")" "$(basename "$(dirname "$(dirname "$py")")")" "$here" > "$config/pyrightconfig.json"
    if out=$("$PYRIGHT" -p "$config/pyrightconfig.json" user_ok.py 2>&1); then
        echo "typing: user_ok.py passes pyright"
    else
        echo "$out"; echo "typing: user_ok.py fails pyright"; status=1
    fi
    out=$("$PYRIGHT" -p "$config/pyrightconfig.json" user_typos.py 2>&1)
    reported=$(grep -oE "user_typos\.py:[0-9]+:[0-9]+ - error" <<<"$out" | cut -d: -f2 | sort -n | uniq)
    if [ "$expected" = "$reported" ]; then
        echo "typing: pyright reports each of the $(wc -l <<<"$expected") mistakes in user_typos.py, and nothing else"
    else
        echo "$out"
        echo "typing: expected pyright errors on lines $(echo $expected), it reported lines $(echo $reported)"
        status=1
    fi
    rm -rf "$config"
fi
exit $status

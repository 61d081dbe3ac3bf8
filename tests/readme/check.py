"""Checks the README's Python and TypeScript code blocks, so they cannot drift
from the API (the Rust blocks are compiled by this folder's crate, part of
`cargo build --workspace`).

Which blocks, and how (the fence's info string decides):

    ```python            run: written to a temporary folder, run with the Python given
    ```python no-run     byte-compiled only (a fragment that cannot run on its own)
    ```ts                compiled (all ts blocks together, tsc --strict) and run with node
    ```ts no-run         compiled only
    ```LANG ignore       skipped (pseudo-code, a shell session, an option listing)

A block whose first line is a comment naming a file (`# calculator.py`,
`// main.ts`) is written under that name, so later blocks can use it (the
README's main.py spawns calculator.py); the others get `block_<line>.py|ts`.
Python blocks run in README order with the folder as the working directory.
TypeScript blocks compile (CommonJS output, TypeScript's standard decorators)
against the built package in ../../node (dist/, its .d.ts, the addon) with
that package's TypeScript and @types/node, then run in README order. Prints "ok"/"FAIL" per block and ends with
"readme: N passed, N failed".

    python tests/readme/check.py [--python PY] [--node-package node/]
"""

import argparse
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
FENCE = re.compile(r"^```([^\s,]*)(.*)$")
NAMED = {"python": re.compile(r"^#\s*([\w.-]+\.py)\s*$"), "ts": re.compile(r"^//\s*([\w.-]+\.ts)\s*$")}
LANGS = {"python": "python", "py": "python", "ts": "ts", "typescript": "ts"}


def blocks(readme: Path):
    """(language, flags, first line number, code) of each fenced block in LANGS."""
    lang = None
    for n, line in enumerate(readme.read_text().splitlines(), 1):
        m = FENCE.match(line.strip())
        if lang is None:
            if m and m.group(1):
                lang, flags, start, code = m.group(1), set(m.group(2).replace(",", " ").split()), n + 1, []
        elif m and not m.group(1) and not m.group(2).strip():
            if lang in LANGS and "ignore" not in flags:
                yield LANGS[lang], flags, start, "\n".join(code) + "\n"
            lang = None
        else:
            code.append(line)


def file_name(lang: str, start: int, code: str) -> str:
    first = code.splitlines()[0] if code.strip() else ""
    m = NAMED[lang].match(first.strip())
    return m.group(1) if m else f"block_{start}.{'py' if lang == 'python' else 'ts'}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readme", default=str(REPO / "README.md"))
    ap.add_argument("--python", default=sys.executable, help="the interpreter that runs the Python blocks (titan_pm installed)")
    ap.add_argument("--node-package", default=str(REPO / "node"), help="the built npm package the TypeScript blocks compile against")
    ap.add_argument("--timeout", type=float, default=120.0)
    opts = ap.parse_args()
    opts.python = os.path.abspath(shutil.which(opts.python) or opts.python)
    passed = failed = 0

    def report(ok: bool, what: str, detail: str = "") -> None:
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"ok {what}")
        else:
            failed += 1
            print(f"FAIL {what}\n{detail.rstrip()}")

    found = list(blocks(Path(opts.readme)))
    doc = Path(opts.readme).name
    with tempfile.TemporaryDirectory(prefix="titan-readme-") as tmp:
        work = Path(tmp)
        py_dir, ts_dir = work / "python", work / "ts"
        py_dir.mkdir()
        (ts_dir / "src").mkdir(parents=True)

        # Python: every block written first (a block may spawn a file a later one defines), then run in order.
        py = [(flags, start, file_name("python", start, code), code) for lang, flags, start, code in found if lang == "python"]
        for _, _, name, code in py:
            (py_dir / name).write_text(code)
        for flags, start, name, code in py:
            what = f"{doc}:{start} python {name}{' (no-run)' if 'no-run' in flags else ''}"
            try:
                py_compile.compile(str(py_dir / name), cfile=str(work / "pyc"), doraise=True)
            except py_compile.PyCompileError as e:
                report(False, what, str(e))
                continue
            if "no-run" in flags:
                report(True, what)
                continue
            try:
                r = subprocess.run([opts.python, name], cwd=py_dir, capture_output=True, text=True, timeout=opts.timeout)
                report(r.returncode == 0, what, f"exit {r.returncode}\n{r.stdout}{r.stderr}")
            except subprocess.TimeoutExpired as e:
                report(False, what, f"timed out after {opts.timeout} s\n{e.stdout or ''}{e.stderr or ''}")

        # TypeScript: one strict program of every block.
        ts = [(start, file_name("ts", start, code), flags) for lang, flags, start, code in found if lang == "ts"]
        if ts:
            pkg = Path(opts.node_package).resolve()
            tsc = pkg / "node_modules" / "typescript" / "bin" / "tsc"
            if not (pkg / "dist" / "index.d.ts").exists() or not tsc.exists():
                report(False, f"{doc} typescript blocks", f"{pkg} is not built (dist/, node_modules/): run scripts/test-node.sh first")
            else:
                (ts_dir / "node_modules").mkdir()
                os.symlink(pkg, ts_dir / "node_modules" / "titan-pm")
                (ts_dir / "package.json").write_text(json.dumps({"name": "readme", "private": True}))
                (ts_dir / "tsconfig.json").write_text(json.dumps({
                    "compilerOptions": {
                        "target": "ES2022", "module": "node16", "moduleResolution": "node16", "strict": True,
                        "rootDir": "src", "outDir": "dist", "types": ["node"], "typeRoots": [str(pkg / "node_modules" / "@types")],
                        "skipLibCheck": True,
                    },
                    "include": ["src"],
                }))
                for lang, _, start, code in found:
                    if lang == "ts":
                        (ts_dir / "src" / file_name("ts", start, code)).write_text(code)
                r = subprocess.run(["node", str(tsc), "-p", "tsconfig.json"], cwd=ts_dir,
                                   capture_output=True, text=True, timeout=opts.timeout)
                errors = r.stdout + r.stderr
                if r.returncode != 0 and not any(l.startswith("src/") for l in errors.splitlines()):
                    report(False, f"{doc} typescript blocks: tsc", errors)
                for start, name, flags in ts:
                    what = f"{doc}:{start} ts {name}{' (no-run)' if 'no-run' in flags else ''}"
                    mine = [l for l in errors.splitlines() if l.startswith(f"src/{name}(")]
                    js = "dist/" + name[: -len(".ts")] + ".js"
                    if mine or "no-run" in flags or not (ts_dir / js).exists():
                        report(not mine and (ts_dir / js).exists(), what, "\n".join(mine) or "(tsc wrote nothing)")
                        continue
                    try:
                        run = subprocess.run(["node", js], cwd=ts_dir, capture_output=True, text=True, timeout=opts.timeout)
                        report(run.returncode == 0, what, f"exit {run.returncode}\n{run.stdout}{run.stderr}")
                    except subprocess.TimeoutExpired as e:
                        report(False, what, f"timed out after {opts.timeout} s\n{e.stdout or ''}{e.stderr or ''}")

    print(f"readme: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

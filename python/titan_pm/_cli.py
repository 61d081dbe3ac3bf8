"""The `titan-pm` command of the Python package (`[project.scripts]`): the same CLI
as the Rust binary, run by the native module (`_native.cli_run`). `start` launches
its daemon as `python -m titan_pm._cli ... start --no-daemon` in a new session
rather than forking this interpreter."""

from __future__ import annotations

import sys
from typing import List, Optional

__all__ = ["main"]


def main(argv: Optional[List[str]] = None) -> None:
    """Runs `titan-pm ARGS` (`argv`, else `sys.argv[1:]`) and exits with its code."""
    from titan_pm import _native

    args = sys.argv[1:] if argv is None else list(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    code = _native.cli_run(["titan-pm", *args], [sys.executable, "-m", "titan_pm._cli"], sys.executable)
    sys.exit(code)


if __name__ == "__main__":
    main()

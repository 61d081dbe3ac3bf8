"""The entry a Python child worker runs: `python -m titan_pm.worker file.py[:Class]`.

A titan-pm host starts it with its endpoint and secret in the environment
(`TITAN_IPC_FD` or `TITAN_CONNECT`, and `TITAN_SECRET`); it loads the target's
`@process` class and serves it through the native agent until the host says
shut down or goes away. A target it cannot load is reported on stderr (which
the host puts in its `SpawnError`) with exit status 1.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback


def main(argv: list) -> int:
    if len(argv) != 2:
        print("usage: python -m titan_pm.worker FILE.py[:ClassName]", file=sys.stderr)
        return 2
    # The host decides when its workers stop; Ctrl-C in a terminal reaches the host.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
        except (AttributeError, ValueError):
            pass

    from . import _native
    from ._runtime import Runtime, TargetError, load_class
    from .decorators import definition

    try:
        runtime = Runtime(definition(load_class(argv[1])))  # type: ignore[arg-type]
    except TargetError as e:
        print(f"titan-pm: {e}", file=sys.stderr)
        return 1
    except SyntaxError as e:
        print(f"titan-pm: cannot load {argv[1]}:", file=sys.stderr)
        print("".join(traceback.format_exception_only(type(e), e)).rstrip(), file=sys.stderr)
        return 1
    except BaseException:
        print(f"titan-pm: cannot load {argv[1]}:", file=sys.stderr)
        traceback.print_exc()
        return 1
    try:
        _native.serve_worker(runtime)
    except Exception as e:
        print(f"titan-pm worker: {e}", file=sys.stderr)
        return 1
    finally:
        runtime.close()
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # Daemon threads (the asyncio loop, the call thread) must not delay the exit.
    os._exit(code)

"""The entry a Python child worker runs: `python -m titan_pm.worker file.py[:Class]`;
and a remote worker: `python -m titan_pm.worker --connect HOST:PORT --name NAME
--tls-cert F --tls-key F --tls-ca F [--token T] file.py[:Class]` (or `TITAN_PM_*`
variables), which dials a listening host, rejoins it when it goes away and
drains its calls on SIGTERM (core's agent does all of that).

A titan-pm host starts it with its endpoint and secret in the environment
(`TITAN_IPC_FD` or `TITAN_CONNECT`, and `TITAN_SECRET`); it loads the target's
`@process` class and serves it through the native agent until the host says
shut down or goes away. The main thread runs the asyncio loop, and the agent
runs inside the loop's wait for I/O (`titan_pm._loop`). A target it cannot load is reported on stderr (which
the host puts in its `SpawnError`) with exit status 1.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import traceback
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._loop import LoopDriver
    from ._runtime import Runtime


USAGE = (
    "usage: python -m titan_pm.worker FILE.py[:ClassName]\n"
    "       python -m titan_pm.worker --connect HOST:PORT|wss://HOST:PORT --name NAME "
    "[--tls-cert F --tls-key F --tls-ca F] [--token T] FILE.py[:ClassName]"
)


def main(argv: list) -> int:
    remote = "TITAN_IPC_FD" not in os.environ and "TITAN_CONNECT" not in os.environ
    if remote:
        # Started by someone else: the dial flags (read by core) say which host to join.
        from . import _native
        from .errors import TitanError

        try:
            argv = argv[:1] + _native.take_worker_args(list(argv[1:]))
        except TitanError as e:
            print(f"titan-pm worker: {e}", file=sys.stderr)
            return 2
    if len(argv) != 2 or argv[1].startswith("--"):
        print(USAGE, file=sys.stderr)
        return 2
    if not remote:
        # The host decides when its workers stop; Ctrl-C in a terminal reaches the host.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
        except (AttributeError, ValueError):
            pass

    from ._runtime import Runtime, TargetError, load_class
    from .decorators import definition

    from ._loop import loop_driver

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    driver = loop_driver(loop)
    if driver is None:
        print("titan-pm worker: the event loop is not a selector loop", file=sys.stderr)
        return 1
    try:
        runtime = Runtime(definition(load_class(argv[1])), loop=loop, wake=driver.native.kick)  # type: ignore[arg-type]
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
    runtime.start_call_thread()
    try:
        serve(runtime, loop, driver)
    except Exception as e:
        print(f"titan-pm worker: {e}", file=sys.stderr)
        return 1
    finally:
        runtime.close()
    return 0


def serve(runtime: "Runtime", loop: asyncio.AbstractEventLoop, driver: "LoopDriver") -> None:
    """Runs the agent and the runtime's asyncio loop together on this thread until the host is done."""
    from . import _native

    finished = loop.create_future()
    driver.waiting[_native.serve_worker_on(driver.native, runtime)] = finished
    try:
        loop.run_until_complete(finished)
    finally:
        loop.close()


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # Daemon threads (the asyncio loop, the call thread) must not delay the exit.
    os._exit(code)

"""Options shared by both managers: the keyword names (snake_case, durations in
seconds), their defaults, and how a target is handed to the native module."""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, Optional, Tuple

from ._runtime import split_target
from .errors import ConfigError

ISOLATIONS = ("child", "worker", "none")
TRANSPORTS = ("ipc", "unix", "tcp", "http")
EVENTS = ("spawn", "ready", "crash", "restart", "failed", "exit", "refused", "*")


def manager_options(isolation: str, transport: str, python: Optional[str], extra: Dict[str, Any]) -> Dict[str, Any]:
    if isolation not in ISOLATIONS:
        raise ConfigError(f"unknown isolation {isolation!r} (expected child, worker or none)")
    opts = dict(extra)
    opts.update(isolation=isolation, transport=transport, python=python or sys.executable)
    # The engine shares a small machine with Python workers: polling after each
    # job instead of sleeping measured worse here (p99 ~450 vs ~120 us, 64 in
    # flight ~28k vs ~45k calls/s), so a Python host turns it off by default.
    opts.setdefault("spin", 0.0)
    return opts


def native_target(target: Any, isolation: str) -> Tuple[Any, bool]:
    """(target, in_process): a class, or a `.py` file with isolation worker/none, runs in this process."""
    if isinstance(target, type):
        if isolation == "child":
            raise ConfigError(
                f"a class target ({target.__name__}) runs in this process: use isolation 'worker' or 'none', "
                "or spawn the .py file that defines it"
            )
        return target, True
    try:
        path = os.fspath(target)
    except TypeError:
        raise ConfigError(f"a target is a path or a @process class, not {type(target).__name__}") from None
    if isolation in ("worker", "none") and split_target(path)[0].endswith(".py"):
        return path, True
    return path, False


def check_event(event: str) -> None:
    if event not in EVENTS:
        raise ConfigError(f"unknown event {event!r} (expected one of {', '.join(EVENTS)})")

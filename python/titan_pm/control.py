"""The control socket: `pm.serve_control(path)` lets the `titan-pm` CLI (and any
Cap'n Proto client of the schema's `Manager`) list, inspect, restart, scale, stop
and watch this manager's workers and read their logs, as with `titan-pm start`.

The socket goes to `path`, else `$TITAN_PM_SOCKET`, else
`$XDG_RUNTIME_DIR/titan-pm/control.sock`, else `/tmp/titan-pm-$UID/control.sock`
(core's rule, the same as the CLI's); its folder is 0700 and the socket 0600, and
peers of another user are refused.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Optional

__all__ = ["ControlServer"]

_POLL_S = 0.05


class ControlServer:
    """A running control server; `close()` stops it and removes the socket."""

    def __init__(self, native: Any) -> None:
        self._native = native

    @property
    def path(self) -> str:
        return str(self._native.path)

    def close(self) -> None:
        """Stops accepting connections and removes the socket file."""
        self._native.close()

    def is_shutdown_requested(self) -> bool:
        """Whether a client ran `titan-pm stop` and the manager has shut down."""
        return bool(self._native.is_shutdown_requested())

    def wait_shutdown_requested(self, timeout: Optional[float] = None) -> bool:
        """Blocks until `titan-pm stop` has shut the manager down (True) or `timeout`
        seconds pass (False): what a blocking host's main does after starting its workers."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_shutdown_requested():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)
        return True

    async def shutdown_requested(self) -> None:
        """Resolves once `titan-pm stop` has shut the manager down (an asyncio host awaits it)."""
        while not self.is_shutdown_requested():
            await asyncio.sleep(_POLL_S)

    def __enter__(self) -> "ControlServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ControlServer(path={self.path!r})"

"""Every error titan-pm raises: one class per error kind of the core, all
deriving from `TitanError`, with the attributes the brief names.

A method that raised in a worker arrives as `RemoteError`; when the remote type
is a Python built-in exception (`ValueError`, `KeyError`, ...), the error is an
instance of a class that is both `RemoteError` and that built-in, so
`except ValueError` and `except RemoteError` both catch it.

    >>> e = _from_native("RemoteError", "bad input", {"remote_type": "ValueError", "remote_traceback": ""})
    >>> isinstance(e, ValueError) and isinstance(e, RemoteError)
    True
"""

from __future__ import annotations

import builtins
from typing import Any, Dict, List, Optional, Type

__all__ = [
    "TitanError",
    "RemoteError",
    "ProcessCrashedError",
    "ProcessFailedError",
    "CallTimeoutError",
    "MethodNotFoundError",
    "SerializationError",
    "SpawnError",
    "PoolBackpressureError",
    "CircuitOpenError",
    "ConfigError",
    "RateLimitError",
    "ValidationError",
]


class TitanError(Exception):
    """The base of every titan-pm error."""

    def __init__(self, message: str = "", **attrs: Any) -> None:
        super().__init__(message)
        self.message = message
        for k, v in attrs.items():
            setattr(self, k, v)

    def __str__(self) -> str:
        return self.message


class RemoteError(TitanError):
    """The method raised in the worker: `remote_type`, `message`, `remote_traceback`."""

    remote_type: str = ""
    remote_traceback: str = ""
    code: Optional[str] = None

    def __str__(self) -> str:
        return f"{self.remote_type}: {self.message}" if self.remote_type else self.message


class ProcessCrashedError(TitanError):
    """The worker died with the call in flight; `exit_code` or `signal` says how."""

    process_id: Optional[int] = None
    exit_code: Optional[int] = None
    signal: Optional[int] = None


class ProcessFailedError(TitanError):
    """The process is failed (restart budget spent), killed or stopped; `state` says which."""

    process_id: Optional[int] = None
    state: str = "failed"


class CallTimeoutError(TitanError, TimeoutError):
    """The call's deadline passed; the worker was told to cancel it. `timeout` in seconds."""

    method: str = ""
    timeout: float = 0.0


class MethodNotFoundError(TitanError, AttributeError):
    """No public method of that name; `available` lists the public ones."""

    method: str = ""
    available: List[str] = []


class SerializationError(TitanError, TypeError):
    """A value titan-pm cannot send; `path` names it, like `args[1]["items"][3]`."""

    path: str = ""


class SpawnError(TitanError):
    """The worker could not start; `reason` says why, `stderr_tail` holds its last stderr lines."""

    target: str = ""
    reason: str = ""
    stderr_tail: str = ""


class PoolBackpressureError(TitanError):
    """A pool's queue is full: back off."""

    queue_size: int = 0


class CircuitOpenError(TitanError):
    """A circuit breaker is open: calls are refused until it half-opens."""


class ConfigError(TitanError, ValueError):
    """An invalid option or argument given to the manager."""


class RateLimitError(TitanError):
    """A method's rate limit refused the call (it did not run); retry after ``retry_after`` seconds."""

    retry_after: float = 0.0


class ValidationError(TitanError):
    """The arguments failed the method's validation (it did not run): ``failures`` lists (path, message)."""

    failures: list = []


_CLASSES: Dict[str, Type[TitanError]] = {
    c.__name__: c
    for c in (
        RemoteError,
        ProcessCrashedError,
        ProcessFailedError,
        CallTimeoutError,
        MethodNotFoundError,
        SerializationError,
        SpawnError,
        PoolBackpressureError,
        CircuitOpenError,
        ConfigError,
        RateLimitError,
        ValidationError,
    )
}

_remote_classes: Dict[str, Type[RemoteError]] = {}


def remote_class(remote_type: str) -> Type[RemoteError]:
    """`RemoteError`, or for a built-in exception type (or `SerializationError`) a subclass of both."""
    cls = _remote_classes.get(remote_type)
    if cls is not None:
        return cls
    cls = RemoteError
    # A worker's own SerializationError (a result the value rule refused) is one too.
    builtin = _CLASSES.get(remote_type) if remote_type == "SerializationError" else getattr(builtins, remote_type, None)
    if isinstance(builtin, type) and issubclass(builtin, Exception) and builtin is not Exception:
        try:
            cls = type(f"Remote{remote_type}", (RemoteError, builtin), {"__module__": __name__})
        except TypeError:  # an incompatible layout: plain RemoteError it is
            cls = RemoteError
    _remote_classes[remote_type] = cls
    return cls


def _from_native(class_name: str, message: str, attrs: Dict[str, Any]) -> TitanError:
    """Builds the exception for a core error (called by the native module)."""
    if class_name == "RemoteError":
        cls: Type[TitanError] = remote_class(attrs.get("remote_type") or "")
    else:
        cls = _CLASSES.get(class_name, TitanError)
    exc = cls.__new__(cls)
    TitanError.__init__(exc, message, **attrs)
    return exc

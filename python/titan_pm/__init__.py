"""titan-pm: a process manager and worker orchestration layer with a Rust core.

Worker side: mark a class with `@process`, its callable methods with
`@public`, optionally a `@health_check` and `@on_shutdown` hooks, and an
`init(**dependencies)`. Host side: `ProcessManager` (asyncio) or
`titan_pm.sync.ProcessManager` (blocking) spawns it and calls it.
Every error derives from `TitanError` (see `titan_pm.errors`).
"""

import importlib
from typing import TYPE_CHECKING, Any

# `workflow` is both a submodule and the decorator it defines: importing it here
# binds the package attribute to the decorator once, as before (it needs only
# `_native` and `decorators`, which a worker loads anyway).
from .workflow import Workflow, WorkflowError, compensate, stage, workflow

if TYPE_CHECKING:
    from .decorators import health_check, on_shutdown, process, public
    from .policies import cache, circuit_breaker, idempotent, metric, rate_limit, self_heal, trace, validate
    from ._context import get_trace_context
    from .errors import (
        CallTimeoutError,
        CircuitOpenError,
        ConfigError,
        MethodNotFoundError,
        PoolBackpressureError,
        ProcessCrashedError,
        ProcessFailedError,
        RateLimitError,
        RemoteError,
        SerializationError,
        ValidationError,
        SpawnError,
        TitanError,
    )
    from ._options import PoolStrategy
    from .host import Pool, ProcessHandle, ProcessManager
    from .control import ControlServer
    from .supervise import Supervisor, SupervisionStrategy, child, supervisor
    from .given import GivenProcess, SharedValue, inject_process, shared_state, shared_value

# Which module each public name lives in. They are imported on first use
# (PEP 562), so a worker child that only needs `process`/`public` does not pay
# for the host, workflow and supervision modules at start.
_LAZY = {
    "health_check": "decorators", "on_shutdown": "decorators", "process": "decorators", "public": "decorators",
    "cache": "policies", "circuit_breaker": "policies", "idempotent": "policies", "metric": "policies",
    "rate_limit": "policies", "self_heal": "policies", "trace": "policies", "validate": "policies",
    "get_trace_context": "_context",
    "CallTimeoutError": "errors", "CircuitOpenError": "errors", "ConfigError": "errors",
    "MethodNotFoundError": "errors", "PoolBackpressureError": "errors", "ProcessCrashedError": "errors",
    "ProcessFailedError": "errors", "RateLimitError": "errors", "RemoteError": "errors",
    "SerializationError": "errors", "ValidationError": "errors", "SpawnError": "errors", "TitanError": "errors",
    "PoolStrategy": "_options",
    "Pool": "host", "ProcessHandle": "host", "ProcessManager": "host",
    "ControlServer": "control",
    "Supervisor": "supervise", "SupervisionStrategy": "supervise", "child": "supervise", "supervisor": "supervise",
    "GivenProcess": "given", "SharedValue": "given", "inject_process": "given", "shared_state": "given",
    "shared_value": "given",
}


# Hidden from type checkers: they see the imports above, so a misspelt name is still an error.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'titan_pm' has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value
        return value


    def __dir__() -> list:
        return sorted(set(globals()) | set(_LAZY))


def create_process_manager(**options: object) -> "ProcessManager":
    """The seed's `createProcessManager(config)`: the same as `ProcessManager(**options)`."""
    from .host import ProcessManager

    return ProcessManager(**options)  # type: ignore[arg-type]

__version__ = "0.1.0"

__all__ = [
    "process",
    "public",
    "health_check",
    "on_shutdown",
    "ProcessManager",
    "create_process_manager",
    "PoolStrategy",
    "ProcessHandle",
    "Pool",
    "ControlServer",
    "supervisor",
    "child",
    "Supervisor",
    "SupervisionStrategy",
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
    "workflow",
    "stage",
    "compensate",
    "Workflow",
    "WorkflowError",
    "RateLimitError",
    "ValidationError",
    "rate_limit",
    "cache",
    "validate",
    "trace",
    "metric",
    "circuit_breaker",
    "idempotent",
    "self_heal",
    "get_trace_context",
    "inject_process",
    "shared_state",
    "shared_value",
    "GivenProcess",
    "SharedValue",
]

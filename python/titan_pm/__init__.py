"""titan-pm: a process manager and worker orchestration layer with a Rust core.

Worker side: mark a class with `@process`, its callable methods with
`@public`, optionally a `@health_check` and `@on_shutdown` hooks, and an
`init(**dependencies)`. Host side: `ProcessManager` (asyncio) or
`titan_pm.sync.ProcessManager` (blocking) spawns it and calls it.
Every error derives from `TitanError` (see `titan_pm.errors`).
"""

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
from .workflow import Workflow, WorkflowError, compensate, stage, workflow
from .supervise import Supervisor, SupervisionStrategy, child, supervisor
from .given import GivenProcess, SharedValue, inject_process, shared_state


def create_process_manager(**options: object) -> ProcessManager:
    """The seed's `createProcessManager(config)`: the same as `ProcessManager(**options)`."""
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
    "GivenProcess",
    "SharedValue",
]

"""Options shared by both managers: the keyword names (snake_case, durations in
seconds), their defaults, and how a target is handed to the native module."""

from __future__ import annotations

import os
import sys
from enum import Enum
from typing import Any, Dict, List, Optional, Tuple, TypedDict, Union

from . import _native
from ._runtime import split_target
from .errors import ConfigError

ISOLATIONS = ("child", "worker", "none")
TRANSPORTS = ("ipc", "unix", "tcp", "http")
EVENTS = tuple(_native.event_names()) + ("*",)  # core's names


def manager_options(isolation: str, transport: str, python: Optional[str], extra: Dict[str, Any]) -> Dict[str, Any]:
    if isolation not in ISOLATIONS:
        raise ConfigError(f"unknown isolation {isolation!r} (expected child, worker or none)")
    opts = dict(extra)
    opts.update(isolation=isolation, transport=transport, python=python or sys.executable)
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


CallOptionValues = Tuple[Optional[float], Optional[str], Optional[int]]


def merge_call_options(
    base: CallOptionValues, timeout: Optional[float], key: Optional[str], retries: Optional[int]
) -> CallOptionValues:
    """`with_options`: the given ones over `base` (timeout, key, retries), checked by core's call-option reader."""
    _native.check_call_options(timeout, key, retries)
    t, k, r = base
    return (t if timeout is None else timeout, k if key is None else key, r if retries is None else retries)


def check_event(event: str) -> None:
    if event not in EVENTS:
        raise ConfigError(f"unknown event {event!r} (expected one of {', '.join(EVENTS)})")


class PoolStrategy(str, Enum):
    """A pool's balancing strategy; the kebab-case strings are accepted as well."""

    ROUND_ROBIN = "round-robin"
    RANDOM = "random"
    LEAST_LOADED = "least-loaded"
    LEAST_CONNECTIONS = "least-connections"
    WEIGHTED_ROUND_ROBIN = "weighted-round-robin"
    LEAST_RESPONSE_TIME = "least-response-time"
    IP_HASH = "ip-hash"
    CONSISTENT_HASH = "consistent-hash"
    WEIGHTED = "weighted"
    ADAPTIVE = "adaptive"
    POWER_OF_TWO = "power-of-two"

    def __str__(self) -> str:
        return self.value


def add_seed_names(handle_class: type, id_attribute: str) -> None:
    """The seed's spellings on a handle class: `handle.__processId` (an alias of the id)
    and `handle["method"]` (the same callable as `handle.method`)."""
    setattr(handle_class, "__processId", property(lambda self: getattr(self, id_attribute)))
    setattr(handle_class, "__getitem__", lambda self, method: getattr(self, method))


# ---- the option shapes, for readers and type checkers -------------------------
# Core reads every option (titan_pm core's `options` module); these TypedDicts
# document the same names in Python's spelling (seconds for durations) and are
# checked against core's schema by tests/test_seed_configuration.py.

Seconds = Union[float, int, str]  # a number of seconds, or "250ms", "30s", "5m", "1h"
Bytes = Union[int, str]  # a number of bytes, or "512MB", "1GB"


class Backoff(TypedDict, total=False):
    type: str  # "linear" | "exponential"
    initial: Seconds
    max: Seconds
    multiplier: float


class RestartPolicy(TypedDict, total=False):
    enabled: bool
    max_restarts: int
    window: Seconds
    backoff: Union[Backoff, Seconds]
    initial_backoff: Seconds  # flat alias of backoff.initial
    max_backoff: Seconds  # flat alias of backoff.max
    multiplier: float  # flat alias of backoff.multiplier


class Resources(TypedDict, total=False):
    max_memory: Bytes
    max_cpu: float  # percent of one core
    timeout: Seconds  # every call's deadline


class HealthCheckOptions(TypedDict, total=False):
    enabled: bool
    interval: Seconds
    timeout: Seconds


class TracingOptions(TypedDict, total=False):
    enabled: bool
    endpoint: str  # an OTLP/HTTP collector: "http://localhost:4318" (gets /v1/traces) or a full traces URL
    protocol: str  # "http/protobuf" (default) or "http/json"
    service_name: str  # the resource's service.name (default "titan-pm")
    headers: Dict[str, str]
    timeout: Seconds  # one export's deadline (default 10)


class Monitoring(TypedDict, total=False):
    health_check: Union[bool, HealthCheckOptions]
    metrics: bool
    tracing: Union[bool, TracingOptions]  # with an endpoint, @trace spans are exported over OTLP


class WorkflowsOptions(TypedDict, total=False):
    journal: str  # a SQLite file, a "postgresql://" URL, or ":memory:" (the default: this process only)
    lease: Seconds  # how long a host's claim on a run lasts without renewal


class ManagerOptions(TypedDict, total=False):
    isolation: str
    transport: str
    restart_policy: Union[bool, RestartPolicy]
    resources: Resources
    monitoring: Monitoring
    timeout: Seconds  # alias of resources.timeout
    health_timeout: Seconds  # alias of monitoring.health_check.timeout
    spawn_timeout: Seconds
    shutdown_timeout: Seconds
    cancel_grace: Seconds
    spin: Seconds
    output: Any  # "prefix" | "inherit" | "ignore" | a callable (stream, name, pid, line)
    python: str
    node: str
    tcp_host: str
    workflows: WorkflowsOptions
    fork_server: bool  # start .py children from a pre-imported fork server (default True)


class SpawnOptions(TypedDict, total=False):
    isolation: str
    transport: str
    dependencies: Dict[str, Any]
    env: Dict[str, str]
    args: List[str]
    name: str
    version: str  # the worker's @process version must match
    timeout: Seconds
    restart_policy: Union[bool, RestartPolicy]
    resources: Resources
    output: Any
    processes: Dict[str, int]  # processes the worker may call, name -> process id (core: @InjectProcess)


class AutoScale(TypedDict, total=False):
    enabled: bool
    min: int
    max: int
    target_cpu: float  # percent of one core
    target_memory: float  # percent of the machine's memory
    scale_up_threshold: float
    scale_down_threshold: float
    cooldown_period: Seconds
    cooldown: Seconds
    interval: Seconds


class CircuitBreaker(TypedDict, total=False):
    enabled: bool
    threshold: int
    timeout: Seconds
    half_open_requests: int


class PoolHealth(TypedDict, total=False):
    enabled: bool
    interval: Seconds
    unhealthy_threshold: int


class Recycle(TypedDict, total=False):
    enabled: bool
    max_requests: int
    max_lifetime: Seconds
    max_memory: Bytes


class PoolOptions(SpawnOptions, total=False):
    size: Union[int, str]  # a number, or "auto"
    min: int  # a remote:NAME pool's fewest members (instead of size)
    strategy: Union[str, PoolStrategy]
    concurrency: int
    pipeline: int  # calls sent ahead to a busy worker beyond its concurrency (default 8; 0: off)
    max_queue_size: int
    request_timeout: Seconds
    retries: int
    weights: List[int]
    auto_scale: Union[bool, AutoScale]
    circuit_breaker: Union[bool, CircuitBreaker]
    health: Union[bool, PoolHealth]
    recycle: Union[bool, Recycle]

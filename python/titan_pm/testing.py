"""Testing utilities on real workers (the seed's `TestProcessManager`).

`create_test_process_manager(**options)` returns a real `ProcessManager`
(isolation `none` by default, so it is fast; every manager option is accepted,
plus `record_operations=True` and `control_time=False`) with:

- `simulate_crash(process_id)`: crashes the real worker (a child gets SIGKILL, an
  in-process one is torn down as a crash); the real restart policy follows.
- `wait_for_recovery(process_id, timeout=5.0)`: True once it runs and answers again.
- `set_metrics` / `set_health` (and `clear_...`): what `get_metrics` / `get_health`,
  the periodic health probe and pools see.
- `simulate_failure("spawn:Name" | "call:method" | "call:Name.method", error)`:
  fails the next such operation; `clear_failures()`.
- `advance_time(seconds)` / `get_current_time()` / `reset_time()` with
  `control_time=True`: every timer in core (restart backoff, breaker timeouts,
  cache and idempotency TTLs, rate limits, health and autoscale intervals)
  follows this clock. Call deadlines, spawn and shutdown timeouts and workflow
  leases stay real time (they bound real work or are shared with other hosts).
- `get_operations()` / `verify_operation(type, predicate)`: the record (`spawn`,
  `kill`, `crash`, `restart`, `failed`, `exit`, `recycle`, `call`, `scale`,
  `supervisor:child:started|exited|restarted`, `supervisor:failed|stopped`,
  `workflow:started`, `workflow:stage:started|completed|failed|retrying`,
  `workflow:compensation:started|completed`, `workflow:completed|failed`).
- `cleanup()`: shuts down and raises if a worker outlived the shutdown (a child,
  a worker thread, or an in-process worker's runtime thread still in user code).

`create_sync_test_process_manager(**options)` is the same for the blocking API
(`titan_pm.sync`): every method above returns its result instead of an awaitable.

Everything is decided in the core (`titan_pm` crate's `testing` module); this
module only converts. With pytest, `pytest_plugins = ["titan_pm.testing"]` in a
`conftest.py` gives the `titan_test_manager` fixture (a manager on its own
engine thread, usable from any event loop, cleaned up strictly after the test).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from . import sync as _sync
from .host import ProcessManager

__all__ = [
    "TestProcessManager",
    "SyncTestProcessManager",
    "create_test_process_manager",
    "create_sync_test_process_manager",
    "titan_test_manager",
]

Operation = Dict[str, Any]


class TestProcessManager(ProcessManager):
    """A real `ProcessManager` with the testing utilities (see the module's doc)."""

    __test__ = False  # not a pytest test class
    _TEST = True

    def __init__(self, *, isolation: str = "none", **options: Any):
        super().__init__(isolation=isolation, **options)

    def _tester(self) -> Any:
        self._bind()
        return self._native

    async def simulate_crash(self, process_id: int) -> None:
        """Crashes the worker; returns once the manager has taken the crash in."""
        await self._wait(self._tester().test_simulate_crash(process_id))

    async def wait_for_recovery(self, process_id: int, timeout: float = 5.0) -> bool:
        """True once the process is running and answering again; False if it failed or `timeout` passed."""
        return bool(await self._wait(self._tester().test_wait_for_recovery(process_id, timeout)))

    def set_metrics(self, process_id: int, metrics: Dict[str, Any]) -> None:
        """The given fields (cpu, memory, requests, errors, in_flight, latency) replace the measured ones."""
        self._tester().test_set_metrics(process_id, metrics)

    def set_health(self, process_id: int, health: Any) -> None:
        """A report as a health check returns it: {"status", "checks"}, a status string or a bool."""
        self._tester().test_set_health(process_id, health)

    def clear_metrics(self, process_id: int) -> None:
        self._tester().test_clear_metrics(process_id)

    def clear_health(self, process_id: int) -> None:
        self._tester().test_clear_health(process_id)

    def simulate_failure(self, point: str, error: Union[BaseException, str]) -> None:
        """Fails the next `spawn:Name`, `call:method` or `call:Name.method` with `error`
        (a spawn with SpawnError carrying its message; a call with a remote error of its type)."""
        self._tester().test_simulate_failure(point, *_failure(error))

    def clear_failures(self) -> None:
        self._tester().test_clear_failures()

    async def advance_time(self, seconds: float) -> None:
        """Moves the manager's clock (control_time=True), firing every timer due on the way."""
        await self._wait(self._tester().test_advance_time(seconds))

    def get_current_time(self) -> float:
        """The manager's clock, in seconds since the epoch (like time.time())."""
        return self._tester().test_current_time() / 1000.0

    def reset_time(self) -> None:
        """Back to real time; pending timers wait out what is left of them."""
        self._tester().test_reset_time()

    def get_operations(self) -> List[Operation]:
        """Every recorded operation, oldest first: {"type", "process_id", ...}."""
        return self._tester().test_operations()

    def verify_operation(self, type: str, predicate: Optional[Callable[[Operation], bool]] = None) -> bool:
        """Whether an operation of `type` matching `predicate` was recorded."""
        return any(op["type"] == type and (predicate is None or predicate(op)) for op in self.get_operations())

    def clear_operations(self) -> None:
        self._tester().test_clear_operations()

    async def cleanup(self) -> None:
        """Shuts down; raises ConfigError naming any worker that outlived the shutdown."""
        await self._wait(self._tester().test_cleanup())


class SyncTestProcessManager(_sync.ProcessManager):
    """The blocking twin (`titan_pm.sync.ProcessManager`) with the same testing utilities,
    each returning its result instead of an awaitable."""

    __test__ = False  # not a pytest test class
    _TEST = True

    def __init__(self, *, isolation: str = "none", **options: Any):
        super().__init__(isolation=isolation, **options)

    def simulate_crash(self, process_id: int) -> None:
        """Crashes the worker; returns once the manager has taken the crash in."""
        self._native.test_simulate_crash(process_id)

    def wait_for_recovery(self, process_id: int, timeout: float = 5.0) -> bool:
        """True once the process is running and answering again; False if it failed or `timeout` passed."""
        return bool(self._native.test_wait_for_recovery(process_id, timeout))

    def set_metrics(self, process_id: int, metrics: Dict[str, Any]) -> None:
        self._native.test_set_metrics(process_id, metrics)

    def set_health(self, process_id: int, health: Any) -> None:
        self._native.test_set_health(process_id, health)

    def clear_metrics(self, process_id: int) -> None:
        self._native.test_clear_metrics(process_id)

    def clear_health(self, process_id: int) -> None:
        self._native.test_clear_health(process_id)

    def simulate_failure(self, point: str, error: Union[BaseException, str]) -> None:
        self._native.test_simulate_failure(point, *_failure(error))

    def clear_failures(self) -> None:
        self._native.test_clear_failures()

    def advance_time(self, seconds: float) -> None:
        """Moves the manager's clock (control_time=True), firing every timer due on the way."""
        self._native.test_advance_time(seconds)

    def get_current_time(self) -> float:
        return self._native.test_current_time() / 1000.0

    def reset_time(self) -> None:
        self._native.test_reset_time()

    def get_operations(self) -> List[Operation]:
        return self._native.test_operations()

    def verify_operation(self, type: str, predicate: Optional[Callable[[Operation], bool]] = None) -> bool:
        return any(op["type"] == type and (predicate is None or predicate(op)) for op in self.get_operations())

    def clear_operations(self) -> None:
        self._native.test_clear_operations()

    def cleanup(self) -> None:
        """Shuts down; raises ConfigError naming any worker that outlived the shutdown."""
        self._native.test_cleanup()


def _failure(error: Union[BaseException, str]) -> Tuple[str, str]:
    if isinstance(error, BaseException):
        return type(error).__name__, str(error)
    return "Exception", str(error)


def create_sync_test_process_manager(**options: Any) -> SyncTestProcessManager:
    """A blocking test manager (`titan_pm.sync`): the same defaults and options as
    `create_test_process_manager`."""
    return SyncTestProcessManager(**options)


def create_test_process_manager(**options: Any) -> TestProcessManager:
    """A test manager: isolation "none" by default, `record_operations=True`, `control_time=False`,
    and every `ProcessManager` option."""
    return TestProcessManager(**options)


try:
    import pytest as _pytest
except ImportError:  # pytest is optional
    _pytest = None

if _pytest is not None:

    @_pytest.fixture
    def titan_test_manager():  # type: ignore[no-untyped-def]
        """A test manager on its own engine thread (usable from any event loop); after the
        test it is cleaned up, and a worker that outlived the shutdown fails the test."""
        import asyncio

        pm = create_test_process_manager(engine="thread")
        yield pm
        asyncio.run(asyncio.wait_for(pm.cleanup(), 60))

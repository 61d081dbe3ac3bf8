"""`titan_pm.sync.ProcessManager`: the blocking host, the fastest path for scripts.

The core engine runs on your own thread while a method of the manager runs (a
call is one round trip with the GIL released, no thread hop); between calls
it waits, and the next call first lets it catch up on what happened meanwhile
(crashes, restarts, worker output, the recycling of a worker that did not stop
a timed-out call). For a script that must supervise while it does other
work, `ProcessManager(engine="thread")` runs the engine on a thread of its own
(two thread hops per call). Use this manager from the thread that created it. Ctrl-C during a call cancels the call and raises
KeyboardInterrupt.

    with ProcessManager() as pm:
        calc = pm.spawn("calculator.py")
        assert calc.add(5, 3) == 8

Events: `pm.on("crash", callback)`; callbacks run on your thread at the end
of the manager's next method call (or `pm.poll_events()`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Dict, Generic, List, Optional, Type, Union, overload

from . import _native
from .control import ControlServer
from ._methods import check_interface, remote_call, result_decoder_of
from .given import process_id_of, process_refs
from ._values import encode, encode_args
from ._options import add_seed_names, check_event, manager_options, merge_call_options, native_target
from .errors import ConfigError, SerializationError

__all__ = ["ProcessManager", "ProcessHandle", "Pool", "Workflow"]

Event = Dict[str, Any]


def _send(
    call: Callable[..., Any], target: int, method: str, args: Any, timeout: Optional[float], key: Optional[str], retries: Optional[int]
) -> Any:
    """One call; arguments the codec refuses are encoded by the value rule (`titan_pm._values`) and sent again."""
    try:
        return call(target, method, args, timeout, key, retries)
    except SerializationError as e:
        if not e.path.startswith("args"):
            raise
        return call(target, method, encode_args(args), timeout, key, retries)

if TYPE_CHECKING:  # typing_extensions: type checkers bundle it; nothing imports it at run time
    from typing_extensions import Concatenate, ParamSpec, TypeVar

    T = TypeVar("T", default=Any)  # the worker class a handle is typed from; Any when not given
    P = ParamSpec("P")
    R = TypeVar("R")
else:
    from typing import TypeVar

    T = TypeVar("T")


class ProcessHandle(Generic[T]):
    """A spawned process. Remote methods are attributes: `handle.add(5, 3)`.
    `process_id` survives restarts. A method whose name a handle attribute
    shadows is reached with `handle.call("name", ...)`.

    Typed calls: `pm.spawn("calc.py", Calculator)` is a `ProcessHandle[Calculator]`
    and `handle.call(Calculator.add, 5, 3)` is checked by mypy and pyright (the
    method, its arguments, and the result's type; an async method's result is
    what it returns once awaited)."""

    def __init__(
        self,
        pm: "ProcessManager",
        process_id: int,
        timeout: Optional[float] = None,
        key: Optional[str] = None,
        retries: Optional[int] = None,
    ):
        self._pm = pm
        self.process_id = process_id
        self._timeout = timeout
        self._key = key
        self._retries = retries

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        pm = self._pm
        call = pm._native.call
        pid, timeout, key, retries = self.process_id, self._timeout, self._key, self._retries

        def method(*args: Any) -> Any:
            try:
                return call(pid, name, args, timeout, key, retries)
            except SerializationError as e:  # inline, not _send: this is the hot path
                if not e.path.startswith("args"):
                    raise
                return call(pid, name, encode_args(args), timeout, key, retries)
            finally:
                if pm._listeners:
                    pm.poll_events()

        method.__name__ = method.__qualname__ = name
        self.__dict__[name] = method  # later lookups skip __getattr__
        return method

    @overload
    def call(
        self, method: Callable[Concatenate[T, P], Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R: ...
    @overload
    def call(self, method: Callable[Concatenate[T, P], R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...
    @overload
    def call(self, method: str, /, *args: Any) -> Any: ...
    def call(self, method: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Calls `method`, a method of the worker class (`Calculator.add`: typed, keyword
        arguments bound by its signature) or its name."""
        name, args = remote_call(method, args, kwargs)
        r = _send(self._pm._native.call, self.process_id, name, args, self._timeout, self._key, self._retries)
        decode = result_decoder_of(method)
        return r if decode is None else decode(r)

    def with_options(
        self, *, timeout: Optional[float] = None, key: Optional[str] = None, retries: Optional[int] = None
    ) -> "ProcessHandle[T]":
        """A view of this handle whose calls use `timeout` (seconds), routing `key`, and
        `retries`: a call whose worker crashes waits for the restart and is sent again, at
        most `retries` times, within the same deadline. Only for calls safe to repeat (a
        retried call may run more than once). A bad value is a `ConfigError` at once."""
        t, k, r = merge_call_options((self._timeout, self._key, self._retries), timeout, key, retries)
        return ProcessHandle(self._pm, self.process_id, t, k, r)

    def info(self) -> Dict[str, Any]:
        return self._pm.get_process(self.process_id)

    def __repr__(self) -> str:
        return f"<ProcessHandle process_id={self.process_id}>"


class Pool(Generic[T]):
    """Several workers of one target behind one handle: `pool.add(1, 2)` goes to
    the worker the strategy picks; `pool.size`, `pool.scale(n)`, `pool.metrics()`,
    `pool.drain()`, `pool.destroy()`, `pool.on(event, callback)`. Typed like
    `ProcessHandle`: `pm.pool("calc.py", Calculator).call(Calculator.add, 1, 2)`."""

    def __init__(
        self,
        pm: "ProcessManager",
        pool_id: int,
        timeout: Optional[float] = None,
        key: Optional[str] = None,
        retries: Optional[int] = None,
    ):
        self._pm = pm
        self.pool_id = pool_id
        self._timeout = timeout
        self._key = key
        self._retries = retries
        self._listeners: Dict[str, List[Callable[[Event], Any]]] = {}

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        call = self._pm._native.pool_call
        pid, timeout, key, retries = self.pool_id, self._timeout, self._key, self._retries

        def method(*args: Any) -> Any:
            try:
                return call(pid, name, args, timeout, key, retries)
            except SerializationError as e:  # inline, not _send: this is the hot path
                if not e.path.startswith("args"):
                    raise
                return call(pid, name, encode_args(args), timeout, key, retries)
            finally:
                if self._listeners:
                    self.poll_events()

        method.__name__ = method.__qualname__ = name
        self.__dict__[name] = method
        return method

    @overload
    def call(
        self, method: Callable[Concatenate[T, P], Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R: ...
    @overload
    def call(self, method: Callable[Concatenate[T, P], R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...
    @overload
    def call(self, method: str, /, *args: Any) -> Any: ...
    def call(self, method: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Calls `method`, a method of the worker class (`Calculator.add`: typed, keyword
        arguments bound by its signature) or its name."""
        name, args = remote_call(method, args, kwargs)
        r = _send(self._pm._native.pool_call, self.pool_id, name, args, self._timeout, self._key, self._retries)
        decode = result_decoder_of(method)
        return r if decode is None else decode(r)

    def with_options(self, *, timeout: Optional[float] = None, key: Optional[str] = None, retries: Optional[int] = None) -> "Pool[T]":
        """A view whose calls use `timeout` (seconds), `key` (for the hash strategies) and
        `retries` (a crashed call sent again to another worker; default: the pool's)."""
        t, k, r = merge_call_options((self._timeout, self._key, self._retries), timeout, key, retries)
        view = Pool(self._pm, self.pool_id, t, k, r)
        view._listeners = self._listeners
        return view

    @property
    def size(self) -> int:
        return self._pm._native.pool_size(self.pool_id)

    def scale(self, size: int) -> None:
        self._pm._native.pool_scale(self.pool_id, size)
        if self._listeners:
            self.poll_events()

    def metrics(self) -> Dict[str, Any]:
        return self._pm._native.pool_metrics(self.pool_id)

    def drain(self) -> None:
        self._pm._native.pool_drain(self.pool_id)

    def destroy(self) -> None:
        self._pm._native.pool_destroy(self.pool_id)
        if self._listeners:
            self.poll_events()

    def on(self, event: str, callback: Callable[[Event], Any]) -> Callable[[Event], Any]:
        """Calls `callback(event)` for pool events named `event` (or "*"), on this thread."""
        self._listeners.setdefault(event, []).append(callback)
        return callback

    def poll_events(self) -> List[Event]:
        events = self._pm._native.pool_take_events(self.pool_id)
        for e in events:
            for cb in self._listeners.get(e["type"], []) + self._listeners.get("*", []):
                cb(e)
        return events

    def __repr__(self) -> str:
        return f"<Pool pool_id={self.pool_id}>"


class Workflow:
    """A loaded workflow (see `titan_pm.Workflow`): `wf.run(input, run_id=...)` blocks until
    the run ends; `wf.on(event, callback)` callbacks run on this thread when `run` returns
    (or at `wf.poll_events()`)."""

    def __init__(self, pm: "ProcessManager", native: Any, process_id: int):
        self._pm = pm
        self._native = native
        self.process_id = process_id
        self._listeners: Dict[str, List[Callable[[Event], Any]]] = {}

    @property
    def stages(self) -> List[str]:
        """The stage names, in the order `run` reports them."""
        return self._native.stages()

    def run(self, input: Any = None, *, run_id: Optional[str] = None) -> Dict[str, Any]:
        """Runs the workflow: every stage's result by name, or `WorkflowError` after the
        compensations ran. With the id of a finished run, its stored outcome without running
        anything; with an unfinished one (its host died), resumes it."""
        try:
            return self._pm._native.workflow_run(self._native, input, run_id)
        finally:
            if self._listeners:
                self.poll_events()

    def runs(self, limit: int = 100) -> List[Dict[str, Any]]:
        """The newest runs of the journal with their state."""
        return self._pm._native.workflow_runs(self._native, limit)

    def on(self, event: str, callback: Callable[[Event], Any]) -> Callable[[Event], Any]:
        """Calls `callback(event)` for each run event named `event` (see `titan_pm.Workflow.on`,
        or "*"), on this thread; returns the callback."""
        from .workflow import _EVENTS

        if event != "*" and event not in _EVENTS:
            raise ConfigError(f"unknown workflow event {event!r} (expected one of {', '.join(_EVENTS)})")
        if not self._listeners:
            self._native.subscribe()
        self._listeners.setdefault(event, []).append(callback)
        return callback

    def poll_events(self) -> List[Event]:
        """Delivers the run events since the last look to the callbacks; returns them."""
        events = self._pm._native.workflow_take_events(self._native)
        for e in events:
            for cb in self._listeners.get(e["type"], []) + self._listeners.get("*", []):
                cb(e)
        return events

    def __repr__(self) -> str:
        return f"<Workflow process_id={self.process_id} stages={self.stages}>"


add_seed_names(ProcessHandle, "process_id")
add_seed_names(Pool, "pool_id")


class ProcessManager:
    """The blocking twin of `titan_pm.ProcessManager`: the same options (seconds),
    the same methods, each returning its result instead of an awaitable."""

    _TEST = False  # titan_pm.testing.SyncTestProcessManager sets it

    def __init__(
        self,
        *,
        isolation: str = "child",
        transport: str = "ipc",
        python: Optional[str] = None,
        engine: str = "caller",
        **options: Any,
    ):
        """`engine`: "caller" (default: the engine runs on your thread during each
        call, no thread hop) or "thread" (on a thread of its own: it supervises
        between calls too, at two thread hops per call)."""
        if engine not in ("caller", "thread"):
            raise ConfigError(f"unknown engine {engine!r} (expected caller or thread)")
        self._native = _native.SyncManager(manager_options(isolation, transport, python, options), engine == "thread", self._TEST)
        self._isolation = isolation
        self._listeners: Dict[str, List[Callable[[Event], Any]]] = {}

    def __enter__(self) -> "ProcessManager":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def spawn(
        self,
        target: Union[str, "os.PathLike[str]", Type[T]],
        interface: Optional[Type[T]] = None,
        /,
        *,
        dependencies: Optional[Dict[str, Any]] = None,
        isolation: Optional[str] = None,
        **options: Any,
    ) -> ProcessHandle[T]:
        """Starts `target` and waits until its `init` has run (see `titan_pm.ProcessManager.spawn`);
        `interface`, the worker's `@process` class, only types the handle."""
        check_interface(interface)
        target, in_process = native_target(target, isolation or self._isolation)
        if dependencies:
            # Process handles among them are given to the worker (titan_pm.given, the sidecar pattern).
            dependencies = encode(process_refs(dependencies), "dependencies")  # the value rule (titan_pm._values)
        options.update(dependencies=dependencies, isolation=isolation)
        try:
            return ProcessHandle(self, self._native.spawn(target, in_process, options))
        finally:
            if self._listeners:
                self.poll_events()

    def pool(
        self,
        target: Union[str, "os.PathLike[str]", Type[T]],
        interface: Optional[Type[T]] = None,
        /,
        *,
        size: Any = None,
        strategy: Any = "least-connections",
        concurrency: int = 1,
        max_queue_size: int = 100,
        isolation: Optional[str] = None,
        **options: Any,
    ) -> Pool[T]:
        """Starts a pool (see `titan_pm.ProcessManager.pool` for the options); `interface` types it."""
        check_interface(interface)
        target, in_process = native_target(target, isolation or self._isolation)
        strategy = getattr(strategy, "value", strategy)  # a PoolStrategy member
        options.update(size=size, strategy=strategy, concurrency=concurrency, max_queue_size=max_queue_size, isolation=isolation)
        if "dependencies" in options:
            options["dependencies"] = process_refs(options["dependencies"])
        return Pool(self, self._native.pool(target, in_process, options))

    def workflow(self, target: Any, *, isolation: Optional[str] = None, **options: Any) -> "Workflow":
        """Loads a `@workflow` class (its stages run in this process: isolation "none" unless
        given) or `file.py[:Class]`, checks its stage graph (a cycle, a duplicate name or an
        unknown `depends_on` is a `ConfigError`), and returns a `Workflow` whose `run` blocks.
        Options as for `titan_pm.ProcessManager.workflow`."""
        if isolation is None:
            isolation = "none" if isinstance(target, type) else self._isolation
        native_t, in_process = native_target(target, isolation)
        process_id, native = self._native.workflow_load(native_t, in_process, dict(options, isolation=isolation))
        return Workflow(self, native, process_id)

    def workflow_runs(self, limit: int = 100) -> List[Dict[str, Any]]:
        """The newest runs of the manager's workflow journal with their state
        ("running", "compensating", "completed", "failed")."""
        return self._native.workflow_runs(None, limit)

    def listen(
        self,
        address: str,
        tls: Optional[Dict[str, str]] = None,
        token: Optional[str] = None,
        gateway: Optional[Dict[str, str]] = None,
    ) -> str:
        """Listens for remote workers (see `titan_pm.ProcessManager.listen`): `tls={"cert", "key",
        "ca"}`, `token`, `gateway={"address", "token"}` (an HTTP gateway); returns the bound
        address ("ip:port"). Workers that join under NAME serve `pool("remote:NAME", size=...)`
        and `attach("remote:NAME")`. With the default engine ("caller") workers are let in,
        and gateway requests answered, while a method of the manager runs; with
        `engine="thread"` at any time."""
        options: Dict[str, Any] = {"address": address}
        if tls is not None:
            options["tls"] = tls
        if token is not None:
            options["token"] = token
        if gateway is not None:
            options["gateway"] = gateway
        return self._native.listen(options)

    def gateway_address(self) -> Optional[str]:
        """Where the HTTP gateway listens ("ip:port"), once `listen(gateway=...)` started one."""
        return self._native.gateway_address()

    def attach(self, name: str, **options: Any) -> ProcessHandle[Any]:
        """One remote worker that joined (or joins within the spawn timeout) under `name`
        ("remote:api" or "api"), as a process (see `titan_pm.ProcessManager.attach`)."""
        try:
            return ProcessHandle(self, self._native.attach(name, options))
        finally:
            if self._listeners:
                self.poll_events()

    def restart_with(
        self,
        process: Any,
        target: Union[str, "os.PathLike[str]", type],
        /,
        *,
        dependencies: Optional[Dict[str, Any]] = None,
        isolation: Optional[str] = None,
        **options: Any,
    ) -> None:
        """Replaces the process's instance with one of `target` (a file or `@process` class, as
        for `spawn`) and spawn `options`: the new instance is ready before the old one finishes
        its calls and stops (no call fails); the id stays, the pid changes, and later restarts
        use the new target and options. A process of a `remote:` target is not restarted by the host.
        `process`: a `ProcessHandle` or a process id."""
        process_id = process_id_of(process, "restart_with")
        target, in_process = native_target(target, isolation or self._isolation)
        if dependencies:
            dependencies = encode(process_refs(dependencies), "dependencies")
        options.update(dependencies=dependencies, isolation=isolation)
        try:
            self._native.restart_with(process_id, target, in_process, options)
        finally:
            if self._listeners:
                self.poll_events()

    def kill(self, process_id: int) -> None:
        """Stops a process at once; not a crash, so it is not restarted."""
        self._native.kill(process_id)

    def serve_control(self, path: Optional[str] = None) -> ControlServer:
        """Serves the control socket at `path` (else the default, see `titan_pm.control`),
        so `titan-pm ls`, `logs`, `restart`, `scale`, `monit` and `stop` reach this manager.
        Needs `ProcessManager(engine="thread")`, so the socket answers between calls."""
        return ControlServer(self._native.serve_control(path))

    def list_processes(self) -> List[Dict[str, Any]]:
        return self._native.list_processes()

    def get_process(self, process_id: int) -> Dict[str, Any]:
        return self._native.get_process(process_id)

    def get_health(self, process_id: int) -> Dict[str, Any]:
        return self._native.get_health(process_id)

    def get_metrics(self, process_id: int) -> Dict[str, Any]:
        return self._native.get_metrics(process_id)

    def shutdown(self) -> None:
        """Stops intake, drains in-flight calls, runs @on_shutdown hooks, then SIGTERM and SIGKILL."""
        self._native.shutdown()
        if self._listeners:
            self.poll_events()

    def on(self, event: str, callback: Callable[[Event], Any]) -> Callable[[Event], Any]:
        """Calls `callback(event)` for each `event` ("spawn", "ready", "crash", "restart",
        "failed", "exit", "refused", or "*"), on this thread; returns the callback."""
        check_event(event)
        self._listeners.setdefault(event, []).append(callback)
        return callback

    def off(self, event: str, callback: Callable[[Event], Any]) -> None:
        if callback in self._listeners.get(event, []):
            self._listeners[event].remove(callback)

    def poll_events(self) -> List[Event]:
        """Lets the engine catch up, then delivers the events since the last look; returns them."""
        events = self._native.take_events()
        for e in events:
            for cb in self._listeners.get(e["type"], []) + self._listeners.get("*", []):
                cb(e)
        return events

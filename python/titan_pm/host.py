"""`titan_pm.ProcessManager`: the asyncio host.

By default (`engine="loop"`) the core engine runs on the event loop's own
thread: the loop's selector is wrapped, so while the loop waits for I/O the
engine runs (crashes noticed, restarts made, output forwarded), and a call
needs no thread hop. It works with asyncio's default selector loop; with any
other loop, or with `engine="thread"`, the engine runs on a thread of its own
and results reach the loop in batches through a descriptor it watches (it then
also supervises while the loop is busy running Python code). A manager belongs
to the event loop that first used it.

    async with ProcessManager() as pm:
        calc = await pm.spawn("calculator.py")
        assert await calc.add(5, 3) == 8

Cancelling a task that awaits a call cancels the call in the worker.
Events: `pm.on("crash", callback)` calls `callback(event_dict)` on the loop
(a coroutine function is scheduled as a task); `"*"` receives every event.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Dict, Generic, List, Optional, Type, Union, overload

from . import _native
from .control import ControlServer
from ._loop import ThreadDelivery, loop_driver
from ._methods import check_interface, remote_call, result_decoder_of
from .given import process_id_of, process_refs
from ._values import encode, encode_args
from ._options import add_seed_names, check_event, manager_options, merge_call_options, native_target
from .errors import ConfigError, SerializationError

__all__ = ["ProcessManager", "ProcessHandle", "Pool"]

Event = Dict[str, Any]

if TYPE_CHECKING:  # typing_extensions: type checkers bundle it; nothing imports it at run time
    from typing_extensions import Concatenate, ParamSpec, TypeVar

    from .supervise import Supervisor

    T = TypeVar("T", default=Any)  # the worker class a handle is typed from; Any when not given
    P = ParamSpec("P")
    R = TypeVar("R")
else:
    from typing import TypeVar

    T = TypeVar("T")


class ProcessHandle(Generic[T]):
    """A spawned process. Remote methods are attributes: `await handle.add(5, 3)`.
    `process_id` survives restarts. A method whose name a handle attribute
    shadows is reached with `await handle.call("name", ...)`.

    Typed calls: a handle spawned with its class (`pm.spawn("calc.py", Calculator)`
    or `pm.spawn(Calculator)`) is a `ProcessHandle[Calculator]`, and
    `await handle.call(Calculator.add, 5, 3)` is checked by mypy and pyright:
    the method must be Calculator's, the arguments its parameters, and the
    result has its return type."""

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
        call = self._pm._call
        pid, timeout, key, retries = self.process_id, self._timeout, self._key, self._retries

        def method(*args: Any) -> Any:
            return call(pid, name, args, timeout, key, retries=retries)

        method.__name__ = method.__qualname__ = name
        self.__dict__[name] = method  # later lookups skip __getattr__
        return method

    @overload
    def call(
        self, method: Callable[Concatenate[T, P], Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]: ...
    @overload
    def call(self, method: Callable[Concatenate[T, P], R], /, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]: ...
    @overload
    def call(self, method: str, /, *args: Any) -> Coroutine[Any, Any, Any]: ...
    def call(self, method: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Calls `method`, a method of the worker class (`Calculator.add`: typed, keyword
        arguments bound by its signature) or its name (a coroutine)."""
        name, args = remote_call(method, args, kwargs)
        return self._pm._call(
            self.process_id, name, args, self._timeout, self._key, False, result_decoder_of(method), self._retries
        )

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
    """Several workers of one target behind one handle: `await pool.add(1, 2)` goes
    to the worker the strategy picks. `pool.size`, `await pool.scale(n)`,
    `await pool.metrics()`, `await pool.drain()`, `await pool.destroy()`, and
    `pool.on("pool:scaled", callback)` for its events. Typed like `ProcessHandle`:
    `pm.pool("calc.py", Calculator)` is a `Pool[Calculator]`, `await pool.call(Calculator.add, 1, 2)`."""

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

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        call = self._pm._call
        pid, timeout, key, retries = self.pool_id, self._timeout, self._key, self._retries

        def method(*args: Any) -> Any:
            return call(pid, name, args, timeout, key, True, retries=retries)

        method.__name__ = method.__qualname__ = name
        self.__dict__[name] = method
        return method

    @overload
    def call(
        self, method: Callable[Concatenate[T, P], Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]: ...
    @overload
    def call(self, method: Callable[Concatenate[T, P], R], /, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]: ...
    @overload
    def call(self, method: str, /, *args: Any) -> Coroutine[Any, Any, Any]: ...
    def call(self, method: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Calls `method`, a method of the worker class (`Calculator.add`: typed, keyword
        arguments bound by its signature) or its name (a coroutine)."""
        name, args = remote_call(method, args, kwargs)
        return self._pm._call(self.pool_id, name, args, self._timeout, self._key, True, result_decoder_of(method), self._retries)

    def with_options(self, *, timeout: Optional[float] = None, key: Optional[str] = None, retries: Optional[int] = None) -> "Pool[T]":
        """A view whose calls use `timeout` (seconds), `key` (for the hash strategies) and
        `retries` (a crashed call sent again to another worker; default: the pool's)."""
        t, k, r = merge_call_options((self._timeout, self._key, self._retries), timeout, key, retries)
        return Pool(self._pm, self.pool_id, t, k, r)

    @property
    def size(self) -> int:
        """The number of members the pool is keeping (its target, including one being replaced)."""
        return self._pm._native.pool_size(self.pool_id)

    async def scale(self, size: int) -> None:
        await self._pm._wait(self._pm._native.pool_scale(self.pool_id, size))

    async def metrics(self) -> Dict[str, Any]:
        """{"size", "busy", "idle", "queue_length", "requests", "errors", "error_rate", "latency", "state", "breaker", "workers"}."""
        return await self._pm._wait(self._pm._native.pool_metrics(self.pool_id))

    async def drain(self) -> None:
        """Finishes in-flight and queued calls and refuses new ones."""
        await self._pm._wait(self._pm._native.pool_drain(self.pool_id))

    async def destroy(self) -> None:
        """Drains, then stops every worker."""
        await self._pm._wait(self._pm._native.pool_destroy(self.pool_id))

    def on(self, event: str, callback: Callable[[Event], Any]) -> Callable[[Event], Any]:
        """Calls `callback(event)` for each pool event named `event` ("pool:scaled", "worker:crashed", ..., or "*")."""
        listeners = self._pm._pool_listeners.setdefault(self.pool_id, {})
        if not listeners:
            token = self._pm._native.pool_subscribe(self.pool_id)
            self._pm._delivery.streams[token] = lambda e: self._pm._emit(e, listeners)
        listeners.setdefault(event, []).append(callback)
        return callback

    def __repr__(self) -> str:
        return f"<Pool pool_id={self.pool_id}>"


add_seed_names(ProcessHandle, "process_id")
add_seed_names(Pool, "pool_id")


class ProcessManager:
    """Spawns, calls, supervises and stops workers from asyncio. Options are
    the brief's in snake_case, durations in seconds: `timeout` (30.0, every
    call's deadline), `spawn_timeout`, `health_timeout`, `shutdown_timeout`,
    `cancel_grace`, `restart_policy` (a dict: `enabled`, `max_restarts`,
    `window`, `initial_backoff`, `multiplier`, `max_backoff`; or False),
    `output` ("prefix", "inherit", "ignore" or a callable `(stream, name, pid,
    line)`), `python` (default: this interpreter), `node`, `tcp_host`, `spin`
    (seconds the engine keeps polling after a job instead of sleeping; default 0),
    `fork_server` (default True: `.py` children are forked from a pre-imported
    interpreter the manager starts with itself, in the background, when its
    isolation is "child"; else on its first Python child spawn).
    `engine`: "loop" (default) or "thread" (see the module's doc)."""

    # titan_pm.testing's manager sets it: the same engine, with the testing utilities.
    _TEST = False

    def __init__(
        self,
        *,
        isolation: str = "child",
        transport: str = "ipc",
        python: Optional[str] = None,
        engine: str = "loop",
        **options: Any,
    ):
        if engine not in ("loop", "thread"):
            raise ConfigError(f"unknown engine {engine!r} (expected loop or thread)")
        self._options = manager_options(isolation, transport, python, options)
        _native.check_manager_options(self._options, self._TEST)  # the engine starts at first use, in the loop
        self._isolation = isolation
        self._engine = engine
        self._native: Any = None
        self._delivery: Any = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._waiting: Dict[int, "asyncio.Future[Any]"] = {}
        self._listeners: Dict[str, List[Callable[[Event], Any]]] = {}
        self._pool_listeners: Dict[int, Dict[str, List[Callable[[Event], Any]]]] = {}

    async def __aenter__(self) -> "ProcessManager":
        self._bind()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.shutdown()

    # ---- the loop side ----

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return loop
        if self._loop is not None and not self._loop.is_closed():
            raise RuntimeError("this ProcessManager belongs to another event loop")
        if self._native is None:
            driver = loop_driver(loop) if self._engine == "loop" else None
            if driver is not None:
                self._native = _native.AsyncManager(self._options, driver.native, self._TEST)
                self._delivery = driver
            else:
                self._native = _native.AsyncManager(self._options, None, self._TEST)
                self._delivery = ThreadDelivery(self._native)
            self._waiting = self._delivery.waiting
            if self._listeners:
                self._subscribe()
        elif isinstance(self._delivery, ThreadDelivery):
            pass  # the engine thread outlives a loop: watch it from the new one
        else:
            raise RuntimeError("this ProcessManager's event loop is closed; create a new manager")
        if isinstance(self._delivery, ThreadDelivery):
            self._delivery.attach(loop)
        self._loop = loop
        return loop

    def _subscribe(self) -> None:
        token = self._native.subscribe_events()
        self._delivery.streams[token] = lambda e: self._emit(e, self._listeners)

    def _wait(self, token: int) -> "asyncio.Future[Any]":
        fut = self._bind().create_future()
        self._waiting[token] = fut
        fut.add_done_callback(functools.partial(self._finished, token))
        return fut

    def _finished(self, token: int, fut: "asyncio.Future[Any]") -> None:
        if fut.cancelled():
            self._waiting.pop(token, None)
            self._native.cancel(token)

    async def _call(
        self,
        target: int,
        method: str,
        args: Any,
        timeout: Optional[float],
        key: Optional[str],
        pool: bool = False,
        decode: Optional[Callable[[Any], Any]] = None,
        retries: Optional[int] = None,
    ) -> Any:
        """Calls a process (or a pool). The hot path: no done callback; a cancelled await cancels the call.
        Arguments the codec refuses are encoded by the value rule (`titan_pm._values`) and sent again;
        `decode` turns the result back into a typed call's return annotation."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind()
        call = self._native.pool_call if pool else self._native.call
        try:
            token = call(target, method, args, timeout, key, retries)
        except SerializationError as e:
            if not e.path.startswith("args"):
                raise
            token = call(target, method, encode_args(args), timeout, key, retries)
        fut = loop.create_future()
        self._waiting[token] = fut
        try:
            return await fut if decode is None else decode(await fut)
        except asyncio.CancelledError:
            self._waiting.pop(token, None)
            self._native.cancel(token)
            raise

    def _emit(self, event: Event, listeners: Dict[str, List[Callable[[Event], Any]]]) -> None:
        for cb in listeners.get(event["type"], []) + listeners.get("*", []):
            try:
                r = cb(event)
                if inspect.isawaitable(r):
                    asyncio.ensure_future(r)
            except Exception as e:
                self._loop.call_exception_handler({"message": f"titan-pm event listener {cb!r} raised", "exception": e})  # type: ignore[union-attr]

    # ---- the API ----

    async def spawn(
        self,
        target: Union[str, "os.PathLike[str]", Type[T]],
        interface: Optional[Type[T]] = None,
        /,
        *,
        dependencies: Optional[Dict[str, Any]] = None,
        isolation: Optional[str] = None,
        **options: Any,
    ) -> ProcessHandle[T]:
        """Starts `target` (`file.py`, `file.py:Class`, a `.js` file, an executable, or a
        `@process` class with isolation worker/none) and waits until its `init` has run.
        `interface`, the worker's `@process` class, only types the handle (`ProcessHandle[Calculator]`)."""
        check_interface(interface)
        self._bind()
        target, in_process = native_target(target, isolation or self._isolation)
        if dependencies:
            # Process handles among them are given to the worker (titan_pm.given, the sidecar pattern).
            dependencies = encode(process_refs(dependencies), "dependencies")  # the value rule (titan_pm._values)
        options.update(dependencies=dependencies, isolation=isolation)
        pid = await self._wait(self._native.spawn(target, in_process, options))
        return ProcessHandle(self, pid)

    async def pool(
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
        """Starts `size` workers of `target` (a number, or "auto": the CPU count) and waits until
        all are ready. Options: `strategy` (kebab-case names: "round-robin", "least-connections",
        "least-loaded", "consistent-hash", ...), `concurrency` (calls one worker runs at once),
        `max_queue_size` (beyond it PoolBackpressureError at once), `request_timeout` (s),
        `retries`, `weights`, `auto_scale`, `circuit_breaker`, `health`, `recycle` (dicts,
        durations in seconds), and any spawn option for the workers. `interface` types the pool
        as for `spawn`."""
        check_interface(interface)
        self._bind()
        target, in_process = native_target(target, isolation or self._isolation)
        strategy = getattr(strategy, "value", strategy)  # a PoolStrategy member
        options.update(size=size, strategy=strategy, concurrency=concurrency, max_queue_size=max_queue_size, isolation=isolation)
        if "dependencies" in options:
            options["dependencies"] = process_refs(options["dependencies"])
        pool_id = await self._wait(self._native.pool(target, in_process, options))
        return Pool(self, pool_id)

    async def listen(
        self,
        address: str,
        tls: Optional[Dict[str, str]] = None,
        token: Optional[str] = None,
        gateway: Optional[Dict[str, str]] = None,
    ) -> str:
        """Listens for remote workers (`python -m titan_pm.worker --connect ...`, `titan-pm-worker
        --connect ...`, a Rust worker's `.run()`): `tls={"cert", "key", "ca"}` (PEM paths; workers
        must present a certificate signed by `ca`), `token` (a join token, on top of TLS or, on
        loopback only, instead of it). Returns the bound address ("ip:port"). Workers that join
        under NAME serve `pool("remote:NAME", min=...)` and `attach("remote:NAME")`.
        `gateway={"address", "token"}` serves an HTTP gateway as well (HTTPS with `tls`'s cert
        and key; plain HTTP only on loopback): `POST /processes/{name|id}/{method}` with a JSON
        array of arguments, `GET /health`, `GET /metrics`, each with `Authorization: Bearer
        TOKEN`; `gateway_address()` says where it listens."""
        self._bind()
        options: Dict[str, Any] = {"address": address}
        if tls is not None:
            options["tls"] = tls
        if token is not None:
            options["token"] = token
        if gateway is not None:
            options["gateway"] = gateway
        return await self._wait(self._native.listen(options))

    def gateway_address(self) -> Optional[str]:
        """Where the HTTP gateway listens ("ip:port"), once `listen(gateway=...)` started one."""
        return None if self._native is None else self._native.gateway_address()

    async def attach(self, name: str, **options: Any) -> "ProcessHandle[Any]":
        """One remote worker that joined (or joins within the spawn timeout) under `name`
        ("remote:api" or "api"), as a process. When it disconnects its calls in flight fail at
        once (ProcessCrashedError) and the process waits for the next worker of that name."""
        self._bind()
        pid = await self._wait(self._native.attach(name, options))
        return ProcessHandle(self, pid)

    async def workflow(self, target: Any, *, isolation: Optional[str] = None, **options: Any) -> Any:
        """Loads a `@workflow` class (runs in this process: isolation "none" unless given) or
        `file.py[:Class]`, checks its stage graph, and returns a `titan_pm.Workflow`. Options:
        spawn options, `retry_backoff` (dict), `retry_jitter`, `compensation_retries`."""
        from .workflow import load

        return await load(self, target, isolation, options)

    async def workflow_runs(self, limit: int = 100) -> List[Dict[str, Any]]:
        """The newest runs of the manager's workflow journal with their state
        ("running", "compensating", "completed", "failed")."""
        self._bind()
        return await self._wait(_native.workflow_runs(self._native, limit))

    async def supervisor(self, cls: Any) -> "Supervisor":
        """Starts a `@supervisor` class (see `titan_pm.supervise`): its children in
        declaration order, each ready before the next."""
        from .supervise import Supervisor, tree

        self._bind()
        native = _native.Supervision(self._native)
        sup_id = await self._wait(native.start(tree(cls)))
        return Supervisor(self, native, sup_id, [])

    async def restart_with(
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
        self._bind()
        process_id = process_id_of(process, "restart_with")
        target, in_process = native_target(target, isolation or self._isolation)
        if dependencies:
            dependencies = encode(process_refs(dependencies), "dependencies")
        options.update(dependencies=dependencies, isolation=isolation)
        await self._wait(self._native.restart_with(process_id, target, in_process, options))

    async def kill(self, process_id: int) -> None:
        """Stops a process at once; not a crash, so it is not restarted."""
        self._bind()
        await self._wait(self._native.kill(process_id))

    def serve_control(self, path: Optional[str] = None) -> ControlServer:
        """Serves the control socket at `path` (else the default, see `titan_pm.control`),
        so `titan-pm ls`, `logs`, `restart`, `scale`, `monit` and `stop` reach this manager."""
        self._bind()
        return ControlServer(self._native.serve_control(path))

    def list_processes(self) -> List[Dict[str, Any]]:
        """Every process: process_id, name, pid, state, restarts, isolation, transport."""
        self._bind()
        return self._native.list_processes()

    def get_process(self, process_id: int) -> Dict[str, Any]:
        self._bind()
        return self._native.get_process(process_id)

    async def get_health(self, process_id: int) -> Dict[str, Any]:
        """{"status", "checks", "timestamp"}: the worker's own check, never queued behind calls."""
        self._bind()
        return await self._wait(self._native.get_health(process_id))

    async def get_metrics(self, process_id: int) -> Dict[str, Any]:
        """{"cpu" (% of one core), "memory" (RSS bytes), "requests", "errors", "latency": {"p50", "p95", "p99"} (ms)}."""
        self._bind()
        return await self._wait(self._native.get_metrics(process_id))

    async def shutdown(self) -> None:
        """Stops intake, drains in-flight calls, runs @on_shutdown hooks, then SIGTERM and SIGKILL."""
        if self._native is None:
            return
        self._bind()
        await self._wait(self._native.shutdown())

    def on(self, event: str, callback: Callable[[Event], Any]) -> Callable[[Event], Any]:
        """Calls `callback(event)` for each `event` ("spawn", "ready", "crash", "restart",
        "failed", "exit", "refused", or "*" for all); returns the callback."""
        check_event(event)
        if not self._listeners and self._native is not None:
            self._subscribe()
        self._listeners.setdefault(event, []).append(callback)
        return callback

    def off(self, event: str, callback: Callable[[Event], Any]) -> None:
        if callback in self._listeners.get(event, []):
            self._listeners[event].remove(callback)

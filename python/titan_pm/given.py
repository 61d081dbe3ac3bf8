"""What a worker is given by its host: other processes to call
(`inject_process`, the host's `processes={...}` spawn option or a supervised
child's `inject=[...]`) and its class's host-held shared state (`shared_state`).

    @process(name="orders")
    class Orders:
        users = inject_process("users")     # the process given under "users"
        placed = shared_state(0)             # one value for every Orders instance

        @public
        async def place(self, user_id):
            user = await self.users.get_user(user_id)    # as a host handle
            self.placed += 1                              # an atomic add(1) on the host
            return {"order": await shared_value(self, "placed").get(), "user": user}

        @public
        def place_sync(self, user_id):                    # a sync method blocks instead
            return self.users.get_user(user_id), shared_value(self, "placed").add(1)

Inside an asyncio task (an `async` method or init) an operation returns an
awaitable; in a sync method (which runs on the worker's call thread) it blocks
until the result is there. Sync code on the agent's own thread (a sync `init`)
cannot wait: make it async.
Calls carry the current call's trace context, so the callee's span is a child of
this call's. Which process a name reaches, and whether it reaches one at all
(a worker can call exactly what it was given: anything else is a `ConfigError`),
is decided by the core, as is what shared state makes atomic: each `get`,
`set`, `add` and `init` is one step on the host, so `add` (and a numeric write
such as `self.placed += 1`, sent as an add of its delta) never loses an
increment; a read followed by a non-numeric write is not atomic.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Dict, Optional

from ._context import _CURRENT as _TRACE

# The grants of an instance being constructed (its __init__ may use them).
_CONSTRUCTING: "Optional[Granted]" = None

_ATTR = "__titan_given__"


class Granted:
    """One worker instance's grants: the native handle (`titan_pm._native.Granted`), once `init` gave it."""

    def __init__(self) -> None:
        self.native: Any = None
        self.agent_thread: Optional[int] = None

    def _native(self) -> Any:
        if self.native is None:
            from .errors import ConfigError

            raise ConfigError("this worker was given nothing yet: processes and shared state are usable from init on")
        return self.native

    def run(self, start: Callable[[Any, Any], None]) -> Any:
        """Starts an operation (`start(native, done)`): an awaitable in async code, the result in sync code."""
        native = self._native()
        in_task = False
        try:
            in_task = asyncio.current_task() is not None
        except RuntimeError:  # no running loop on this thread
            pass
        if not in_task:
            if threading.get_ident() == self.agent_thread:
                raise RuntimeError(
                    "a given process or shared state used from sync code on the worker's agent thread "
                    "(a sync init or health check) would block it: make that method async and await the call"
                )
            import concurrent.futures  # only for sync callers: a worker starts faster without it

            cf: "concurrent.futures.Future[Any]" = concurrent.futures.Future()

            def settle_cf(ok: bool, value: Any) -> None:
                cf.set_result(value) if ok else cf.set_exception(value)

            start(native, settle_cf)
            return cf.result()
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def settle(ok: bool, value: Any) -> None:
            if not fut.done():
                fut.set_result(value) if ok else fut.set_exception(value)

        def done(ok: bool, value: Any) -> None:  # on the agent's thread
            loop.call_soon_threadsafe(settle, ok, value)

        start(native, done)
        return fut


def given_of(instance: Any) -> Granted:
    g = instance.__dict__.get(_ATTR) if hasattr(instance, "__dict__") else None
    if g is None:
        g = _CONSTRUCTING
    if g is None:
        from .errors import ConfigError

        raise ConfigError(f"{type(instance).__name__} is not served as a worker: nothing was given to it")
    return g


class GivenProcess:
    """A process this worker was given, with a host handle's call API:
    `await proxy.method(*args)` / `proxy.call("method", *args)` (blocking in a sync method),
    `proxy.with_options(timeout=...)`."""

    def __init__(self, granted: Granted, name: str, timeout: Optional[float] = None) -> None:
        self._granted = granted
        self._name = name
        self._timeout = timeout

    @property
    def name(self) -> str:
        return self._name

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)

        def call(*args: Any) -> Any:
            return self.call(method, *args)

        call.__name__ = call.__qualname__ = method
        self.__dict__[method] = call
        return call

    def call(self, method: str, /, *args: Any) -> Any:
        name, timeout, trace = self._name, self._timeout, _TRACE.get()
        return self._granted.run(lambda native, done: native.call(name, method, args, timeout, trace, done))

    def with_options(self, *, timeout: Optional[float] = None) -> "GivenProcess":
        """A view whose calls have `timeout` (seconds) as their deadline."""
        return GivenProcess(self._granted, self._name, timeout if timeout is not None else self._timeout)

    def __repr__(self) -> str:
        return f"<GivenProcess {self._name!r}>"


class inject_process:
    """`users = inject_process("users")`: the process given to this worker under
    that name (a `GivenProcess`). A name the worker was not given fails its calls
    with `ConfigError` (what it was given is listed)."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"inject_process needs a process name (a non-empty str), not {name!r}")
        self.process = name
        self._attr = name

    def __set_name__(self, owner: Any, attr: str) -> None:
        self._attr = attr

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        proxies: Dict[str, GivenProcess] = instance.__dict__.setdefault("__titan_proxies__", {})
        g = given_of(instance)
        p = proxies.get(self._attr)
        if p is None or p._granted is not g:
            p = proxies[self._attr] = GivenProcess(g, self.process)
        return p

    def __set__(self, instance: Any, value: Any) -> None:
        raise AttributeError(f"{self._attr} is an injected process: it cannot be assigned")


class SharedValue:
    """One `shared_state` property of this worker's class, held by the host:
    `get()`, `set(value)`, `add(delta)` (awaitables in async code, blocking in sync code)."""

    def __init__(self, granted: Granted, prop: str, initial: Any) -> None:
        self._granted = granted
        self._prop = prop
        self._initial = initial

    def get(self) -> Any:
        """The value (the `initial` given to `shared_state` while it was never set)."""
        prop, initial = self._prop, self._initial
        return self._granted.run(lambda native, done: native.shared_get(prop, initial, done))

    def set(self, value: Any) -> Any:
        prop = self._prop
        return self._granted.run(lambda native, done: native.shared_set(prop, value, done))

    def add(self, delta: Any = 1) -> Any:
        """Adds `delta` (an int or a float) in one step on the host and returns the new
        value: increments from every instance are never lost. A value never set counts as 0."""
        prop = self._prop
        return self._granted.run(lambda native, done: native.shared_add(prop, delta, done))

    def __repr__(self) -> str:
        return f"<SharedValue {self._prop!r}>"


class SharedView:
    """One instance's view of a `shared_state` property. The rule is core's (`SharedView` in
    core/src/agent/shared_view.rs): reading returns the view at once; writing a number sends
    the delta from the view to the host as an atomic `add` (so concurrent increments are never
    lost) and the view becomes the written value, then the host's total when the add's reply
    comes (plus this instance's adds still in flight); writing anything else is a plain `set`
    (last writer wins). This class only hands values over."""

    def __init__(self, granted: Granted, prop: str, initial: Any) -> None:
        from . import _native

        self.granted = granted
        self.prop = prop
        self.initial = initial
        self._view = _native.SharedView(prop, initial)

    def load(self, then: Callable[[Optional[BaseException]], None]) -> None:
        """Seeds the host's value with `initial` if no instance did yet and loads it; `then(error)` after."""
        self._view.load(self.granted._native(), lambda ok, v: then(None if ok else v))

    def read(self) -> Any:
        return self._view.read()

    def write(self, value: Any) -> None:
        self._view.write(self.granted._native(), value)  # a value the codec refuses raises here, the view unchanged


def _views(instance: Any) -> Dict[str, SharedView]:
    return instance.__dict__.setdefault("__titan_shared__", {})


class shared_state:
    """`count = shared_state(0)`: one value of this property for every instance of
    the class under the manager (all pool members, across restarts), held by the
    host. `self.count` reads this instance's view; `self.count += 1` (any numeric
    write) is an atomic add on the host, so increments from every instance are never
    lost; writing anything else is a set (last writer wins). `initial` seeds the
    host's value (the first instance to start does). Explicit `get`/`set`/`add`:
    `shared_value(self, "count")`."""

    def __init__(self, initial: Any = None) -> None:
        self.initial = initial
        self._attr = ""

    def __set_name__(self, owner: Any, attr: str) -> None:
        self._attr = attr

    def view(self, instance: Any) -> SharedView:
        views = _views(instance)
        v = views.get(self._attr)
        if v is None:
            v = views[self._attr] = SharedView(given_of(instance), self._attr, self.initial)
        return v

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        return self.view(instance).read()

    def __set__(self, instance: Any, value: Any) -> None:
        self.view(instance).write(value)


def shared_value(instance: Any, prop: str) -> SharedValue:
    """The explicit operations on a `shared_state` property of a worker instance:
    `await shared_value(self, "count").add(5)` (blocking in sync code)."""
    d = next((vars(k)[prop] for k in type(instance).__mro__ if prop in vars(k)), None)
    if not isinstance(d, shared_state):
        raise AttributeError(f"{prop} is not a shared_state property of {type(instance).__name__}")
    return SharedValue(given_of(instance), prop, d.initial)


def load_shared(instance: Any, then: Callable[[Optional[BaseException]], None]) -> None:
    """At init, on the agent's thread: seeds and loads every `shared_state` property of
    `instance`; `then(error)` once all replied."""
    props = [d for k in type(instance).__mro__ for d in vars(k).values() if isinstance(d, shared_state)]
    if not props:
        return then(None)
    left = [len(props)]
    errors: "list[BaseException]" = []

    def one(e: Optional[BaseException]) -> None:
        if e is not None:
            errors.append(e)
        left[0] -= 1
        if left[0] == 0:
            then(errors[0] if errors else None)

    for d in props:
        d.view(instance).load(one)


# How a process handle travels in spawn `dependencies` (core's host::grants::PROCESS_REF), and what
# the worker's init gets in its place (GIVEN_REF): core makes the one a grant and the other.
PROCESS_REF = "$process"
GIVEN_REF = "$given"


def process_ref(v: Any) -> Optional[Dict[str, int]]:
    """Host side: `{"$process": id}` for a process or pool handle (asyncio or blocking), else None."""
    cls = type(v)
    if cls.__module__.startswith("titan_pm.") and cls.__name__ in ("ProcessHandle", "Pool"):
        return {PROCESS_REF: v.__dict__["process_id" if cls.__name__ == "ProcessHandle" else "pool_id"]}
    return None


def process_id_of(process: Any, method: str) -> int:
    """Host side: the process id a manager `method` that takes a process handle (asyncio or
    blocking, or anything holding a `process_id`) or a process id was given; else a TypeError."""
    process_id = process if isinstance(process, int) and not isinstance(process, bool) else getattr(process, "__dict__", {}).get("process_id")
    if not isinstance(process_id, int) or isinstance(process_id, bool):
        raise TypeError(f"{method} takes a process handle or a process id, not {type(process).__name__}")
    return process_id


def process_refs(dependencies: Any) -> Any:
    """Host side: process handles (a `ProcessHandle` or `Pool`, asyncio or blocking) among
    spawn `dependencies` become `{"$process": id}`: the core gives them to the worker."""
    if not isinstance(dependencies, dict):
        return dependencies
    out = {}
    for key, v in dependencies.items():
        cls = type(v)
        if cls.__module__.startswith("titan_pm.") and cls.__name__ in ("ProcessHandle", "Pool"):
            v = {PROCESS_REF: v.__dict__["process_id" if cls.__name__ == "ProcessHandle" else "pool_id"]}
        out[key] = v
    return out


def given_refs(granted: Granted, dependencies: Any) -> Any:
    """Worker side: each `{"$given": name}` among init's dependencies becomes the process given under `name`."""
    if not isinstance(dependencies, dict):
        return dependencies
    return {
        k: GivenProcess(granted, v[GIVEN_REF]) if isinstance(v, dict) and len(v) == 1 and isinstance(v.get(GIVEN_REF), str) else v
        for k, v in dependencies.items()
    }


def given_args(granted: Granted, args: Any) -> Any:
    """Worker side: each argument `{"$given": name}` of a call (a process handle the host passed,
    given to this worker with the call) becomes the process given under `name`."""
    if not any(isinstance(a, dict) and len(a) == 1 and GIVEN_REF in a for a in args):
        return args
    return [GivenProcess(granted, a[GIVEN_REF]) if isinstance(a, dict) and len(a) == 1 and isinstance(a.get(GIVEN_REF), str) else a for a in args]


def bind(instance: Any, granted: Granted) -> None:
    """Attaches `granted` to a constructed worker instance."""
    try:
        instance.__dict__[_ATTR] = granted
    except AttributeError:
        pass


def declares_given(cls: type) -> bool:
    """Whether `cls` declares injected processes or shared state (its sync methods then never run inline)."""
    return any(isinstance(v, (inject_process, shared_state)) for k in cls.__mro__ for v in vars(k).values())

"""The worker runtime: loads the `@process` class of a target, owns its
instance, and runs what the native agent asks for. Every entry point gets a
`done` callback and calls it exactly once, now or later:
`done(True, value)`, `done(False, exception)` or `done.not_found(...)`.

Where code runs:
- a sync method that has proven fast (its last few runs each took under 1 ms)
  runs right on the agent's thread, so a call needs no thread hop; any other
  sync method runs on the runtime's call thread, one at a time, so a slow one
  never blocks health probes or async calls;
- async methods, and async init, health check and shutdown hooks, run on an
  asyncio loop: in a child worker, the loop of its main thread, which also runs
  the agent (so an async call needs no thread hop either); in a worker hosted in
  another process's thread, a loop thread of the runtime's own.

A cancelled async call cancels its asyncio task; a cancelled sync call on the
call thread gets `CancelledCall` raised inside it (Python code only: a call
blocked in C finishes and its result is dropped).
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import os
import queue
import sys
import threading
import time
import traceback
from typing import Any, Dict, List, Optional, Set, Tuple

from . import _layers, given
from ._context import _CURRENT as _TRACE
from ._values import args_decoder, kwargs_decoder, result_encoding
from .decorators import ProcessDefinition, definition

# A sync method runs on the agent's thread after this many runs in a row each faster than INLINE_BELOW.
INLINE_AFTER = 3
INLINE_BELOW = 0.001
_now = time.perf_counter


class TargetError(Exception):
    """The target file or class cannot be used as a worker."""


class CancelledCall(BaseException):
    """Raised inside a sync method whose call was cancelled."""


def split_target(target: str) -> Tuple[str, Optional[str]]:
    """`"calc.py:Calculator"` -> ("calc.py", "Calculator"); a plain path has no selector."""
    if ":" in target and not os.path.exists(target):
        file, _, selector = target.rpartition(":")
        if selector and "/" not in selector:
            return file, selector
    return target, None


def load_class(target: str, private: bool = False) -> type:
    """The `@process` class a target names; a `TargetError` says what is wrong.
    A child loads the file under its own name; in a host (`private`) it gets a
    name of its own, so it never shadows one of the host's modules."""
    file, selector = split_target(target)
    shown = os.path.basename(file)
    if not os.path.isfile(file):
        raise TargetError(f"no such worker file: {file}")
    if not file.endswith(".py"):
        raise TargetError(f"{shown} is not a .py file")
    path = os.path.abspath(file)
    stem = os.path.splitext(os.path.basename(path))[0]
    name = stem if stem.isidentifier() and stem not in sys.modules and not private else f"_titan_worker_{stem}_{abs(hash(path))}"
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot load {shown}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)  # a SyntaxError or import error propagates as is

    classes = {k: v for k, v in vars(module).items() if isinstance(v, type) and getattr(v, "__module__", None) == name}
    marked = [k for k, v in classes.items() if definition(v) is not None]
    if selector is not None:
        cls = getattr(module, selector, None)
        if not isinstance(cls, type):
            raise TargetError(f"no class {selector} in {shown} (found: {', '.join(classes) or 'none'})")
        if definition(cls) is None:
            raise TargetError(f"{selector} in {shown} is not a @process class (found: {', '.join(marked) or 'none'})")
        return cls
    if not marked:
        raise TargetError(f"no @process class in {shown} (found: {', '.join(classes) or 'no classes'})")
    if len(marked) > 1:
        raise TargetError(
            f"several @process classes in {shown} ({', '.join(marked)}): pick one with {shown}:{marked[0]}"
        )
    return classes[marked[0]]


class Runtime:
    """One instance of a `@process` class, served by the native agent."""

    @classmethod
    def load(cls, target: Any) -> "Runtime":
        """A runtime for a class or a `file.py[:Class]` target."""
        if isinstance(target, type):
            d = definition(target)
            if d is None:
                raise TargetError(f"{target.__name__} is not a @process class")
            return cls(d)
        return cls(definition(load_class(os.fspath(target), private=True)))  # type: ignore[arg-type]

    def __init__(
        self, d: ProcessDefinition, loop: Optional[asyncio.AbstractEventLoop] = None, wake: Optional[Any] = None
    ) -> None:
        """With `loop` (a child worker), async code runs on that loop, which runs on the
        agent's thread, and `wake()` ends the loop's current wait for I/O (the agent
        calls in from inside it); without (a worker in a host's process), async code
        runs on a loop thread of the runtime's own."""
        self.definition = d
        self._on_agent_loop = loop is not None
        self._wake = wake
        self.instance: Any = None
        self._public: List[str] = list(d.methods)
        self._streak: Dict[str, int] = {}
        self._bound: Dict[str, Any] = {}  # public name -> bound method, once the instance exists
        # titan_pm._values: arguments decoded by the parameters' annotations (only the methods
        # that need it), results encoded by the rule
        self._decode_args: Dict[str, Any] = {}
        self._encode_result: Dict[str, Any] = {}
        # titan_pm._layers: the worker-side parts of method policies (validators; caches are in _bound)
        self._validators: Dict[str, Any] = {}
        self._running: Dict[int, Any] = {}  # call id -> concurrent future of an async call
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = loop
        self._calls: "Optional[queue.SimpleQueue[Any]]" = None
        self._call_thread: Optional[threading.Thread] = None
        self._current: Optional[int] = None  # the call id running on the call thread
        self._cancelled: Set[int] = set()
        # titan_pm.given: what the host handed over (processes to call, shared state), set by `grant`.
        self._granted = given.Granted()
        # A sync method may wait for a given process only off the agent's thread: such classes never inline.
        self._inline = not given.declares_given(d.cls)
        # Set by a host that serves this runtime in its own process (the core's live-runtime
        # count, titan_pm::host::live): released once close() ran and the threads ended.
        self._live: Any = None
        self._threads = 0
        self._closed = False

    # ---- what the agent asks ----

    def describe(self) -> Dict[str, Any]:
        d = self.definition
        return {
            "name": d.name,
            "version": d.version,
            "methods": [_method_info(d.cls, m) for m in d.methods.values()],
            "runtime": f"python {sys.version_info[0]}.{sys.version_info[1]}",
            "has_health_check": d.health_check is not None,
            "health_interval": d.health_interval,
            "workflow": d.cls.__dict__.get("__titan_workflow__"),  # the stage graph of a @workflow class
        }

    def grant(self, granted: Any) -> None:
        """What the host handed over at init (`titan_pm._native.Granted`), on the agent's thread."""
        self._granted.native = granted
        self._granted.agent_thread = threading.get_ident()

    def init(self, dependencies: Dict[str, Any], done: Any) -> None:
        given._CONSTRUCTING = self._granted
        try:
            self.instance = self.definition.cls()
        except BaseException as e:
            return done(False, e)
        finally:
            given._CONSTRUCTING = None
        given.bind(self.instance, self._granted)
        # Shared state is seeded and loaded (on this thread, through the agent) before init runs.
        given.load_shared(self.instance, lambda e: done(False, e) if e is not None else self._init_rest(dependencies, done))

    def _init_rest(self, dependencies: Dict[str, Any], done: Any) -> None:
        self._bound = {name: getattr(self.instance, name) for name in [*self.definition.methods, *self.definition.fallbacks]}
        self._decode_args = {n: d for n, fn in self._bound.items() if (d := args_decoder(fn)) is not None}
        self._encode_result = {n: result_encoding(fn) for n, fn in self._bound.items()}
        self._validate_and_cache()
        if not self.definition.has_init:
            return done(True, None)
        dependencies = given.given_refs(self._granted, dependencies or {})  # process handles given as dependencies
        decode = kwargs_decoder(self.instance.init)
        if decode is not None:
            try:
                dependencies = decode(dependencies)
            except Exception as e:
                return done(False, e)
        self._run(self.instance.init, (), dependencies, done)

    def call(self, method: str, args: List[Any], call_id: int, trace: Tuple[str, str, str], done: Any) -> None:
        """Runs `method(*args)`; `trace` (trace id, span id, parent span id) is what
        `titan_pm.get_trace_context()` returns inside it."""
        fn = self._bound.get(method)
        if fn is None:
            return done.not_found(method, self._public)
        args = given.given_args(self._granted, args)  # process handles the host passed, given with the call
        check = self._validators.get(method)
        if check is not None:
            try:
                check(args)
            except BaseException as e:
                return done(False, e)
        decode = self._decode_args.get(method)
        if decode is not None:
            try:
                args = decode(args)
            except Exception as e:
                return done(False, e)
        if self._inline and self._streak.get(method, 0) >= INLINE_AFTER:
            # The hot path: a sync method that has proven fast runs right here.
            start = _now()
            token = _TRACE.set(trace)
            try:
                r = self._encode_result[method](fn(*args))
                ok = True
            except SystemExit as e:
                _exit(e)
            except BaseException as e:
                r, ok = e, False
            finally:
                _TRACE.reset(token)
            if _now() - start >= INLINE_BELOW:
                self._streak[method] = 0
            return done(ok, r)
        if (self.definition.methods.get(method) or self.definition.fallbacks[method]).is_async:
            try:
                coro = _traced(fn(*args), trace)
            except BaseException as e:
                return done(False, e)
            future = self._schedule(coro, done, self._encode_result[method], call_id)
            self._running[call_id] = future
            if future.done():  # finished on the runtime's loop thread already
                self._running.pop(call_id, None)
        else:
            self._call_queue().put((call_id, method, fn, args, trace, done))

    def cancel(self, call_id: int) -> None:
        future = self._running.pop(call_id, None)
        if future is not None:
            future.cancel()
            if self._on_agent_loop:
                self._wake()  # type: ignore[misc]
            return
        with self._lock:
            if self._current == call_id and self._call_thread is not None:
                ident = self._call_thread.ident
                import ctypes  # only when a call is cancelled: a worker starts faster without it

                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(CancelledCall))
            else:
                self._cancelled.add(call_id)

    def health(self, done: Any) -> None:
        if self.instance is None:
            return done(True, {"status": "unhealthy", "checks": [{"name": "init", "status": "fail", "message": "not initialized"}]})
        check = getattr(self.instance, self.definition.health_check or "")
        self._run(check, (), {}, done)

    def shutdown(self, done: Any) -> None:
        hooks = [getattr(self.instance, n) for n in self.definition.on_shutdown] if self.instance is not None else []

        def failed(hook: Any) -> None:
            print(f"titan-pm: shutdown hook {hook.__name__} raised:", file=sys.stderr)
            traceback.print_exc()

        if not any(inspect.iscoroutinefunction(h) for h in hooks):
            for hook in hooks:
                try:
                    hook()
                except Exception:
                    failed(hook)
            return done(True, None)

        async def run_hooks() -> None:
            for hook in hooks:
                try:
                    r = hook()
                    if inspect.isawaitable(r):
                        await r
                except Exception:
                    failed(hook)

        self._schedule(run_hooks(), done)

    def close(self) -> None:
        """Stops the runtime's threads (the instance's calls are over)."""
        if self._loop is not None and not self._on_agent_loop:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._calls is not None:
            self._calls.put(None)
        with self._lock:
            self._closed = True
        self._maybe_release()

    def _thread_ended(self) -> None:
        with self._lock:
            self._threads -= 1
        self._maybe_release()

    def _maybe_release(self) -> None:
        with self._lock:
            live = self._live if self._closed and self._threads == 0 else None
            if live is not None:
                self._live = None
        if live is not None:
            live.release()

    def _validate_and_cache(self) -> None:
        """The worker-side parts of the methods' policies (titan_pm._layers), once the instance exists."""
        from .policies import worker_policies_of

        for name, fn in list(self._bound.items()):
            spec = worker_policies_of(getattr(fn, "__func__", fn))
            if spec:
                if "validate" in spec:
                    self._validators[name] = spec["validate"]
                self._bound[name] = _layers.wrap(fn, spec)

    # ---- where code runs ----

    def _run(self, fn: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any], done: Any, wrap: Any = None) -> None:
        """Runs an init, health check or hook: async ones on the loop, sync ones here."""
        if inspect.iscoroutinefunction(fn):
            try:
                coro = fn(*args, **kwargs)
            except BaseException as e:
                return done(False, e)
            self._schedule(coro, done, wrap)
            return
        try:
            r = fn(*args, **kwargs)
            r = wrap(r) if wrap else r
        except SystemExit as e:
            _exit(e)
        except BaseException as e:
            return done(False, e)
        done(True, r)

    def _sync(self, method: str, fn: Any, args: List[Any], trace: Tuple[str, str, str], done: Any) -> None:
        start = _now()
        token = _TRACE.set(trace)
        try:
            r = self._encode_result[method](fn(*args))
            ok = True
        except SystemExit as e:
            _exit(e)
        except BaseException as e:
            r, ok = e, False
        finally:
            _TRACE.reset(token)
        took = _now() - start
        self._streak[method] = self._streak.get(method, 0) + 1 if took < INLINE_BELOW else 0
        done(ok, r)

    async def _complete(self, coro: Any, done: Any, wrap: Any, call_id: Optional[int]) -> None:
        """Awaits `coro` and reports to `done` at once (not one loop turn later, as a
        done callback would); a cancelled call reports nothing: nobody waits for it."""
        try:
            r = await coro
            r = wrap(r) if wrap else r
            ok = True
        except asyncio.CancelledError:
            return
        except SystemExit as e:
            _exit(e)
        except BaseException as e:
            r, ok = e, False
        finally:
            if call_id is not None:
                self._running.pop(call_id, None)
        done(ok, r)

    def _schedule(self, coro: Any, done: Any, wrap: Any = None, call_id: Optional[int] = None) -> Any:
        """Runs `coro` on the runtime's loop, reporting to `done`; returns what cancels it."""
        work = self._complete(coro, done, wrap, call_id)
        if self._on_agent_loop:
            # Called on the loop's own thread, from within its wait for I/O: a plain
            # task, and a nudge so the loop runs it now.
            task = self._loop.create_task(work)  # type: ignore[union-attr]
            self._wake()  # type: ignore[misc]
            return task
        return asyncio.run_coroutine_threadsafe(work, self._event_loop())

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()

            def run() -> None:
                try:
                    loop.run_forever()
                finally:
                    self._thread_ended()

            with self._lock:
                self._threads += 1
            threading.Thread(target=run, name="titan-pm-asyncio", daemon=True).start()
            self._loop = loop
        return self._loop

    def start_call_thread(self) -> None:
        """Starts the call thread now if the class has sync methods (a child worker does, before
        it registers), so its first sync call does not wait for a thread to start."""
        if any(not m.is_async for m in self.definition.methods.values()):
            self._call_queue()

    def _call_queue(self) -> "queue.SimpleQueue[Any]":
        if self._calls is None:
            self._calls = queue.SimpleQueue()
            self._call_thread = threading.Thread(target=self._serve_calls, name="titan-pm-calls", daemon=True)
            with self._lock:
                self._threads += 1
            self._call_thread.start()
        return self._calls

    def _serve_calls(self) -> None:
        try:
            self._serve_call_queue()
        finally:
            self._thread_ended()

    def _serve_call_queue(self) -> None:
        assert self._calls is not None
        while True:
            item = self._calls.get()
            if item is None:
                return
            call_id, method, fn, args, trace, done = item
            try:
                with self._lock:
                    if call_id in self._cancelled:
                        self._cancelled.discard(call_id)
                        continue
                    self._current = call_id
                try:
                    self._sync(method, fn, args, trace, done)
                finally:
                    with self._lock:
                        self._current = None
            except CancelledCall:
                pass  # a cancel that landed just after the method returned


async def _traced(coro: Any, trace: Tuple[str, str, str]) -> Any:
    """`coro` run as the call `trace` (its task's own context, so concurrent calls do not mix)."""
    _TRACE.set(trace)
    return await coro


def _exit(e: SystemExit) -> None:
    """`sys.exit()` in a worker method ends the worker process, as it would anywhere."""
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _method_info(cls: Any, m: Any) -> Any:
    """A method as ``describe`` sends it: ``(name, timeout ms)``, or with its policies (titan_pm.policies) a map."""
    from .policies import policies_of

    policies = policies_of(getattr(cls, m.name, None))
    if not policies:
        return (m.name, int(m.timeout * 1000) if m.timeout else 0)
    return {"name": m.name, "timeout": m.timeout, "policies": policies}

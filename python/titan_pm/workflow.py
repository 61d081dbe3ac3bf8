"""Workflows: a class whose `@stage` methods form a DAG, with per-attempt
timeouts, retries (exponential backoff with jitter), saga compensation and a
journal that lets a run outlive its host. The engine is core's; this module
declares the graph (`@workflow`, `@stage`, `@compensate`) and runs it
(`await pm.workflow(ClassOrFile)` -> `Workflow`).

    @workflow
    class Order:
        @stage(name="reserve")
        async def reserve(self, order): ...
        @compensate("reserve")
        async def release(self, result): ...
        @stage(name="charge", depends_on="reserve", timeout=30.0, retries=3)
        async def charge(self, input): return input["reserve"]

    wf = await pm.workflow(Order)                       # stages run in this process
    result = await wf.run(order, run_id="order-42")     # {"reserve": ..., "charge": ...}

A stage gets the run's input (no dependencies) or the results so far by stage
name; a stage that declares a second parameter also gets the run's context
`{"run_id", "stage", "attempt", "idempotency_key"}`. A compensation gets its
stage's result (None for the stage that failed), and, if it declares them, the
error (a dict with "class", "kind", "message") and the context.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Dict, List, Optional, Sequence, TypeVar, Union

from . import _native
from . import errors as _errors
from .decorators import process, public

__all__ = ["workflow", "stage", "compensate", "Workflow", "WorkflowError"]

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)

_STAGE = "__titan_stage__"
_COMPENSATE = "__titan_compensate__"
_WORKFLOW = "__titan_workflow__"


class WorkflowError(_errors.TitanError):
    """A stage failed after its retries and the compensations ran: `stage` (the
    failed stage), `kind` ("timeout", "remote", "crash", ...), `cause` (the
    stage's own error), `compensations` ([{"stage", "method", "attempts",
    "error"}] in the order they ran), `workflow`, `run_id`."""

    stage: str = ""
    kind: str = ""
    cause: Optional[BaseException] = None
    compensations: List[Dict[str, Any]] = []
    workflow: str = ""
    run_id: str = ""


_errors._CLASSES["WorkflowError"] = WorkflowError  # core's WorkflowError becomes this class


def _positional(f: Callable[..., Any]) -> int:
    """How many positional parameters `f` takes after `self` (a large number for *args)."""
    n = 0
    for p in list(inspect.signature(f).parameters.values())[1:]:
        if p.kind == p.VAR_POSITIONAL:
            return 99
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            n += 1
    return n


def _adapt(f: Callable[..., Any], given: int, decorator: str) -> Callable[..., Any]:
    """A wrapper that passes `f` only as many of the `given` arguments as it declares (at least one)."""
    if not inspect.isfunction(f):
        raise TypeError(f"{decorator} decorates a method defined with def or async def, not {type(f).__name__}")
    n = _positional(f)
    if n < 1:
        raise TypeError(f"{decorator} method {f.__name__} must take at least one argument after self")
    take = min(n, given)
    if inspect.iscoroutinefunction(f):

        @functools.wraps(f)
        async def run_async(self: Any, *args: Any) -> Any:
            return await f(self, *args[:take])

        return run_async

    @functools.wraps(f)
    def run(self: Any, *args: Any) -> Any:
        return f(self, *args[:take])

    return run


def stage(
    name: Optional[str] = None,
    *,
    depends_on: Union[str, Sequence[str], None] = None,
    timeout: Optional[float] = None,
    retries: int = 0,
    parallel: bool = True,
) -> Callable[[F], F]:
    """Marks a method as a stage. `name` defaults to the method's name; `depends_on` is a
    stage name or a list of them; `timeout` (seconds) bounds each attempt (the attempt is
    cancelled); `retries` is the number of attempts after the first; `parallel=False` runs
    the stage alone."""
    if callable(name):
        raise TypeError("@stage must be called: @stage() or @stage(name=..., depends_on=...)")
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"@stage(name=...) must be a non-empty string, not {name!r}")
    deps = [depends_on] if isinstance(depends_on, str) else list(depends_on or [])
    if not all(isinstance(d, str) and d for d in deps):
        raise ValueError(f"@stage(depends_on=...) must be a stage name or a list of them, not {depends_on!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"@stage(timeout=...) must be a positive number of seconds, not {timeout!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"@stage(retries=...) must be a whole number >= 0, not {retries!r}")
    if not isinstance(parallel, bool):
        raise ValueError(f"@stage(parallel=...) must be True or False, not {parallel!r}")

    def mark(f: F) -> F:
        wrapped = public(_adapt(f, 2, "@stage"))
        spec: Dict[str, Any] = {"name": name or f.__name__, "depends_on": deps, "retries": retries, "parallel": parallel}
        if timeout is not None:
            spec["timeout"] = float(timeout)
        setattr(wrapped, _STAGE, spec)
        return wrapped  # type: ignore[return-value]

    return mark


def compensate(stage_name: str) -> Callable[[F], F]:
    """Marks the method that undoes stage `stage_name`: `(result)`, `(result, error)` or
    `(result, error, context)`."""
    if not isinstance(stage_name, str) or not stage_name:
        raise TypeError("@compensate needs the stage's name: @compensate(\"charge-payment\")")

    def mark(f: F) -> F:
        wrapped = public(_adapt(f, 3, "@compensate"))
        setattr(wrapped, _COMPENSATE, stage_name)
        return wrapped  # type: ignore[return-value]

    return mark


def workflow(cls: Optional[C] = None, *, name: Optional[str] = None, version: str = "0.0.0") -> Any:
    """Marks a class as a workflow (and a worker: `@process` is applied). Bare
    (`@workflow`) or called (`@workflow(name=..., version=...)`). The stage graph
    is checked when the workflow is loaded (`pm.workflow`): a cycle, a duplicate
    name or an unknown `depends_on` is a `ConfigError` naming the stages."""

    def mark(c: C) -> C:
        if not isinstance(c, type):
            raise TypeError(f"@workflow decorates a class, not {type(c).__name__}")
        stages: Dict[str, Dict[str, Any]] = {}
        compensations: Dict[str, str] = {}
        for klass in reversed(c.__mro__[:-1]):
            for attr, f in vars(klass).items():
                spec = getattr(f, _STAGE, None)
                if spec is not None:
                    stages[attr] = dict(spec, method=attr)
                target = getattr(f, _COMPENSATE, None)
                if target is not None:
                    if target in compensations and compensations[target] != attr:
                        raise ValueError(f"stage {target!r} of {c.__name__} has two compensations: {compensations[target]}, {attr}")
                    compensations[target] = attr
        if not stages:
            raise ValueError(f"@workflow class {c.__name__} has no @stage methods")
        setattr(c, _WORKFLOW, {
            "stages": list(stages.values()),
            "compensations": [{"stage": s, "method": m} for s, m in compensations.items()],
        })
        return process(name=name or c.__name__, version=version)(c)

    return mark(cls) if cls is not None else mark


def workflow_spec(cls: type) -> Optional[Dict[str, Any]]:
    """The stage graph `@workflow` attached to a class (what its worker describes)."""
    return cls.__dict__.get(_WORKFLOW)


class Workflow:
    """A loaded workflow: `await wf.run(input, run_id=...)`, `await wf.runs()`,
    `wf.on("stage:completed", callback)`, `wf.process_id`, `wf.stages`."""

    def __init__(self, pm: Any, native: Any, process_id: int):
        self._pm = pm
        self._native = native
        self.process_id = process_id
        self._listeners: Dict[str, List[Callable[[Dict[str, Any]], Any]]] = {}
        self._listening = False

    @property
    def stages(self) -> List[str]:
        """The stage names, in the order `run` reports them."""
        return self._native.stages()

    async def run(self, input: Any = None, *, run_id: Optional[str] = None) -> Dict[str, Any]:
        """Runs the workflow: every stage's result by name. With the id of a finished run,
        its stored result (or `WorkflowError`) without running anything; with an unfinished
        one (its host died), resumes it: completed stages are not run again."""
        return await self._pm._wait(self._native.run(self._pm._native, input, run_id))

    async def runs(self, limit: int = 100) -> List[Dict[str, Any]]:
        """The newest runs of the journal with their state ("running", "compensating", "completed", "failed")."""
        return await self._pm._wait(self._native.runs(self._pm._native, limit))

    def on(self, event: str, callback: Callable[[Dict[str, Any]], Any]) -> Callable[[Dict[str, Any]], Any]:
        """Calls `callback(event)` for each run event named `event` ("workflow:started",
        "stage:started", "stage:completed", "stage:failed", "stage:retrying",
        "compensation:started", "compensation:completed", "workflow:completed",
        "workflow:failed", or "*")."""
        if event != "*" and event not in _EVENTS:
            raise _errors.ConfigError(f"unknown workflow event {event!r} (expected one of {', '.join(_EVENTS)})")
        self._listeners.setdefault(event, []).append(callback)
        if not self._listening:
            self._listening = True
            self._native.subscribe()
            self._pm._loop.create_task(self._listen())
        return callback

    async def _listen(self) -> None:
        while True:
            e = await self._pm._wait(self._native.next_event(self._pm._native))
            if e is None:
                return
            for cb in self._listeners.get(e["type"], []) + self._listeners.get("*", []):
                r = cb(e)
                if inspect.isawaitable(r):
                    await r

    def __repr__(self) -> str:
        return f"<Workflow process_id={self.process_id} stages={self.stages}>"


_EVENTS = (
    "workflow:started", "stage:started", "stage:completed", "stage:failed", "stage:retrying",
    "compensation:started", "compensation:completed", "workflow:completed", "workflow:failed",
)


async def load(pm: Any, target: Any, isolation: Optional[str], options: Dict[str, Any]) -> Workflow:
    """`pm.workflow(...)`: a class runs in this process (isolation "none" unless given)."""
    from ._options import native_target

    pm._bind()
    if isolation is None:
        isolation = "none" if isinstance(target, type) else pm._isolation
    native_t, in_process = native_target(target, isolation)
    options = dict(options, isolation=isolation)
    token, native = _native.workflow_start(pm._native, native_t, in_process, options)
    process_id = await pm._wait(token)
    return Workflow(pm, native, process_id)

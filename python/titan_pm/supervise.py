"""Supervisors (Erlang/OTP semantics, run by the core): a class marked
`@supervisor(...)` whose attributes are `child(...)` declarations, in order.

    @supervisor(strategy="one-for-one", max_restarts=3, window=60.0,
                backoff={"type": "exponential", "initial": 1.0, "max": 30.0})
    class App:
        database = child("workers/db.py", critical=True)   # relative to this file
        worker = child("workers/w.py", pool={"size": 4})
        nested = child(OtherSupervisor)                    # a tree

    sup = await pm.supervisor(App)
    await (await sup.child("database")).query("...")

Options are read by the core (`ConfigError` naming the path, e.g.
`children[1].pool.size`); this module only collects them.
"""

from __future__ import annotations

import enum
import inspect
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional

if TYPE_CHECKING:
    from .host import Pool, ProcessHandle, ProcessManager

__all__ = ["SupervisionStrategy", "supervisor", "child", "Supervisor"]


class SupervisionStrategy(str, enum.Enum):
    ONE_FOR_ONE = "one-for-one"
    ONE_FOR_ALL = "one-for-all"
    REST_FOR_ONE = "rest-for-one"
    SIMPLE_ONE_FOR_ONE = "simple-one-for-one"


@dataclass(frozen=True)
class _Child:
    """A `child(...)` declaration: a worker file or a `@supervisor` class, and its options."""

    target: Any
    options: Dict[str, Any] = field(default_factory=dict)


def child(target: Any, **options: Any) -> Any:
    """Declares a child: `target` is a worker file (relative paths are taken from the
    supervisor class's file) or a `@supervisor` class. Options: `critical`, `optional`,
    `restart` ("permanent", "transient", "temporary"), `pool` (pool options), `inject`
    (names of earlier siblings the worker may call), and any spawn option."""
    if not (isinstance(target, (str, os.PathLike)) or _definition(target) is not None):
        raise TypeError(f"child() takes a worker file or a @supervisor class, not {target!r}")
    return _Child(target, dict(options))


def supervisor(**options: Any) -> Any:
    """Marks a class as a supervisor: `strategy` (a `SupervisionStrategy` or its name),
    `max_restarts`, `window` (seconds), `backoff` ({type, initial, max} in seconds)."""

    def mark(cls: type) -> type:
        if not inspect.isclass(cls):
            raise TypeError("@supervisor marks a class")
        opts = dict(options)
        if isinstance(opts.get("strategy"), SupervisionStrategy):
            opts["strategy"] = opts["strategy"].value
        children = [(name, v) for name, v in vars(cls).items() if isinstance(v, _Child)]
        strategy = opts.get("strategy", "one-for-one")
        if not children and strategy != "simple-one-for-one":
            raise TypeError(f"@supervisor class {cls.__name__} declares no child(...)")
        setattr(cls, "__titan_supervisor__", (opts, tuple(children)))
        return cls

    return mark


def _definition(cls: Any) -> Optional[Any]:
    return getattr(cls, "__titan_supervisor__", None) if inspect.isclass(cls) else None


def tree(cls: Any) -> Dict[str, Any]:
    """The dict the core reads: the supervisor's options and its children, in declaration order."""
    d = _definition(cls)
    if d is None:
        raise TypeError(f"{cls!r} is not a @supervisor class")
    opts, children = d
    try:
        here = os.path.dirname(os.path.abspath(inspect.getfile(cls)))
    except (TypeError, OSError):
        here = os.getcwd()
    out: Dict[str, Any] = {"name": cls.__name__, **opts, "children": []}
    for name, c in children:
        if _definition(c.target) is not None:
            target: Any = tree(c.target)
        else:
            path = os.fspath(c.target)
            target = path if os.path.isabs(path) else os.path.join(here, path)
        out["children"].append({"name": name, "target": target, **c.options})
    return out


class Supervisor:
    """A running supervisor. `await sup.child(name)` is a handle that survives the
    child's restarts; `sup.state` is "running", "failed" or "stopped";
    `sup.children()` lists `{name, kind, state, restarts, process_id, process_ids}`."""

    def __init__(self, pm: "ProcessManager", native: Any, sup_id: int, path: List[str]):
        self._pm = pm
        self._native = native
        self.supervisor_id = sup_id
        self._path = path

    async def child(self, name: str) -> "ProcessHandle[Any]":
        from .host import ProcessHandle

        return ProcessHandle(self._pm, await self._pm._wait(self._native.child(self.supervisor_id, self._path, name)))

    async def pool(self, name: str) -> "Pool[Any]":
        from .host import Pool

        return Pool(self._pm, await self._pm._wait(self._native.pool(self.supervisor_id, self._path, name)))

    def supervisor(self, name: str) -> "Supervisor":
        """The nested supervisor child `name`."""
        return Supervisor(self._pm, self._native, self.supervisor_id, self._path + [name])

    @property
    def state(self) -> str:
        return str(self._native.state(self.supervisor_id, self._path))

    def children(self) -> List[Dict[str, Any]]:
        return list(self._native.children(self.supervisor_id, self._path))

    async def start_child(self, args: Optional[Dict[str, Any]] = None) -> "ProcessHandle[Any]":
        """Adds a child from a simple-one-for-one supervisor's template; `args` reach its `init`."""
        from .host import ProcessHandle

        return ProcessHandle(self._pm, await self._pm._wait(self._native.start_child(self.supervisor_id, self._path, args)))

    async def stop(self) -> None:
        """Stops the children in reverse declaration order."""
        await self._pm._wait(self._native.stop(self.supervisor_id, self._path))

"""The worker-side decorators. Each validates when it is applied; `@process`
collects what the others marked into a frozen `ProcessDefinition` on the class
(`cls.__titan_process__`), which the worker runtime reads back.

    >>> @process(name="calc", version="1.0.0")
    ... class Calc:
    ...     @public
    ...     def add(self, a, b): return a + b
    >>> definition(Calc).methods["add"].is_async
    False
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, TypeVar, overload

__all__ = ["process", "public", "health_check", "on_shutdown", "ProcessDefinition", "MethodDefinition", "definition"]

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)

_PUBLIC = "__titan_public__"
_HEALTH = "__titan_health_check__"
_SHUTDOWN = "__titan_on_shutdown__"
_DEFINITION = "__titan_process__"


@dataclass(frozen=True)
class MethodDefinition:
    name: str
    is_async: bool
    timeout: Optional[float] = None  # seconds; None: the host's deadline


@dataclass(frozen=True)
class ProcessDefinition:
    name: str
    version: str
    cls: type
    methods: Mapping[str, MethodDefinition] = field(default_factory=dict)
    health_check: Optional[str] = None
    health_interval: Optional[float] = None  # seconds; None: the manager's monitoring interval
    on_shutdown: Tuple[str, ...] = ()
    has_init: bool = False
    # Circuit-breaker fallbacks that are not @public: dispatched (the host calls them while
    # a breaker is open) but not described, so no listing shows them.
    fallbacks: Mapping[str, MethodDefinition] = field(default_factory=dict)


def _function(f: Any, decorator: str) -> Callable[..., Any]:
    if isinstance(f, (staticmethod, classmethod)) or not inspect.isfunction(f):
        raise TypeError(f"{decorator} decorates a method defined with def or async def, not {type(f).__name__}")
    return f


@overload
def public(fn: F) -> F: ...
@overload
def public(*, timeout: Optional[float] = None) -> Callable[[F], F]: ...
def public(fn: Any = None, *, timeout: Optional[float] = None) -> Any:
    """Marks a method as callable by hosts. Bare (`@public`) or called (`@public(timeout=5.0)`)."""
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"@public(timeout=...) must be a positive number of seconds, not {timeout!r}")

    def mark(f: F) -> F:
        f = _function(f, "@public")  # type: ignore[assignment]
        if f.__name__.startswith("_"):
            raise ValueError(f"@public method {f.__name__} must not start with an underscore")
        setattr(f, _PUBLIC, {"timeout": timeout})
        return f

    return mark(fn) if fn is not None else mark


@overload
def health_check(fn: F) -> F: ...
@overload
def health_check(*, interval: Optional[float] = None) -> Callable[[F], F]: ...
def health_check(fn: Any = None, *, interval: Optional[float] = None) -> Any:
    """Marks the method that reports health. It returns {"status"?: "healthy"|"degraded"|"unhealthy",
    "checks": [{"name", "status": "pass"|"warn"|"fail", "message"}]} (the overall status is derived
    from the checks when absent), or a status string, or a bool. Bare (`@health_check`) or called
    (`@health_check(interval=5.0)`: the manager probes this class every `interval` seconds)."""
    if interval is not None and (isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0):
        raise ValueError(f"@health_check(interval=...) must be a positive number of seconds, not {interval!r}")

    def mark(f: F) -> F:
        f = _function(f, "@health_check")  # type: ignore[assignment]
        setattr(f, _HEALTH, {"interval": interval})
        return f

    return mark(fn) if fn is not None else mark


def on_shutdown(fn: F) -> F:
    """Marks a method to run when the worker shuts down gracefully (several run in definition order)."""
    fn = _function(fn, "@on_shutdown")  # type: ignore[assignment]
    setattr(fn, _SHUTDOWN, True)
    return fn


def process(name: Optional[str] = None, version: str = "0.0.0") -> Callable[[C], C]:
    """Marks a class as a worker; `name` defaults to the class name."""
    if callable(name) and isinstance(name, type):
        raise TypeError("@process must be called: @process(name=..., version=...)")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ValueError(f"@process(name=...) must be a non-empty string, not {name!r}")
    if not isinstance(version, str):
        raise ValueError(f"@process(version=...) must be a string, not {version!r}")

    def mark(cls: C) -> C:
        if not isinstance(cls, type):
            raise TypeError(f"@process decorates a class, not {type(cls).__name__}")
        methods: Dict[str, MethodDefinition] = {}
        health = []
        hooks = []
        seen = set()
        # Base classes first, so a subclass's override wins.
        for klass in reversed(cls.__mro__[:-1]):
            for attr, f in vars(klass).items():
                if not inspect.isfunction(f):
                    continue
                seen.add(attr)
                if attr in methods and not hasattr(f, _PUBLIC):
                    del methods[attr]
                if hasattr(f, _PUBLIC):
                    methods[attr] = MethodDefinition(attr, inspect.iscoroutinefunction(f), getattr(f, _PUBLIC)["timeout"])
                if hasattr(f, _HEALTH) and attr not in health:
                    health.append(attr)
                if hasattr(f, _SHUTDOWN) and attr not in hooks:
                    hooks.append(attr)
        if len(health) > 1:
            raise ValueError(f"several @health_check methods in {cls.__name__}: {', '.join(health)}")
        from .policies import policies_of  # (policies imports this module)

        fallbacks: Dict[str, MethodDefinition] = {}
        for m in methods:
            breaker = (policies_of(getattr(cls, m)) or {}).get("circuit_breaker") or {}
            fb = breaker.get("fallback")
            if fb and fb not in methods:
                f = getattr(cls, fb, None)
                if not inspect.isfunction(f):
                    raise ValueError(f"{cls.__name__}.{m}: circuit_breaker(fallback={fb!r}) names no method of the class")
                fallbacks[fb] = MethodDefinition(fb, inspect.iscoroutinefunction(f), None)
        init = getattr(cls, "init", None)
        if init is not None and not callable(init):
            raise TypeError(f"{cls.__name__}.init must be a method")
        d = ProcessDefinition(
            name=name or cls.__name__,
            version=version,
            cls=cls,
            methods=dict(sorted(methods.items())),
            health_check=health[0] if health else None,
            health_interval=getattr(getattr(cls, health[0]), _HEALTH).get("interval") if health else None,
            on_shutdown=tuple(hooks),
            has_init=init is not None,
            fallbacks=fallbacks,
        )
        setattr(cls, _DEFINITION, d)
        return cls

    return mark


def definition(cls: type) -> Optional[ProcessDefinition]:
    """The class's own `@process` definition (not one inherited from a base class)."""
    d = cls.__dict__.get(_DEFINITION)
    return d if isinstance(d, ProcessDefinition) else None

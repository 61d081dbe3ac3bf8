"""Method policies (ARCHITECTURE.md section 8) as decorators that only declare.

Each decorator checks its options when applied (a ``ValueError`` naming the
option) and records them on the function; ``describe`` sends them to the
host, where the core applies them (shared by every caller and by all members
of a pool). Order with ``@public`` does not matter.

    >>> from titan_pm import public
    >>> class Svc:
    ...     @public
    ...     @rate_limit(rps=10, burst=10)
    ...     def search(self, q): ...
    >>> policies_of(Svc.search)["rate_limit"]["rps"]
    10

What needs the worker's own code is kept on the function for the worker's
runtime instead (``titan_pm._layers``): a pydantic model, ``TypeAdapter`` or
callable for ``validate``, and a key function or a ``condition`` for
``cache``. Those run in the worker, before (and around) the method.
"""

import inspect
from typing import Any, Callable, Dict, Optional, Sequence, Union

_ATTR = "__titan_policies__"
_WORKER_ATTR = "__titan_worker_policies__"  # the parts that run in the worker: titan_pm._layers
_STRATEGIES = ("token-bucket", "sliding-window", "fixed-window")
_ACTIONS = ("restart", "recycle", "reinit")
Duration = Union[int, float, str]


def policies_of(fn: Any) -> Optional[Dict[str, Any]]:
    """The policies declared on ``fn`` (``None`` for none)."""
    return getattr(fn, _ATTR, None)


def worker_policies_of(fn: Any) -> Optional[Dict[str, Any]]:
    """The worker-side parts declared on ``fn`` (validator, cache key function, condition), or ``None``."""
    return getattr(fn, _WORKER_ATTR, None)


def _declare_worker(fn: Any, name: str, options: Any) -> Any:
    if not callable(fn):
        raise TypeError(f"@{name} decorates a method, not {type(fn).__name__}")
    policies = dict(getattr(fn, _WORKER_ATTR, None) or {})
    policies[name] = options
    setattr(fn, _WORKER_ATTR, policies)
    return fn


def _declare(fn: Any, name: str, options: Any) -> Any:
    if not callable(fn):
        raise TypeError(f"@{name} decorates a method, not {type(fn).__name__}")
    policies = dict(getattr(fn, _ATTR, None) or {})
    policies[name] = options
    setattr(fn, _ATTR, policies)
    return fn


def _positive(name: str, option: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise ValueError(f"{name}({option}=...) must be a positive number, not {v!r}")


def _duration(name: str, option: str, v: Any) -> Duration:
    if isinstance(v, str) and v.strip():
        return v  # "30s", "1h": parsed (and checked) by the core
    _positive(name, option, v)
    return v


def _key(fn: Callable, name: str, key: Any) -> Any:
    """A parameter name -> its index (self excluded); another name: a field of the first argument."""
    if key is None:
        return None
    if isinstance(key, bool) or not isinstance(key, (int, str)) or key == "" or (isinstance(key, int) and key < 0):
        raise ValueError(f"{name}(key=...) must be a parameter name, a field name or an index, not {key!r}")
    if isinstance(key, int):
        return key
    params = [p for p in inspect.signature(fn).parameters if p != "self"]
    return params.index(key) if key in params else key


def rate_limit(*, rps: float, burst: Optional[int] = None, strategy: str = "token-bucket", key: Any = None) -> Callable:
    """At most ``rps`` calls per second (``burst`` at once), per ``key`` argument if given."""
    _positive("rate_limit", "rps", rps)
    if burst is not None and (isinstance(burst, bool) or not isinstance(burst, int) or burst < 1):
        raise ValueError(f"rate_limit(burst=...) must be a whole number >= 1, not {burst!r}")
    if strategy not in _STRATEGIES:
        raise ValueError(f"rate_limit(strategy=...) must be one of {', '.join(_STRATEGIES)}, not {strategy!r}")

    def apply(fn: Any) -> Any:
        opts: Dict[str, Any] = {"rps": rps, "strategy": strategy}
        if burst is not None:
            opts["burst"] = burst
        if key is not None:
            opts["key"] = _key(fn, "rate_limit", key)
        return _declare(fn, "rate_limit", opts)

    return apply


def cache(*, ttl: Duration, key: Any = None, condition: Optional[Callable[[Any], Any]] = None) -> Callable:
    """Results per key (all arguments, the ``key`` argument, or ``key(*args)`` when
    ``key`` is a function) for ``ttl`` seconds; with ``condition``, a result is
    cached only when ``condition(result)`` is true.

    A key function or a condition needs the worker's own code, so such a cache is
    kept in the worker (per process; a hit skips the method but not the round
    trip); any other cache is kept on the host, shared by a pool's members."""
    ttl = _duration("cache", "ttl", ttl)
    if condition is not None and not callable(condition):
        raise ValueError(f"cache(condition=...) must be a function of the result, not {condition!r}")
    if callable(key) or condition is not None:
        from ._native import parse_duration

        try:
            seconds = parse_duration(ttl) if isinstance(ttl, str) else float(ttl)
        except ValueError as e:
            raise ValueError(f"cache(ttl=...): {e}") from None
        if not seconds > 0:
            raise ValueError(f"cache(ttl=...) must be > 0, not {ttl!r}")

        def apply_worker(fn: Any) -> Any:
            by = key if callable(key) else _key(fn, "cache", key)
            return _declare_worker(fn, "cache", {"ttl": seconds, "key": by, "condition": condition})

        return apply_worker

    def apply(fn: Any) -> Any:
        opts: Dict[str, Any] = {"ttl": ttl}
        if key is not None:
            opts["key"] = _key(fn, "cache", key)
        return _declare(fn, "cache", opts)

    return apply


def validate(schema: Any) -> Callable:
    """The first argument must pass ``schema``: a JSON Schema dict (checked on the
    host), or a pydantic model, a pydantic ``TypeAdapter`` or any callable (run in
    the worker, before the method: a callable fails the value by raising or by
    returning ``False``). Invalid: ``ValidationError`` with each failing path; the
    method does not run."""
    if isinstance(schema, dict):
        return lambda fn: _declare(fn, "validate", {"schema": schema})
    if not callable(schema) and not hasattr(schema, "validate_python"):
        raise ValueError(
            f"validate(schema) takes a JSON Schema dict, a pydantic model or TypeAdapter, or a callable, not {type(schema).__name__}"
        )
    from ._layers import validator

    check = validator(schema)
    return lambda fn: _declare(_declare_worker(fn, "validate", check), "validate", {"validator": True})


def trace(fn: Any) -> Any:
    """A span per call, parented to the caller's span."""
    return _declare(fn, "trace", True)


def metric(fn: Any = None, *, name: Optional[str] = None) -> Any:
    """Per-method count, errors and latency in ``get_metrics(id)["methods"]``. Bare or called."""
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"metric(name=...) must be a non-empty string, not {name!r}")
    opts: Any = {"name": name} if name else True
    if fn is not None:
        return _declare(fn, "metric", opts)
    return lambda f: _declare(f, "metric", opts)


def circuit_breaker(
    *, threshold: int = 5, timeout: Duration = 30.0, half_open_requests: int = 1, fallback: Any = None
) -> Callable:
    """Opens after ``threshold`` failures in a row; while open ``fallback`` (a method or its name) answers."""
    for option, v in (("threshold", threshold), ("half_open_requests", half_open_requests)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"circuit_breaker({option}=...) must be a whole number >= 1, not {v!r}")
    timeout = _duration("circuit_breaker", "timeout", timeout)
    if fallback is not None and not isinstance(fallback, str):
        fallback = getattr(fallback, "__name__", None) or fallback
        if not isinstance(fallback, str):
            raise ValueError(f"circuit_breaker(fallback=...) must be a method or its name, not {fallback!r}")
    opts: Dict[str, Any] = {"threshold": threshold, "timeout": timeout, "half_open_requests": half_open_requests}
    if fallback:
        opts["fallback"] = fallback
    return lambda fn: _declare(fn, "circuit_breaker", opts)


def idempotent(*, key: Any, ttl: Duration = 3600.0) -> Callable:
    """A repeat with the same ``key`` (a field of the first argument, or a parameter) within ``ttl`` gets the first result."""
    ttl = _duration("idempotent", "ttl", ttl)
    if key is None:
        raise ValueError("idempotent(key=...) is required")
    return lambda fn: _declare(fn, "idempotent", {"key": _key(fn, "idempotent", key), "ttl": ttl})


def self_heal(*, symptoms: Sequence[str], action: str = "restart", cooldown: Duration = 60.0) -> Callable:
    """When a call fails with one of ``symptoms``, ``action`` runs, at most once per ``cooldown``."""
    if isinstance(symptoms, str) or not symptoms or not all(isinstance(s, str) and s for s in symptoms):
        raise ValueError(f"self_heal(symptoms=...) must be a non-empty list of names, not {symptoms!r}")
    if action not in _ACTIONS:
        raise ValueError(f"self_heal(action=...) must be one of {', '.join(_ACTIONS)}, not {action!r}")
    cooldown = _duration("self_heal", "cooldown", cooldown)
    return lambda fn: _declare(fn, "self_heal", {"symptoms": list(symptoms), "action": action, "cooldown": cooldown})


__all__ = [
    "rate_limit",
    "cache",
    "validate",
    "trace",
    "metric",
    "circuit_breaker",
    "idempotent",
    "self_heal",
    "policies_of",
    "worker_policies_of",
]

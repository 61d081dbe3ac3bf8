"""The worker-side parts of method policies (ARCHITECTURE.md section 8): what
needs the worker's own code runs here, in the worker's runtime, around the
method; everything else (rate limits, JSON Schema validation, caches with data
keys, idempotency, breakers) is applied by the core on the host.

- ``@validate`` with a pydantic model, a ``TypeAdapter`` or a callable: the
  first argument is checked before anything else (before the arguments are
  decoded by their annotations, so a model annotation cannot fail first); a
  failure raises ``ValidationError`` with (path, message) pairs, paths as JSON
  pointers (``/address/zip``) as the host's JSON Schema check gives them, and
  the method does not run.
- ``@cache`` with a key function or a ``condition``: a per-process TTL cache of
  at most ``MAX_ENTRIES`` results around the method (errors are never cached).

    >>> from titan_pm.errors import ValidationError
    >>> check = validator(lambda v: isinstance(v, int))
    >>> check([1]) is None
    True
    >>> try:
    ...     check(["x"])
    ... except ValidationError as e:
    ...     e.failures
    [('', 'invalid')]
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, List, Optional, Sequence, Tuple

from .errors import ValidationError

# The most results one worker-side cache keeps (the oldest is dropped first), as the host's caches.
MAX_ENTRIES = 10_000
# The most failures one ValidationError lists, as the host's JSON Schema check.
MAX_FAILURES = 64


def _pointer(loc: Sequence[Any]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in loc)


def _pydantic_failures(e: BaseException) -> Optional[List[Tuple[str, str]]]:
    """The failures of a pydantic ``ValidationError``; ``None`` for another exception."""
    errors = getattr(e, "errors", None)
    if type(e).__name__ != "ValidationError" or not callable(errors):
        return None
    try:
        return [(_pointer(err.get("loc", ())), str(err.get("msg", ""))) for err in errors()][:MAX_FAILURES]
    except Exception:
        return None


def validator(schema: Any) -> Callable[[Sequence[Any]], None]:
    """What checks a call's arguments against ``schema`` (a pydantic model, a
    ``TypeAdapter`` or a callable): raises ``ValidationError``, else returns None."""
    if isinstance(schema, type) and hasattr(schema, "model_validate"):
        run: Callable[[Any], Any] = schema.model_validate  # a pydantic model
    elif hasattr(schema, "validate_python"):
        run = schema.validate_python  # a pydantic TypeAdapter
    else:
        run = schema

    def check(args: Sequence[Any]) -> None:
        value = args[0] if args else None
        try:
            ok = run(value)
        except ValidationError:
            raise
        except Exception as e:
            failures = _pydantic_failures(e) or [("", str(e) or type(e).__name__)]
            raise ValidationError(_message(failures), failures=failures) from None
        if ok is False:
            raise ValidationError(_message([("", "invalid")]), failures=[("", "invalid")])

    return check


def _message(failures: List[Tuple[str, str]]) -> str:
    return "validation failed: " + "; ".join(f"{p or '/'}: {m}" for p, m in failures)


class WorkerCache:
    """One method's results in this worker, per key, for ``ttl`` seconds."""

    def __init__(self, ttl: float, key: Any, condition: Optional[Callable[[Any], Any]]) -> None:
        self.ttl = ttl
        self.key = key  # a function of the arguments, an argument index, a field of the first argument, or None
        self.condition = condition
        self._entries: "OrderedDict[Any, Tuple[float, Any]]" = OrderedDict()
        self._lock = threading.Lock()

    def key_of(self, args: Sequence[Any]) -> Any:
        if callable(self.key):
            k = self.key(*args)
        elif isinstance(self.key, int):
            k = args[self.key] if self.key < len(args) else None
        elif isinstance(self.key, str):
            first = args[0] if args else None
            k = first.get(self.key) if isinstance(first, dict) else getattr(first, self.key, None)
        else:
            k = tuple(args)
        try:
            hash(k)
            return k
        except TypeError:
            return repr(k)  # a list or dict key: its text

    def get(self, key: Any) -> Tuple[bool, Any]:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return False, None
            if hit[0] <= time.monotonic():
                del self._entries[key]
                return False, None
            return True, hit[1]

    def put(self, key: Any, value: Any) -> None:
        if self.condition is not None and not self.condition(value):
            return
        with self._lock:
            self._entries.pop(key, None)
            while len(self._entries) >= MAX_ENTRIES:
                self._entries.popitem(last=False)
            self._entries[key] = (time.monotonic() + self.ttl, value)


def wrap(bound: Any, spec: Any) -> Any:
    """``bound`` (a bound method) with its worker-side cache, if it declares one."""
    c = (spec or {}).get("cache")
    if c is None:
        return bound
    cache = WorkerCache(c["ttl"], c["key"], c["condition"])
    if inspect.iscoroutinefunction(bound):

        @functools.wraps(bound)
        async def cached_async(*args: Any) -> Any:
            k = cache.key_of(args)
            hit, v = cache.get(k)
            if hit:
                return v
            v = await bound(*args)
            cache.put(k, v)
            return v

        return cached_async

    @functools.wraps(bound)
    def cached(*args: Any) -> Any:
        k = cache.key_of(args)
        hit, v = cache.get(k)
        if hit:
            return v
        v = bound(*args)
        cache.put(k, v)
        return v

    return cached

"""What a typed call names: `handle.call(Calculator.add, 5, 3)` turns the
method reference into the remote method's name and its arguments into the
positional list that goes on the wire (keyword arguments are bound to their
positions by the method's own signature). The type checker sees the method's
parameters and return type through `ParamSpec` (see `host.ProcessHandle.call`).

    >>> class Calc:
    ...     def add(self, a: int, b: int = 0) -> int: return a + b
    >>> remote_call(Calc.add, (5,), {"b": 3})
    ('add', (5, 3))
    >>> remote_call("add", (5, 3), {})
    ('add', (5, 3))
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Dict, Optional, Tuple

from ._values import result_decoder
from .decorators import definition

__all__ = ["remote_call", "check_interface", "result_decoder_of"]


@functools.lru_cache(maxsize=256)
def _signature(fn: Any) -> inspect.Signature:
    return inspect.signature(fn)


def remote_call(method: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Tuple[str, Tuple[Any, ...]]:
    """The remote name and positional arguments of `call(method, *args, **kwargs)`."""
    if isinstance(method, str):
        if kwargs:
            raise TypeError(f"call({method!r}, ...) by name takes positional arguments only; "
                            f"pass the method itself (Class.{method}) to use keywords")
        return method, args
    fn = getattr(method, "__func__", method)  # a bound method: its function
    name = getattr(fn, "__name__", None)
    if not callable(fn) or not isinstance(name, str):
        raise TypeError(f"call() takes a method (Class.method) or its name, not {type(method).__name__}")
    if not kwargs:
        return name, args
    sig = _signature(fn)
    try:
        bound = sig.bind(None, *args, **kwargs)
    except TypeError as e:
        raise TypeError(f"{name}(): {e}") from None
    out = []
    for p in list(sig.parameters.values())[1:]:
        if p.kind == p.VAR_POSITIONAL:
            out.extend(bound.arguments.get(p.name, ()))
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            # A keyword after a skipped parameter: the skipped one's default fills its place.
            out.append(bound.arguments[p.name] if p.name in bound.arguments else p.default)
        elif p.name in bound.arguments:
            kw = bound.arguments[p.name]
            given = ", ".join(kw) if p.kind == p.VAR_KEYWORD else p.name
            raise TypeError(f"{name}(): keyword-only parameters ({given}) cannot be sent; remote calls are positional")
    return name, tuple(out)


def check_interface(interface: Optional[type]) -> None:
    """`spawn(target, Interface)`: the interface (only read by type checkers) must be a `@process` class."""
    if interface is None:
        return
    if not isinstance(interface, type) or definition(interface) is None:
        raise TypeError(f"spawn(target, interface): the interface must be a @process class, not {interface!r}")


def result_decoder_of(method: Any) -> Any:
    """For `call(Class.method, ...)`: what turns the result back into the method's return
    annotation (`titan_pm._values`), or None (also for a call by name)."""
    if isinstance(method, str):
        return None
    return result_decoder(getattr(method, "__func__", method))

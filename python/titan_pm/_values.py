"""The one rule for values the codec does not take as they are (the codec's
own types: None, bool, int, float, str, bytes, list/tuple, dict with str keys).

| value                                | travels as                          | decoded back where an annotation names the type |
|--------------------------------------|-------------------------------------|--------------------------------------------------|
| a dataclass instance                 | a dict of its fields                | `Class(**fields)`, fields decoded by their types  |
| a pydantic model (v2)                | `model.model_dump()`                | `Model.model_validate(dict)`                      |
| an `enum.Enum` member                | its `.value`                        | `EnumClass(value)`                                |
| `datetime`, `date`, `time`           | an ISO 8601 str (`.isoformat()`)    | `.fromisoformat(str)`                             |
| `decimal.Decimal`                    | its exact str                       | `Decimal(str)`                                    |
| `uuid.UUID`                          | its str                             | `UUID(str)`                                       |
| `set`, `frozenset`                   | refused: `SerializationError` says to send `sorted(x)` or `list(x)` |                   |

Anything else the codec does not take is refused by it (`SerializationError`
naming the path and the types that travel). Values inside those are converted by the same rule, recursively (the spawn's
`dependencies` too). "Decoded back": a worker method's parameters, and its
`init`'s, are decoded by their annotations; a host's
typed call (`handle.call(Class.method, ...)`) decodes the result by the
method's return annotation (`Optional[X]`, `list[X]`, `dict[str, X]`, tuples
of those included). Elsewhere (an untyped call, `Any`, no annotation) the value
arrives as it travelled.

    >>> import dataclasses, enum, datetime
    >>> class Color(enum.Enum):
    ...     RED = "red"
    >>> @dataclasses.dataclass
    ... class Point:
    ...     x: int
    ...     color: Color
    ...     at: datetime.date
    >>> encode(Point(1, Color.RED, datetime.date(2024, 5, 1)))
    {'x': 1, 'color': 'red', 'at': '2024-05-01'}
    >>> decode(["2024-05-01"], typing.List[datetime.date]), decode("red", Color)
    ([datetime.date(2024, 5, 1)], <Color.RED: 'red'>)
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import json
import sys
import typing
from typing import Any, Callable, Dict, List, Optional, Tuple

from ._native import MAX_DEPTH  # the core's one nesting limit (titan_pm::value::MAX_DEPTH)
from .errors import SerializationError

__all__ = ["encode", "encode_args", "decode", "decoder", "args_decoder", "result_decoder", "result_encoder", "result_encoding", "kwargs_decoder"]

_PLAIN = (type(None), bool, int, float, str, bytes, bytearray)


def _classes(*names: str) -> Tuple[type, ...]:
    """The classes `module.Class` whose module is already imported: a value (or an
    annotation) of one cannot exist before its module is, so `datetime`, `decimal` and
    `uuid` are never imported here (a worker starts faster without them)."""
    found = []
    for name in names:
        module, cls = name.rsplit(".", 1)
        m = sys.modules.get(module)
        if m is not None:
            found.append(getattr(m, cls))
    return tuple(found)


def _temporal() -> Tuple[type, ...]:
    return _classes("datetime.datetime", "datetime.date", "datetime.time")


def _as_str() -> Tuple[type, ...]:
    return _classes("decimal.Decimal", "uuid.UUID")


def _pydantic_model(cls: Any) -> bool:
    """A pydantic v2 model class (pydantic is never imported here: only if the user's code did)."""
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(cls, type) and issubclass(cls, pydantic.BaseModel)


def encode(value: Any, path: str = "value", depth: int = 0, _inside: Optional[set] = None) -> Any:
    """`value` with what the rule converts converted; a set is refused (`path` names it);
    anything else is left for the codec, which refuses what it does not take, naming the path.
    The codec's limits hold here too, with its messages: a value inside more than
    `MAX_DEPTH` lists/dicts, and a value that contains itself (`_inside`: the ids of
    the containers around `value`), are refused naming the path."""
    if depth > MAX_DEPTH:
        raise SerializationError(f"{path}: nested deeper than {MAX_DEPTH} levels", path=path)
    t = type(value)
    if t in _PLAIN:
        return value
    if isinstance(value, (list, tuple, dict)) or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
        inside = set() if _inside is None else _inside
        if id(value) in inside:
            raise SerializationError(f"{path}: a cyclic value (it contains itself) cannot be sent", path=path)
        inside.add(id(value))
        try:
            if isinstance(value, (list, tuple)):
                return [encode(v, f"{path}[{i}]", depth + 1, inside) for i, v in enumerate(value)]
            if isinstance(value, dict):
                return {k: encode(v, f"{path}[{json.dumps(k)}]", depth + 1, inside) for k, v in value.items()}
            return {
                f.name: encode(getattr(value, f.name), f"{path}[{json.dumps(f.name)}]", depth + 1, inside)
                for f in dataclasses.fields(value)
            }
        finally:
            inside.discard(id(value))
    if isinstance(value, enum.Enum):
        return encode(value.value, path, depth, _inside)  # the same place: not a container
    if isinstance(value, _temporal()):
        return value.isoformat()
    if isinstance(value, _as_str()):
        return str(value)
    if _pydantic_model(t):
        return encode(value.model_dump(), path, depth, _inside)  # the dict stands where the model did
    if isinstance(value, (set, frozenset)):
        raise SerializationError(
            f"{path}: {t.__name__} is not sent (its order is not kept); send sorted(x) or list(x)", path=path
        )
    return value  # the codec's own types, or one it refuses itself, naming the path


def encode_args(args: Tuple[Any, ...]) -> Tuple[Any, ...]:
    """A host call's arguments the codec refused: a process or pool handle among them becomes
    `{"$process": id}` (core gives that process to the worker with the call, see
    `titan_pm.given`); the rest is encoded by the value rule."""
    from .given import process_ref

    return tuple(process_ref(a) or encode(a, f"args[{i}]") for i, a in enumerate(args))


def result_encoder(value: Any) -> Any:
    """A worker's result: the codec's own top-level types go as they are (no walk: the
    fast path; a value the rule converts inside an unannotated list or dict is refused
    by the codec, naming its path); anything else is encoded by the rule."""
    if type(value) in _PLAIN or type(value) in (list, dict, tuple):
        return value
    return encode(value, "result")


def _encode_result(value: Any) -> Any:
    return encode(value, "result")


def result_encoding(fn: Any) -> Callable[[Any], Any]:
    """How a worker method's results are encoded: walked in full when its return annotation
    names a type of the rule anywhere (`-> list[Point]`), else `result_encoder`."""
    ret = _hints(fn).get("return")
    return _encode_result if ret is not None and decoder(ret) is not None else result_encoder


# ---- decoding by annotation ----


def _hints(fn: Any) -> Dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # an annotation that does not resolve: nothing is decoded by it
        return {}


def decoder(annotation: Any) -> Optional[Callable[[Any], Any]]:
    """A function that turns a travelled value back into `annotation`, or None when
    nothing needs turning (plain types, Any, unknown)."""
    try:
        return _decoder(annotation)
    except TypeError:  # an unhashable annotation: not one this rule knows
        return None


@functools.lru_cache(maxsize=1024)
def _decoder(annotation: Any) -> Optional[Callable[[Any], Any]]:
    origin = typing.get_origin(annotation)
    targs = typing.get_args(annotation)
    if origin is typing.Union or (sys.version_info >= (3, 10) and origin is __import__("types").UnionType):
        options = [a for a in targs if a is not type(None)]
        if len(options) == 1:
            inner = decoder(options[0])
            return None if inner is None else (lambda v: None if v is None else inner(v))
        return None  # a union of several types: ambiguous, left as it travelled
    if origin in (list, typing.List, set, frozenset, typing.Sequence, tuple) and targs:
        if origin is tuple and not (len(targs) == 2 and targs[1] is Ellipsis):
            decs = [decoder(a) for a in targs]
            if not any(decs):
                return None
            return lambda v: tuple(d(x) if d else x for d, x in zip(decs, v))
        inner = decoder(targs[0])
        if inner is None:
            return None
        build = origin if origin in (set, frozenset, tuple) else list
        return lambda v: build(inner(x) for x in v)
    if origin in (dict, typing.Dict, typing.Mapping) and len(targs) == 2:
        inner = decoder(targs[1])
        return None if inner is None else (lambda v: {k: inner(x) for k, x in v.items()})
    if not isinstance(annotation, type):
        return None
    cls = annotation
    if issubclass(cls, enum.Enum):
        return lambda v: v if isinstance(v, cls) else cls(v)
    if issubclass(cls, _temporal()):
        return lambda v: cls.fromisoformat(v) if isinstance(v, str) else v
    if issubclass(cls, _as_str()):
        return lambda v: cls(v) if isinstance(v, str) else v
    if dataclasses.is_dataclass(cls):
        hints = _hints(cls)
        fields = {f.name: decoder(hints.get(f.name, Any)) for f in dataclasses.fields(cls) if f.init}

        def build(v: Any) -> Any:
            if not isinstance(v, dict):
                return v
            return cls(**{k: (fields[k](x) if fields.get(k) else x) for k, x in v.items()})

        return build
    if _pydantic_model(cls):
        return lambda v: cls.model_validate(v) if isinstance(v, dict) else v  # type: ignore[attr-defined]
    return None


def decode(value: Any, annotation: Any) -> Any:
    d = decoder(annotation)
    return value if d is None else d(value)


def args_decoder(fn: Any) -> Optional[Callable[[List[Any]], List[Any]]]:
    """For a worker method: decodes its positional arguments by its parameters' annotations,
    or None when none needs it (the fast path: nothing runs per call)."""
    hints = _hints(fn)
    params = [p for p in inspect.signature(fn).parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if params and params[0].name in ("self", "cls") and not inspect.ismethod(fn):
        params = params[1:]
    decs = [decoder(hints[p.name]) if p.name in hints else None for p in params]
    if not any(decs):
        return None
    return lambda args: [decs[i](a) if i < len(decs) and decs[i] else a for i, a in enumerate(args)]


def kwargs_decoder(fn: Any) -> Optional[Callable[[Dict[str, Any]], Dict[str, Any]]]:
    """For a worker's `init`: decodes the spawn's dependencies (keyword arguments) by its
    parameters' annotations, or None when none needs it."""
    hints = _hints(fn)
    decs = {name: d for name, t in hints.items() if name != "return" and (d := decoder(t)) is not None}
    if not decs:
        return None
    return lambda kwargs: {k: (decs[k](v) if k in decs else v) for k, v in kwargs.items()}


@functools.lru_cache(maxsize=1024)
def result_decoder(fn: Any) -> Optional[Callable[[Any], Any]]:
    """For a host's typed call: decodes the result by the method's return annotation."""
    ret = _hints(fn).get("return")
    return None if ret is None else decoder(ret)

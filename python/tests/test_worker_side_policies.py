"""The parts of method policies that need the worker's own code run in the
worker (titan_pm._layers): pydantic / TypeAdapter / callable validators, a
cache key function and a cache condition; and `get_trace_context()` inside a
worker method. A counter in the worker proves what ran."""

import re
import time

import pytest

from conftest import WORKERS
from titan_pm import RemoteError, ValidationError, get_trace_context
from titan_pm.sync import ProcessManager as SyncProcessManager

WORKER = str(WORKERS / "worker_side_policies.py")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


@pytest.fixture(scope="module")
def w():
    with SyncProcessManager() as pm:
        yield pm.spawn(WORKER)


def test_a_pydantic_model_refuses_bad_input_with_every_path_and_the_method_never_runs(w):
    assert w.create({"email": "a@b.c", "age": 3}) == "a@b.c"
    with pytest.raises(ValidationError) as e:
        w.create({"email": "nope", "age": -1})
    paths = [p for p, _ in e.value.failures]
    assert sorted(paths) == ["/age", "/email"], e.value.failures
    assert all(m for _, m in e.value.failures)
    assert "/email" in str(e.value) and "/age" in str(e.value)
    with pytest.raises(ValidationError) as e:
        w.create({"email": "x@y"})
    assert [p for p, _ in e.value.failures] == ["/age"]
    assert w.runs("create") == 1, "the method never ran on invalid input"


def test_a_type_adapter_validates_an_async_method(w):
    assert w.total([1, 2, 3]) == 6
    with pytest.raises(ValidationError) as e:
        w.total([1, "two", 3])
    assert [p for p, _ in e.value.failures] == ["/1"]
    assert w.runs("total") == 1


def test_a_callable_refuses_by_raising_or_returning_false(w):
    assert w.square(4) == 16
    with pytest.raises(ValidationError) as e:
        w.square(-2)
    assert e.value.failures == [("", "-2 is not a positive whole number")]
    assert w.shout("HI") == "HI!"
    with pytest.raises(ValidationError) as e:
        w.shout("hi")
    assert e.value.failures == [("", "invalid")]
    assert (w.runs("square"), w.runs("shout")) == (1, 1)


def test_a_cache_key_function_runs_in_the_worker_and_keys_the_cache(w):
    first = w.profile(7)
    assert w.profile(7, True) == first, "same key (the function ignores `verbose`): a hit"
    assert w.runs("profile") == 1
    assert w.profile(8)["run"] == 2, "another key runs the method"
    time.sleep(0.5)
    assert w.profile(7)["run"] == 3, "after the ttl the method runs again"


def test_a_cache_condition_decides_what_is_cached(w):
    assert w.job("pending")["run"] == 1
    assert w.job("pending")["run"] == 2, "condition false: not cached"
    done = w.job("done")
    assert done["run"] == 3
    assert w.job("done") == done, "condition true: cached"
    assert w.runs("job") == 3


def test_errors_are_never_cached_by_a_worker_side_cache(w):
    for _ in range(2):
        with pytest.raises(RemoteError):
            w.cached_fails(1)
    assert w.runs("cached_fails") == 2


def test_get_trace_context_returns_the_calls_w3c_context_inside_a_method(w):
    assert get_trace_context() is None, "outside a call"
    # A sync method runs on the call thread, then (once proven fast) inline: both paths.
    seen = [w.trace() for _ in range(5)] + [w.trace_async() for _ in range(2)]
    for t in seen:
        assert HEX32.match(t["trace_id"]) and HEX16.match(t["span_id"]), t
        assert t["traceparent"] == f"00-{t['trace_id']}-{t['span_id']}-01"
        assert t["parent_span_id"] == "", "a call from a host outside any span starts a trace"
    assert len({t["span_id"] for t in seen}) == len(seen), "a span per call"
    assert len({t["trace_id"] for t in seen}) == len(seen), "each root call is a trace of its own"

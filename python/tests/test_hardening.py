"""Attacks on the Python bridge (issue 9): values nested past the one depth
limit (the core's `value::MAX_DEPTH`), cyclic values and strs with lone
surrogates are a `SerializationError` naming the path, on the side that tried
to send them, in every isolation; the worker keeps serving."""

import dataclasses
from typing import Any

import pytest

from conftest import CALCULATOR
from titan_pm import SerializationError
from titan_pm._native import roundtrip
from titan_pm.sync import ProcessManager as SyncProcessManager

# The core's value::MAX_DEPTH: a value inside more lists and dicts than this is
# refused (the same in Node and Rust); the path names the first such value.
MAX_DEPTH = 100
ISOLATIONS = ["child", "worker", "none"]


@dataclasses.dataclass
class Node:
    next: Any


def nested_lists(depth, inner=1):
    value = inner
    for _ in range(depth):
        value = [value]
    return value


def nested_dicts(depth):
    value = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def test_the_limit_is_the_same_for_lists_tuples_and_dicts():
    assert roundtrip(nested_lists(MAX_DEPTH)) == nested_lists(MAX_DEPTH)
    assert roundtrip(nested_dicts(MAX_DEPTH)) == nested_dicts(MAX_DEPTH)
    for value, step in [(nested_lists(MAX_DEPTH + 1), "[0]"), (nested_dicts(100_000), '["a"]')]:
        with pytest.raises(SerializationError, match=f"deeper than {MAX_DEPTH} levels") as e:
            roundtrip(value)
        assert e.value.path == "value" + step * (MAX_DEPTH + 1)
    deep_tuple = 1
    for _ in range(MAX_DEPTH + 1):
        deep_tuple = (deep_tuple,)
    with pytest.raises(SerializationError) as e:
        roundtrip(deep_tuple)
    assert e.value.path == "value" + "[0]" * (MAX_DEPTH + 1)


def test_a_cyclic_value_names_where_it_contains_itself():
    loop = {}
    loop["self"] = loop
    with pytest.raises(SerializationError, match="cyclic") as e:
        roundtrip({"x": loop})
    assert e.value.path == 'value["x"]["self"]'
    items = [1]
    items.append(items)
    with pytest.raises(SerializationError, match="cyclic") as e:
        roundtrip(items)
    assert e.value.path == "value[1]"
    shared = {"n": 1}
    assert roundtrip([shared, shared]) == [{"n": 1}, {"n": 1}]  # shared, not cyclic: copies


def test_a_lone_surrogate_is_refused_with_its_path():
    with pytest.raises(SerializationError, match=r"lone surrogate \(\\ud800\) at index 1") as e:
        roundtrip({"s": "a\ud800b"})
    assert e.value.path == 'value["s"]'
    with pytest.raises(SerializationError, match="a key: a lone surrogate") as e:
        roundtrip({"k\udfff": 1})
    assert e.value.path == "value"
    for s in ["\U0001f600", "\ufffd", "é\ufffdx"]:
        assert roundtrip(s) == s


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_arguments_past_the_limit_are_refused_before_sending(isolation):
    with SyncProcessManager(isolation=isolation) as pm:
        calc = pm.spawn(CALCULATOR)
        with pytest.raises(SerializationError) as e:
            calc.echo(nested_lists(10_000))
        assert e.value.path == "args[0]" + "[0]" * (MAX_DEPTH + 1)
        loop = []
        loop.append(loop)
        with pytest.raises(SerializationError, match="cyclic") as e:
            calc.echo(1, loop)
        assert e.value.path == "args[1][0]"
        node = Node(None)
        node.next = node
        with pytest.raises(SerializationError, match="cyclic") as e:
            calc.echo({"head": node})  # through the value rule (a dataclass travels as a dict)
        assert e.value.path == 'args[0]["head"]["next"]'
        with pytest.raises(SerializationError, match="lone surrogate") as e:
            calc.echo(["ok", "\udc00"])
        assert e.value.path == "args[0][1]"
        assert pm.get_metrics(calc.process_id)["requests"] == 0, "nothing was sent"
        assert calc.add(1, 2) == 3


def test_spawn_dependencies_have_the_same_limit():
    with SyncProcessManager() as pm:
        # A dependencies dict holding MAX_DEPTH - 1 lists: its innermost int is MAX_DEPTH deep.
        calc = pm.spawn(CALCULATOR, dependencies={"config": nested_lists(MAX_DEPTH - 1)})
        assert calc.add(1, 2) == 3
        with pytest.raises(SerializationError, match=f"deeper than {MAX_DEPTH} levels") as e:
            pm.spawn(CALCULATOR, dependencies={"config": nested_lists(MAX_DEPTH)})
        assert e.value.path == 'options["dependencies"]["config"]' + "[0]" * MAX_DEPTH


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_value_exactly_at_the_limit_goes_through(isolation):
    with SyncProcessManager(isolation=isolation) as pm:
        calc = pm.spawn(CALCULATOR)
        assert calc.echo(nested_lists(MAX_DEPTH)) == nested_lists(MAX_DEPTH)
        assert calc.echo(nested_dicts(MAX_DEPTH)) == nested_dicts(MAX_DEPTH)
        assert calc.nested(MAX_DEPTH) == nested_lists(MAX_DEPTH, "bottom")


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_results_past_the_limit_fail_the_call_and_the_worker_keeps_serving(isolation):
    with SyncProcessManager(isolation=isolation) as pm:
        calc = pm.spawn(CALCULATOR)
        pid = calc.pid()
        for depth in [MAX_DEPTH + 1, 10_000]:
            with pytest.raises(SerializationError, match="deeper than") as e:
                calc.nested(depth)
            assert e.value.path == "result" + "[0]" * (MAX_DEPTH + 1)
            assert calc.add(1, 2) == 3
        with pytest.raises(SerializationError, match="cyclic") as e:
            calc.cyclic()
        assert e.value.path == 'result["loop"]["self"]'
        with pytest.raises(SerializationError, match=r"lone surrogate \(\\udc00\) at index 2") as e:
            calc.lone_surrogate()
        assert e.value.path == 'result["s"]'
        assert calc.add(2, 3) == 5
        assert calc.pid() == pid
        assert pm.list_processes()[0]["restarts"] == 0


# The core's value::MAX_MESSAGE_BYTES: the encoded values of one message, at most.
MAX_MESSAGE_BYTES = 64 << 20


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_value_over_the_message_size_limit_is_refused_on_the_sending_side(isolation):
    with SyncProcessManager(isolation=isolation) as pm:
        calc = pm.spawn(CALCULATOR)
        pid = calc.pid()
        with pytest.raises(SerializationError, match="over the limit"):
            calc.echo(b"\x07" * (MAX_MESSAGE_BYTES + 1024))
        with pytest.raises(SerializationError, match="over the limit"):
            calc.blob(MAX_MESSAGE_BYTES + 1024)
        assert len(calc.blob(1024)) == 1024
        assert calc.pid() == pid
        assert pm.list_processes()[0]["restarts"] == 0

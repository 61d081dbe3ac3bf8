"""Typed calls at run time: `handle.call(Class.method, ...)` sends the method's
name, binds keyword arguments by the method's signature, and refuses what
cannot travel; `spawn(target, Interface)` checks the interface. (mypy's side:
tests/typing.)"""

import sys

import pytest

from conftest import CALCULATOR, run
from titan_pm import ProcessManager, process, public
from titan_pm.sync import ProcessManager as SyncProcessManager

sys.path.insert(0, str(__import__("conftest").WORKERS))
from calculator import Calculator  # noqa: E402  the worker's own class, as a host script imports it


@process(name="greeter")
class Greeter:
    @public
    def greet(self, name: str, punctuation: str = "!", *, loud: bool = False) -> str:
        return f"hello {name}{punctuation}"

    @public
    async def twice(self, x: int) -> int:
        return 2 * x


def test_a_method_reference_calls_that_method_in_both_apis():
    with SyncProcessManager() as pm:
        calc = pm.spawn(CALCULATOR, Calculator)
        assert calc.call(Calculator.add, 5, 3) == 8
        assert calc.with_options(timeout=5.0).call(Calculator.multiply, 4, 5) == 20
        pool = pm.pool(CALCULATOR, Calculator, size=1)
        assert pool.call(Calculator.add, 1, 2) == 3

    async def main():
        async with ProcessManager() as pm:
            calc = await pm.spawn(CALCULATOR, Calculator)
            assert await calc.call(Calculator.add, 5, 3) == 8
            assert await calc.call("add", 1, 1) == 2

    run(main())


def test_keyword_arguments_are_bound_by_the_signature():
    with SyncProcessManager() as pm:
        g = pm.spawn(Greeter, isolation="worker")
        assert g.call(Greeter.greet, name="ann") == "hello ann!"
        assert g.call(Greeter.greet, "bob", punctuation="?") == "hello bob?"
        assert g.call(Greeter.twice, x=4) == 8
        with pytest.raises(TypeError, match=r"keyword-only parameters \(loud\) cannot be sent"):
            g.call(Greeter.greet, "ann", loud=True)
        with pytest.raises(TypeError, match=r"greet\(\): missing a required argument: 'name'"):
            g.call(Greeter.greet, nme="ann")
        with pytest.raises(TypeError, match="by name takes positional arguments only"):
            g.call("greet", name="ann")
        with pytest.raises(TypeError, match="takes a method"):
            g.call(42, 1)


def test_the_interface_must_be_a_process_class():
    with SyncProcessManager() as pm:
        with pytest.raises(TypeError, match="the interface must be a @process class"):
            pm.spawn(CALCULATOR, dict)
        with pytest.raises(TypeError, match="the interface must be a @process class"):
            pm.spawn(CALCULATOR, "Calculator")

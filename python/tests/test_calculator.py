"""The calculator through both host APIs: sync and async methods, state kept
between calls, and the handle's `process_id` and `with_options`."""

import asyncio

from conftest import CALCULATOR, run
from titan_pm import ProcessManager
from titan_pm.sync import ProcessManager as SyncProcessManager


def test_calculator_answers_through_the_blocking_api():
    with SyncProcessManager() as pm:
        calc = pm.spawn(CALCULATOR)
        assert calc.add(5, 3) == 8
        assert calc.multiply(4, 5) == 20
        assert calc.process_data(["hello", "world"]) == ["HELLO", "WORLD"]
        assert calc.fibonacci(10) == 55
        assert calc.call("add", 1, 2) == 3


def test_calculator_answers_through_the_asyncio_api():
    async def main():
        async with ProcessManager(isolation="child", transport="ipc") as pm:
            calc = await pm.spawn(CALCULATOR)
            assert await calc.add(5, 3) == 8
            assert await calc.multiply(4, 5) == 20
            assert await calc.process_data(["hello", "world"]) == ["HELLO", "WORLD"]
            assert await calc.fibonacci(10) == 55
            # Many calls in flight at once, sync and async methods mixed.
            results = await asyncio.gather(*[calc.add(i, i) for i in range(200)], *[calc.fibonacci(i) for i in range(20)])
            assert results[:200] == [2 * i for i in range(200)]
            assert results[200:] == [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584, 4181]

    run(main())


def test_a_counter_keeps_its_state_between_calls():
    with SyncProcessManager() as pm:
        counter = pm.spawn(CALCULATOR)
        assert counter.increment() == 1
        assert counter.increment() == 2
        other = pm.spawn(CALCULATOR)
        assert other.increment() == 1


def test_process_info_and_the_handle():
    async def main():
        async with ProcessManager() as pm:
            calc = await pm.spawn(CALCULATOR)
            [info] = pm.list_processes()
            assert info["process_id"] == calc.process_id
            assert info["name"] == "calculator"
            assert info["state"] == "running"
            assert info["restarts"] == 0
            assert (info["isolation"], info["transport"]) == ("child", "ipc")
            assert info["pid"] == await calc.pid()
            assert pm.get_process(calc.process_id) == info
            fast = calc.with_options(timeout=5.0, key="user-1")
            assert fast.process_id == calc.process_id
            assert await fast.add(1, 1) == 2

    run(main())

"""The same worker answers the same way in every isolation (child, a thread,
in-process) and over every transport (ipc, unix, tcp, http), from both APIs."""

import os

import pytest

from conftest import CALCULATOR, WORKERS, run
from titan_pm import ProcessManager, SpawnError
from titan_pm.sync import ProcessManager as SyncProcessManager


# Isolation none runs in the engine itself: it has no transport of its own.
COMBINATIONS = [(i, t) for i in ("child", "worker") for t in ("ipc", "unix", "tcp", "http")] + [("none", "ipc")]


@pytest.mark.parametrize("isolation,transport", COMBINATIONS)
def test_calls_work_in_every_isolation_and_transport(isolation, transport):
    with SyncProcessManager(isolation=isolation, transport=transport) as pm:
        calc = pm.spawn(CALCULATOR)
        assert calc.add(5, 3) == 8
        assert calc.fibonacci(10) == 55
        assert calc.increment() == 1
        info = pm.get_process(calc.process_id)
        assert (info["isolation"], info["transport"]) == (isolation, transport)
        if isolation == "child":
            assert info["pid"] != os.getpid()
        else:
            assert info["pid"] == os.getpid() == calc.pid()


@pytest.mark.parametrize("isolation", ["worker", "none"])
def test_in_process_isolation_from_asyncio(isolation):
    async def main():
        async with ProcessManager(isolation=isolation) as pm:
            calc = await pm.spawn(CALCULATOR)
            assert await calc.add(5, 3) == 8
            assert await calc.fibonacci(10) == 55

    run(main())


def test_a_class_can_be_spawned_in_a_thread():
    import sys

    sys.path.insert(0, str(WORKERS))
    try:
        from calculator import Calculator
    finally:
        sys.path.pop(0)
    with SyncProcessManager(isolation="worker") as pm:
        calc = pm.spawn(Calculator)
        assert calc.multiply(6, 7) == 42
    with SyncProcessManager() as pm, pytest.raises(Exception, match="use isolation 'worker' or 'none'"):
        pm.spawn(Calculator)


def test_a_rust_worker_refuses_thread_isolation(rust_calculator):
    with SyncProcessManager(isolation="worker") as pm, pytest.raises(SpawnError, match="use isolation 'child'"):
        pm.spawn(rust_calculator)

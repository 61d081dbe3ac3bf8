"""`restart_with`: a process reloaded onto another target keeps its id; the new
instance is ready before the old one finishes its calls (none fails), and a target
that cannot start leaves the old instance serving."""

import asyncio
import time

import pytest

from conftest import CALCULATOR, WORKERS, run
from titan_pm import ProcessManager, SpawnError
from titan_pm.sync import ProcessManager as SyncProcessManager

FIRST = str(WORKERS / "remote_worker.py")  # add, pid, sleep: no multiply


def test_restart_with_reloads_onto_a_new_target_keeping_the_id():
    async def main():
        async with ProcessManager() as pm:
            one = await pm.spawn(FIRST)
            old_pid = await one.pid()
            in_flight = asyncio.ensure_future(one.sleep(1.0))
            await asyncio.sleep(0.2)
            await pm.restart_with(one, CALCULATOR)
            assert await asyncio.wait_for(in_flight, 20) == "slept", "the old instance finished its call"
            assert await one.multiply(6, 7) == 42, "calls go to the new target"
            assert await one.pid() != old_pid
            info = pm.get_process(one.process_id)
            assert info["state"] == "running"
            with pytest.raises(SpawnError):
                await pm.restart_with(one.process_id, str(WORKERS / "no_such_worker.py"))
            assert await one.multiply(2, 3) == 6, "a failed reload leaves the old instance serving"
            with pytest.raises(TypeError, match="process handle or a process id"):
                await pm.restart_with("calc", CALCULATOR)

    run(main(), timeout=90)


def test_restart_with_on_the_blocking_manager():
    with SyncProcessManager(engine="thread") as pm:
        one = pm.spawn(FIRST)
        old_pid = one.pid()
        pm.restart_with(one, CALCULATOR)
        assert one.multiply(6, 7) == 42
        assert one.pid() != old_pid
        assert pm.get_process(one.process_id)["state"] == "running"
        started = time.monotonic()
        with pytest.raises(SpawnError):
            pm.restart_with(one.process_id, str(WORKERS / "no_such_worker.py"))
        assert time.monotonic() - started < 30
        assert one.add(1, 2) == 3

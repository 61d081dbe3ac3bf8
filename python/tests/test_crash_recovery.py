"""A worker that dies mid-call fails the call at once with
ProcessCrashedError, restarts under the same process id with a new pid, and
after its restart budget is `failed` with calls failing fast."""

import asyncio
import os
import signal
import time

import pytest

from conftest import CALCULATOR, FAST_RESTARTS, alive, eventually, run
from titan_pm import ProcessCrashedError, ProcessFailedError, ProcessManager
from titan_pm.sync import ProcessManager as SyncProcessManager


def test_sigkill_mid_call_fails_the_call_then_the_process_restarts():
    async def main():
        async with ProcessManager(restart_policy=FAST_RESTARTS) as pm:
            events = []
            pm.on("*", lambda e: events.append(e["type"]))
            calc = await pm.spawn(CALCULATOR)
            old_pid = pm.get_process(calc.process_id)["pid"]
            call = asyncio.ensure_future(calc.sleep(30))
            await asyncio.sleep(0.3)
            killed_at = time.monotonic()
            os.kill(old_pid, signal.SIGKILL)
            with pytest.raises(ProcessCrashedError) as e:
                await call
            assert time.monotonic() - killed_at < 2.0
            assert e.value.signal == signal.SIGKILL and e.value.exit_code is None
            assert e.value.process_id == calc.process_id

            # The next call waits for the new instance: same id, new pid.
            assert await calc.add(5, 3) == 8
            info = pm.get_process(calc.process_id)
            assert info["process_id"] == calc.process_id
            assert info["state"] == "running" and info["restarts"] == 1
            assert info["pid"] != old_pid and await calc.pid() == info["pid"]
            assert not alive(old_pid)
            await asyncio.sleep(0.1)
            assert events == ["spawn", "ready", "crash", "restart", "spawn", "ready"]

    run(main())


def test_the_blocking_api_sees_the_crash_and_the_restart():
    with SyncProcessManager(restart_policy=FAST_RESTARTS) as pm:
        calc = pm.spawn(CALCULATOR)
        old_pid = calc.pid()
        with pytest.raises(ProcessCrashedError) as e:
            calc.exit(0)  # exiting with status 0 mid-call is a crash too
        assert e.value.exit_code == 0
        assert calc.add(1, 2) == 3
        assert calc.pid() != old_pid
        assert pm.get_process(calc.process_id)["restarts"] == 1


def test_a_crash_while_the_blocking_manager_waits_does_not_fail_the_next_call():
    with SyncProcessManager(restart_policy=FAST_RESTARTS) as pm:
        calc = pm.spawn(CALCULATOR)
        old_pid = calc.pid()
        os.kill(old_pid, signal.SIGKILL)
        assert eventually(lambda: not alive(old_pid))
        time.sleep(0.2)
        # The engine catches up first: the call goes to the restarted worker.
        assert calc.add(2, 2) == 4
        assert calc.pid() != old_pid


def test_after_the_restart_budget_the_process_is_failed_and_calls_fail_fast():
    policy = {"max_restarts": 2, "window": 60.0, "initial_backoff": 0.01}
    with SyncProcessManager(restart_policy=policy) as pm:
        calc = pm.spawn(CALCULATOR)
        for _ in range(3):
            with pytest.raises(ProcessCrashedError):
                calc.exit(3)
        assert eventually(lambda: pm.get_process(calc.process_id)["state"] == "failed")
        start = time.monotonic()
        with pytest.raises(ProcessFailedError) as e:
            calc.add(1, 1)
        assert e.value.state == "failed"
        assert time.monotonic() - start < 1.0


def test_kill_is_not_a_crash_and_does_not_restart():
    async def main():
        async with ProcessManager(restart_policy=FAST_RESTARTS) as pm:
            calc = await pm.spawn(CALCULATOR)
            pid = pm.get_process(calc.process_id)["pid"]
            await pm.kill(calc.process_id)
            assert not alive(pid)
            await asyncio.sleep(0.2)
            # A killed process leaves the list; its id still answers with its final state.
            assert pm.list_processes() == []
            with pytest.raises(ProcessFailedError) as e:
                pm.get_process(calc.process_id)
            assert e.value.state == "stopped"
            with pytest.raises(ProcessFailedError) as e:
                await calc.add(1, 1)
            assert e.value.state == "stopped"

    run(main())


def test_a_blocking_manager_with_an_engine_thread_restarts_while_idle():
    with SyncProcessManager(engine="thread", restart_policy=FAST_RESTARTS) as pm:
        calc = pm.spawn(CALCULATOR)
        old_pid = calc.pid()
        os.kill(old_pid, signal.SIGKILL)
        time.sleep(1.5)  # no call: the engine thread notices the crash and restarts on its own
        info = pm.get_process(calc.process_id)
        assert info["state"] == "running" and info["restarts"] == 1
        assert info["pid"] != old_pid and alive(info["pid"])
        assert calc.add(2, 2) == 4

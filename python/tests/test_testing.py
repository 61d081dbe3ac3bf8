"""titan_pm.testing on real workers: the seed's example tests, crashes through
the real restart policy on each isolation, injected failures, a clock the test
moves, and the strict cleanup."""

import asyncio
import sys
import time

import pytest

from conftest import CALCULATOR, WORKERS, alive, run
from titan_pm import ConfigError, ProcessFailedError, RemoteError, SpawnError
from titan_pm.testing import create_sync_test_process_manager, create_test_process_manager, titan_test_manager  # noqa: F401  (the fixture)

sys.path.insert(0, str(WORKERS))
from calculator import Calculator  # noqa: E402  the worker's own class, as a test imports it


# ---- the seed's "Example Test Suite", in pytest ----


def test_should_restart_after_crash():
    async def main():
        pm = create_test_process_manager(isolation="none")
        try:
            calc = await pm.spawn(Calculator)
            await pm.simulate_crash(calc.process_id)
            assert await pm.wait_for_recovery(calc.process_id)
            assert pm.verify_operation("restart", lambda op: op["process_id"] == calc.process_id)
            assert await calc.add(2, 3) == 5
        finally:
            await pm.cleanup()

    run(main())


def test_should_report_health_overrides():
    async def main():
        pm = create_test_process_manager(isolation="none")
        try:
            calc = await pm.spawn(Calculator)
            pm.set_health(calc.process_id, {"status": "unhealthy", "checks": [{"name": "db", "status": "fail", "message": "down"}]})
            health = await pm.get_health(calc.process_id)
            assert health["status"] == "unhealthy" and health["checks"][0]["name"] == "db"
            pm.set_metrics(calc.process_id, {"cpu": 95.0, "memory": "1GB"})
            metrics = await pm.get_metrics(calc.process_id)
            assert metrics["cpu"] == 95.0 and metrics["memory"] == 1 << 30
            pm.clear_health(calc.process_id)
            assert (await pm.get_health(calc.process_id))["status"] == "degraded"  # the worker's own check
            with pytest.raises(ConfigError, match=r"latency\.p51: unknown option"):
                pm.set_metrics(calc.process_id, {"latency": {"p51": 1}})
        finally:
            await pm.cleanup()

    run(main())


def test_should_track_operations():
    async def main():
        pm = create_test_process_manager(isolation="none")
        try:
            a = await pm.spawn(Calculator)
            b = await pm.spawn(Calculator)
            spawns = [op for op in pm.get_operations() if op["type"] == "spawn"]
            # A class spawned in-process is listed under its class name.
            assert [(op["process_class"], op["process_id"]) for op in spawns] == [("Calculator", a.process_id), ("Calculator", b.process_id)]
            await a.add(1, 1)
            await pm.kill(b.process_id)
            assert pm.verify_operation("call", lambda op: op["method"] == "add" and op["outcome"] == "ok")
            assert pm.verify_operation("kill", lambda op: op["process_id"] == b.process_id)
        finally:
            await pm.cleanup()

    run(main())


# ---- crashes through the real restart policy ----


@pytest.mark.parametrize("isolation", ["none", "worker", "child"])
def test_simulate_crash_recovers_three_times_and_the_fourth_spends_the_budget(isolation):
    async def main():
        pm = create_test_process_manager(isolation=isolation, restart_policy={"initial_backoff": 0.01})
        try:
            calc = await pm.spawn(CALCULATOR)
            for n in range(1, 4):
                await pm.simulate_crash(calc.process_id)
                assert await pm.wait_for_recovery(calc.process_id, 10.0), f"crash {n}"
                assert await calc.add(n, 1) == n + 1
            await pm.simulate_crash(calc.process_id)
            assert not await pm.wait_for_recovery(calc.process_id, 1.0)
            assert pm.get_process(calc.process_id)["state"] == "failed"
            with pytest.raises(ProcessFailedError):
                await calc.add(1, 1)
            assert len([op for op in pm.get_operations() if op["type"] == "restart"]) == 3
        finally:
            await pm.cleanup()

    run(main())


# ---- injected failures ----


def test_simulate_failure_spawn_fails_exactly_the_next_spawn():
    async def main():
        pm = create_test_process_manager()
        try:
            pm.simulate_failure("spawn:calculator", RuntimeError("no capacity"))
            with pytest.raises(SpawnError, match="no capacity"):
                await pm.spawn(Calculator)
            calc = await pm.spawn(Calculator)
            assert await calc.add(1, 2) == 3
            assert len(pm.list_processes()) == 1
            with pytest.raises(ConfigError, match="unknown operation"):
                pm.simulate_failure("explode:x", "boom")
        finally:
            await pm.cleanup()

    run(main())


def test_simulate_failure_call_raises_the_errors_type_once():
    async def main():
        pm = create_test_process_manager()
        try:
            calc = await pm.spawn(Calculator)
            pm.simulate_failure("call:calculator.add", ValueError("injected"))
            with pytest.raises(ValueError, match="injected") as e:
                await calc.add(1, 2)
            assert isinstance(e.value, RemoteError)
            assert await calc.add(1, 2) == 3
        finally:
            await pm.cleanup()

    run(main())


# ---- the clock ----


def test_advance_time_drives_a_restart_backoff_without_sleeping():
    async def main():
        started = time.monotonic()
        pm = create_test_process_manager(control_time=True, restart_policy={"initial_backoff": 10.0})
        try:
            calc = await pm.spawn(Calculator)
            t0 = pm.get_current_time()
            await pm.simulate_crash(calc.process_id)
            assert not await pm.wait_for_recovery(calc.process_id, 0.2)
            await pm.advance_time(10.0)
            assert await pm.wait_for_recovery(calc.process_id, 10.0)
            assert pm.get_current_time() - t0 == pytest.approx(10.0)
            assert pm.verify_operation("restart", lambda op: op["delay"] == 10.0)
        finally:
            await pm.cleanup()
        assert time.monotonic() - started < 6.0  # generous (a loaded machine), well under the 10 s backoff

    run(main())


def test_options_are_read_by_core_and_unknown_ones_named():
    with pytest.raises(ConfigError, match="record_ops: unknown option"):
        create_test_process_manager(record_ops=True)

    async def main():
        pm = create_test_process_manager()
        try:
            with pytest.raises(ConfigError, match="not controlled"):
                await pm.advance_time(1.0)
            assert abs(pm.get_current_time() - time.time()) < 1.0
        finally:
            await pm.cleanup()

    run(main())


# ---- the pytest fixture ----


def test_the_fixture_gives_a_manager_usable_from_the_tests_loop(titan_test_manager):
    async def main():
        calc = await titan_test_manager.spawn(Calculator)
        assert await calc.add(2, 2) == 4

    run(main())


def test_cleanup_shuts_down_and_is_quiet_when_nothing_outlived_it():
    async def main():
        pm = create_test_process_manager(isolation="child")
        calc = await pm.spawn(CALCULATOR)
        pid = pm.get_process(calc.process_id)["pid"]
        await pm.cleanup()
        assert not alive(pid)
        with pytest.raises(ProcessFailedError):
            await calc.add(1, 1)

    run(main())


@pytest.mark.parametrize("isolation", ["none", "worker"])
def test_cleanup_names_an_in_process_worker_whose_runtime_thread_outlived_the_shutdown(isolation):
    # The in-process instance is torn down at the shutdown, but the runtime's call thread is
    # still in time.sleep: the core counts the bridge's runtime threads (titan_pm::host::live).
    async def main():
        pm = create_test_process_manager(isolation=isolation, shutdown_timeout=0.3)
        calc = await pm.spawn(Calculator, name="stuck")
        call = asyncio.ensure_future(calc.sleep(5))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        with pytest.raises(ConfigError) as e:
            await pm.cleanup()
        assert "stuck" in str(e.value) and "python runtime thread" in str(e.value), str(e.value)
        with pytest.raises(Exception):
            await call
        # Once the thread is out of its sleep the runtime is released: a second check is quiet.
        await asyncio.sleep(max(0.0, 5.3 - (time.monotonic() - started)))
        await pm.cleanup()

    run(main())


# ---- the blocking API (titan_pm.sync) ----


@pytest.mark.parametrize("engine", ["caller", "thread"])
def test_the_sync_test_manager_runs_the_seed_examples_blocking(engine):
    pm = create_sync_test_process_manager(engine=engine)
    try:
        calc = pm.spawn(Calculator)
        other = pm.spawn(Calculator)
        assert calc.add(2, 3) == 5
        assert len([op for op in pm.get_operations() if op["type"] == "spawn"]) == 2
        pm.simulate_crash(calc.process_id)
        assert pm.wait_for_recovery(calc.process_id, 10.0)
        assert pm.verify_operation("restart", lambda op: op["process_id"] == calc.process_id)
        assert calc.add(1, 1) == 2
        pm.set_health(other.process_id, {"status": "unhealthy", "checks": {"db": False}})
        assert pm.get_health(other.process_id)["status"] == "unhealthy"
        pm.clear_health(other.process_id)
        pm.simulate_failure("call:add", ValueError("injected"))
        with pytest.raises(RemoteError, match="injected"):
            calc.add(1, 2)
        assert calc.add(1, 2) == 3
    finally:
        pm.cleanup()


def test_the_sync_test_manager_moves_its_clock_and_reads_its_options():
    with pytest.raises(ConfigError, match="record_ops"):
        create_sync_test_process_manager(record_ops=True)
    pm = create_sync_test_process_manager(control_time=True, restart_policy={"initial_backoff": 10.0})
    started = time.monotonic()
    try:
        calc = pm.spawn(Calculator)
        t0 = pm.get_current_time()
        pm.simulate_crash(calc.process_id)
        assert not pm.wait_for_recovery(calc.process_id, 0.2)
        pm.advance_time(10.0)
        assert pm.wait_for_recovery(calc.process_id, 10.0)
        assert pm.get_current_time() - t0 == pytest.approx(10.0, abs=0.01)
        pm.reset_time()
        assert abs(pm.get_current_time() - time.time()) < 1.0
    finally:
        pm.cleanup()
    assert time.monotonic() - started < 6.0  # well under the 10 s backoff

